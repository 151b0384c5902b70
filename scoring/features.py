"""The scoring features: what each one means, and the one set-based SQL query that computes them all for a
range of consumers as of a cut-off.

Production refresh, calibration, the quality tests and the benchmark all run this same SQL, so the numbers a
scorecard was fitted on are exactly the numbers it is applied to. Every feature is an integer (or NULL when
the consumer has nothing to measure), so SQLite and PostgreSQL agree on it and its text is stable to hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from portal.records.models import Account, Consumer, Transaction

# The public FICO weighting that the feature groups follow (SPEC §5); the model card compares the fitted
# scorecard's point spread per group with these.
GROUPS: dict[str, tuple[str, str, float]] = {
    "payment_history": ("Payment history", "还款记录", 0.35),
    "amounts_owed": ("Amounts owed", "负债水平", 0.30),
    "length_of_history": ("Length of history", "信用历史长度", 0.15),
    "new_credit": ("New credit", "新增信贷", 0.10),
    "credit_mix": ("Credit mix", "信贷组合", 0.10),
}

# Why a value can be missing. Features missing for the same reason share one reason code (and, in
# calibration, one indicator), so a thin file gets "no repayment history yet" once, not three times.
MISSING_REASONS: dict[str, tuple[str, str]] = {
    "no_repayments": ("No repayment history yet", "尚无还款记录"),
    "no_credit_line": (
        "No revolving credit line to show how credit is used",
        "没有循环信用额度，无法体现用信情况",
    ),
    "no_loan": (
        "No instalment or cash loan to show repayment of a balance",
        "没有分期或现金贷款，无法体现余额偿还情况",
    ),
    "no_inflows": ("No incoming transfers in the last 12 months", "近12个月没有转入资金"),
    "no_credit": ("No credit account yet", "尚无信贷账户"),
}


@dataclass(frozen=True)
class Feature:
    code: str
    group: str
    label_en: str
    label_zh: str
    # The reason text when this feature's value costs points.
    reason_en: str
    reason_zh: str
    # Declared, not learnt: the direction a reviewer expects, which calibration enforces on the bins.
    risk_rises: bool
    missing_group: str | None = None


FEATURES: tuple[Feature, ...] = (
    Feature(
        "late_share_pct",
        "payment_history",
        "Share of repayments paid late (%)",
        "逾期还款占比（%）",
        "Too many repayments paid late",
        "逾期还款次数占比过高",
        risk_rises=True,
        missing_group="no_repayments",
    ),
    Feature(
        "max_days_late",
        "payment_history",
        "Most days late on any repayment (30+ and 90+ ever)",
        "单笔还款最长逾期天数（曾逾期30天以上、90天以上）",
        "A repayment was seriously late",
        "曾有严重逾期的还款",
        risk_rises=True,
        missing_group="no_repayments",
    ),
    Feature(
        "late_6m",
        "payment_history",
        "Late repayments in the last 6 months",
        "近6个月逾期还款次数",
        "Recent late repayments",
        "近期有逾期还款",
        risk_rises=True,
        missing_group="no_repayments",
    ),
    Feature(
        "utilisation_pct",
        "amounts_owed",
        "Credit-line spending vs limit, last 3 months (%)",
        "近3个月信用额度使用率（%）",
        "Credit line used heavily relative to its limit",
        "信用额度使用率过高",
        risk_rises=True,
        missing_group="no_credit_line",
    ),
    Feature(
        "loan_outstanding_pct",
        "amounts_owed",
        "Loan principal not yet repaid (%)",
        "贷款未偿还本金占比（%）",
        "Much of the loan principal is still owed",
        "贷款未偿余额占本金比例过高",
        risk_rises=True,
        missing_group="no_loan",
    ),
    # What is owed only means something against what comes in: this is the capacity side of the same ratio,
    # and the one signal a consumer without any credit yet can show.
    Feature(
        "inflow_avg",
        "amounts_owed",
        "Average incoming transfer, last 12 months (CNY)",
        "近12个月平均每笔转入金额（元）",
        "Low incoming transfers relative to what credit costs",
        "转入资金较少，偿债能力偏弱",
        risk_rises=False,
        missing_group="no_inflows",
    ),
    Feature(
        "months_on_book",
        "length_of_history",
        "Months since joining",
        "注册至今月数",
        "Short time as a customer",
        "成为用户的时间较短",
        risk_rises=False,
    ),
    Feature(
        "oldest_credit_months",
        "length_of_history",
        "Months since the oldest credit account was opened",
        "最早信贷账户开立至今月数",
        "Credit history is short",
        "信用历史较短",
        risk_rises=False,
        missing_group="no_credit",
    ),
    Feature(
        "new_credit_6m",
        "new_credit",
        "Credit accounts opened in the last 6 months",
        "近6个月新开信贷账户数",
        "Credit accounts opened recently",
        "近期新开信贷账户",
        risk_rises=True,
    ),
    Feature(
        "credit_kinds",
        "credit_mix",
        "Kinds of credit held (credit line, instalment loan, cash loan)",
        "持有的信贷种类数（信用额度、分期贷款、现金贷款）",
        "Few kinds of credit",
        "信贷种类较少",
        risk_rises=False,
    ),
    Feature(
        "savings_products",
        "credit_mix",
        "Savings and insurance products held",
        "持有的理财和保险产品数",
        "No savings or insurance products",
        "未持有理财或保险产品",
        risk_rises=False,
    ),
)
FEATURES_BY_CODE = {f.code: f for f in FEATURES}
CODES = tuple(f.code for f in FEATURES)

CREDIT_PRODUCTS = (
    Account.Product.CREDIT_LINE,
    Account.Product.INSTALMENT_LOAN,
    Account.Product.CASH_LOAN,
)
LOAN_PRODUCTS = (Account.Product.INSTALMENT_LOAN, Account.Product.CASH_LOAN)
SAVINGS_PRODUCTS = (Account.Product.MONEY_FUND, Account.Product.INSURANCE)
# Months of history each windowed feature looks back over.
RECENT_MONTHS = 6
UTILISATION_MONTHS = 3
INFLOW_MONTHS = 12
NEW_CREDIT_MONTHS = 6
NO_WATERMARK = 2**63 - 1


def months_before(moment: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months earlier (day clipped to 28, like the generator)."""
    month0 = moment.month - 1 - months
    return moment.replace(year=moment.year + month0 // 12, month=month0 % 12 + 1, day=min(moment.day, 28))


def cutoff_of(as_of: date) -> datetime:
    """Midnight at the start of `as_of` in the portal's time zone: features see what happened before it."""
    return timezone.make_aware(datetime.combine(as_of, time.min), timezone.get_default_timezone())


@dataclass(frozen=True)
class Window:
    """Everything a feature query needs besides the consumer range: the cut-off and the watermark."""

    cutoff: datetime  # transactions strictly before this instant
    watermark: int = NO_WATERMARK  # and with an id up to this one

    @property
    def as_of(self) -> date:
        """The day of the cut-off: accounts opened before it count."""
        return timezone.localtime(self.cutoff).date()

    def params(self, connection: BaseDatabaseWrapper) -> dict[str, Any]:
        ops = connection.ops
        local = timezone.localtime(self.cutoff)
        return {
            "watermark": self.watermark,
            "cutoff": ops.adapt_datetimefield_value(self.cutoff),
            "as_of_date": ops.adapt_datefield_value(self.as_of),
            "recent_from": ops.adapt_datetimefield_value(months_before(local, RECENT_MONTHS)),
            "util_from": ops.adapt_datetimefield_value(months_before(local, UTILISATION_MONTHS)),
            "inflow_from": ops.adapt_datetimefield_value(months_before(local, INFLOW_MONTHS)),
            "new_from": ops.adapt_datefield_value(months_before(local, NEW_CREDIT_MONTHS).date()),
        }


def _quoted(values: Sequence[str]) -> str:
    # Product and kind names are our own enumeration values (lower-case ASCII), never user input.
    if not all(v.replace("_", "").isalnum() for v in values):
        raise ValueError(f"not an enumeration value: {values!r}")
    return ", ".join(f"'{v}'" for v in values)


def _days_before_as_of(connection: BaseDatabaseWrapper, column: str) -> str:
    if connection.vendor == "postgresql":
        return f"(%(as_of_date)s::date - {column})"
    return f"CAST(julianday(%(as_of_date)s) - julianday({column}) AS INTEGER)"


def total(condition: str, money: str) -> str:
    """The sum of a money column over the rows meeting `condition`, in whole fen, as an integer.

    SQLite keeps decimals as binary floats, whose sums round differently from PostgreSQL's exact numerics;
    integer sums and integer division agree everywhere. PostgreSQL's SUM of bigints is numeric: cast back."""
    return f"CAST(SUM(CASE WHEN {condition} THEN CAST(ROUND({money} * 100) AS BIGINT) ELSE 0 END) AS BIGINT)"


def features_sql(connection: BaseDatabaseWrapper, *, incremental: bool = False) -> str:
    """SELECT consumer_id, <one column per feature in CODES> for consumers lo..hi, as of the window."""
    return f"WITH {feature_ctes(connection, incremental=incremental)} SELECT * FROM f"  # noqa: S608


def in_chunk(column: str, *, by_ids: bool = False) -> str:
    """The chunk's condition on a consumer id column: the range lo..hi, and with `by_ids` (a chunk of one
    Citus shard) also `= ANY(%(ids)s)`, its consumers named as constants: Citus prunes shards on equality
    and on `= ANY` of a constant array, never on a range of a hash-distributed column
    (src/backend/distributed/planner/shard_pruning.c), so with every table read that way the chunk's
    statements go to the one shard (and its co-located shards) holding those consumers."""
    condition = f"{column} BETWEEN %(lo)s AND %(hi)s"
    return f"{condition} AND {column} = ANY(%(ids)s::bigint[])" if by_ids else condition


def feature_ctes(connection: BaseDatabaseWrapper, *, incremental: bool = False, by_ids: bool = False) -> str:
    """The common table expressions ending in `f` (consumer_id and one column per feature in CODES) for
    consumers lo..hi, as of the window; scoring appends its own to these.

    Parameters: lo, hi and those of Window.params; with `incremental`, also watermark_from: only consumers
    with a transaction whose id lies in (watermark_from, watermark] are selected; with `by_ids` (PostgreSQL
    only), also ids: the chunk's consumers, all in lo..hi (see in_chunk).

    Money is summed in whole fen and every ratio is an integer division: both databases agree on the results.
    Table names come from the models' _meta, products from their enumerations, values travel as parameters.
    One pass over the range's transactions (grouped by consumer, joined to their accounts) and one over its
    accounts; on PostgreSQL both are index range scans on consumer_id, on SQLite too.

    Written so that Citus pushes the whole statement down to the shards (deploy/SCALING.md §3.4): every CTE
    is referenced once (so it is inlined, never materialised on the coordinator), and every join between
    the consumer's tables pairs their distribution column, consumer_id (an account joins its transactions on
    (consumer_id, id), which is also its primary key).
    """
    consumer = Consumer._meta.db_table
    account = Account._meta.db_table
    txn = Transaction._meta.db_table
    credit, loans, savings = _quoted(CREDIT_PRODUCTS), _quoted(LOAN_PRODUCTS), _quoted(SAVINGS_PRODUCTS)

    def new_rows(column: str) -> str:
        """With `incremental`, only consumers with a transaction in the watermark's window."""
        if not incremental:
            return ""
        return (
            f"AND {column} IN (SELECT n.consumer_id FROM {txn} n WHERE n.id > %(watermark_from)s "  # noqa: S608
            f"AND n.id <= %(watermark)s AND {in_chunk('n.consumer_id', by_ids=by_ids)})"
        )

    return f"""
t AS (
  SELECT t.consumer_id,
    SUM(CASE WHEN t.kind = 'repayment' THEN 1 ELSE 0 END) AS repayments,
    SUM(CASE WHEN t.kind = 'repayment' AND t.days_late > 0 THEN 1 ELSE 0 END) AS late,
    MAX(CASE WHEN t.kind = 'repayment' THEN t.days_late END) AS max_days_late,
    SUM(CASE WHEN t.kind = 'repayment' AND t.days_late > 0 AND t.occurred_at >= %(recent_from)s
        THEN 1 ELSE 0 END) AS late_recent,
    {total("t.kind = 'payment' AND a.product = 'credit_line' AND t.occurred_at >= %(util_from)s", "t.amount")}
        AS line_spend,
    {total(f"t.kind = 'repayment' AND a.product IN ({loans})", "t.amount")} AS loan_repaid,
    {total("t.kind = 'transfer_in' AND t.occurred_at >= %(inflow_from)s", "t.amount")} AS inflow,
    SUM(CASE WHEN t.kind = 'transfer_in' AND t.occurred_at >= %(inflow_from)s THEN 1 ELSE 0 END) AS inflows
  FROM {txn} t
  JOIN {account} a ON a.consumer_id = t.consumer_id AND a.id = t.account_id
  WHERE {in_chunk("t.consumer_id", by_ids=by_ids)} AND t.id <= %(watermark)s AND t.occurred_at < %(cutoff)s
    {new_rows("t.consumer_id")}
  GROUP BY t.consumer_id
),
a AS (
  SELECT a.consumer_id,
    SUM(CASE WHEN a.product = 'credit_line' THEN 1 ELSE 0 END) AS lines,
    {total("a.product = 'credit_line'", "a.credit_limit")} AS line_limit,
    SUM(CASE WHEN a.product IN ({loans}) THEN 1 ELSE 0 END) AS loans,
    {total(f"a.product IN ({loans})", "a.credit_limit")} AS principal,
    MIN(CASE WHEN a.product IN ({credit}) THEN a.opened_on END) AS first_credit,
    SUM(CASE WHEN a.product IN ({credit}) AND a.opened_on >= %(new_from)s THEN 1 ELSE 0 END) AS new_credit,
    COUNT(DISTINCT CASE WHEN a.product IN ({credit}) THEN a.product END) AS credit_kinds,
    COUNT(DISTINCT CASE WHEN a.product IN ({savings}) THEN a.product END) AS savings_products
  FROM {account} a
  WHERE {in_chunk("a.consumer_id", by_ids=by_ids)} AND a.opened_on < %(as_of_date)s
    {new_rows("a.consumer_id")}
  GROUP BY a.consumer_id
),
f AS (
SELECT c.id AS consumer_id,
  CASE WHEN t.repayments > 0 THEN 100 * t.late / t.repayments END AS late_share_pct,
  CASE WHEN t.repayments > 0 THEN t.max_days_late END AS max_days_late,
  CASE WHEN t.repayments > 0 THEN t.late_recent END AS late_6m,
  CASE WHEN a.lines > 0 AND a.line_limit > 0
    THEN 100 * COALESCE(t.line_spend, 0) / ({UTILISATION_MONTHS} * a.line_limit) END AS utilisation_pct,
  CASE WHEN a.loans > 0 AND a.principal > 0 THEN
    CASE WHEN COALESCE(t.loan_repaid, 0) >= a.principal THEN 0
    ELSE 100 * (a.principal - COALESCE(t.loan_repaid, 0)) / a.principal END
  END AS loan_outstanding_pct,
  CASE WHEN t.inflows > 0 THEN t.inflow / (100 * t.inflows) END AS inflow_avg,
  CASE WHEN c.joined_on < %(as_of_date)s THEN {_days_before_as_of(connection, "c.joined_on")} / 30 ELSE 0 END
    AS months_on_book,
  CASE WHEN a.first_credit IS NOT NULL THEN {_days_before_as_of(connection, "a.first_credit")} / 30 END
    AS oldest_credit_months,
  COALESCE(a.new_credit, 0) AS new_credit_6m,
  COALESCE(a.credit_kinds, 0) AS credit_kinds,
  COALESCE(a.savings_products, 0) AS savings_products
FROM {consumer} c
LEFT JOIN t ON t.consumer_id = c.id
LEFT JOIN a ON a.consumer_id = c.id
WHERE {in_chunk("c.id", by_ids=by_ids)} {new_rows("c.id")}
)"""  # noqa: S608


def snapshot_text(features: Mapping[str, int | None], codes: Sequence[str]) -> str:
    """The canonical text of a feature snapshot, which the score's hash covers: `code=value;` in scorecard
    order, an empty value for a missing one. The SQL builds the same text."""
    return "".join(f"{code}={_text(features[code])};" for code in codes)


def _text(value: int | None) -> str:
    return "" if value is None else str(int(value))


def snapshot_hash(features: Mapping[str, int | None], codes: Sequence[str]) -> str:
    return hashlib.sha256(snapshot_text(features, codes).encode()).hexdigest()


def query_features(
    connection: BaseDatabaseWrapper, *, lo: int, hi: int, window: Window
) -> dict[int, dict[str, int | None]]:
    """Features of consumers lo..hi by consumer id, as plain Python (calibration, evaluation and tests)."""
    with connection.cursor() as cursor:
        cursor.execute(features_sql(connection), {"lo": lo, "hi": hi, **window.params(connection)})
        columns = [d[0] for d in cursor.description][1:]
        return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in cursor.fetchall()}
