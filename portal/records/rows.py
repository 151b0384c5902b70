"""Database rows for generated consumers, as tuples and as COPY text.

Free of Django on purpose: the loader's helper processes import only this module, the generator and the
identifier cipher (itself Django-free until asked for the settings' keys; the plan carries the keys), so they
start fast and never touch (or inherit) a database connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from portal.records import identifiers, synthetic

ACCOUNT_SLOTS = len(synthetic.PRODUCTS)


@dataclass(frozen=True)
class LoadPlan:
    seed: int
    start: int
    count: int
    end: date
    consumer_base: int  # database id of consumer `start`
    account_base: int  # database id of account slot 0 of consumer `start`
    merchant_ids: tuple[int, ...]  # by merchant index
    segment_ids: dict[str, int]  # by slug
    keyring: identifiers.Keyring  # resident IDs and phones are written encrypted, with their search hashes


def money(fen: int | None) -> str | None:
    return None if fen is None else f"{fen // 100}.{fen % 100:02d}"


class Timestamps:
    """Formats epoch seconds as timestamp text: Shanghai time with offset for PostgreSQL, naive UTC for SQLite
    (how Django stores aware datetimes there). Day strings are cached: a chunk spans two years of days."""

    def __init__(self, offset_hours: int, suffix: str) -> None:
        self.offset = offset_hours * 3600
        self.suffix = suffix
        self.days: dict[int, str] = {}

    def __call__(self, epoch: int) -> str:
        day, second = divmod(epoch + self.offset, 86_400)
        text = self.days.get(day)
        if text is None:
            text = self.days[day] = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
        hour, rest = divmod(second, 3600)
        return f"{text} {hour:02d}:{rest // 60:02d}:{rest % 60:02d}{self.suffix}"


# Column order of each tuple; the loader names the same columns, in this order, in its INSERT and COPY.
CONSUMER_FIELDS = (
    "id",
    "public_id",
    "name",
    "resident_id",
    "resident_id_hmac",
    "phone",
    "phone_hmac",
    "province",
    "city",
    "birth_year",
    "joined_on",
    "status",
)
ACCOUNT_FIELDS = ("id", "consumer", "product", "credit_limit", "balance", "opened_on", "status")
TRANSACTION_FIELDS = (
    "consumer",
    "account",
    "kind",
    "amount",
    "merchant",
    "occurred_at",
    "channel",
    "due_date",
    "days_late",
)
MEMBERSHIP_FIELDS = ("segment", "consumer")

Tables = tuple[
    list[tuple], list[tuple], list[tuple], list[tuple]
]  # consumers, accounts, transactions, memberships


def generate_rows(plan: LoadPlan, start: int, count: int, timestamp: Callable[[int], str]) -> Tables:
    """Rows of consumers start..start+count-1, with database ids assigned from the plan."""
    consumers: list[tuple] = []
    accounts: list[tuple] = []
    transactions: list[tuple] = []
    memberships: list[tuple] = []
    merchant_ids, segment_ids, keyring = plan.merchant_ids, plan.segment_ids, plan.keyring
    resident_id_kind, phone_kind = identifiers.RESIDENT_ID, identifiers.PHONE
    for row in synthetic.generate(plan.seed, start, count, plan.end):
        offset = row.index - plan.start
        consumer_id = plan.consumer_base + offset
        account_base = plan.account_base + offset * ACCOUNT_SLOTS
        consumers.append(
            (
                consumer_id,
                row.public_id,
                row.name,
                keyring.encrypt(resident_id_kind, row.resident_id),
                keyring.digest(resident_id_kind, row.resident_id),
                keyring.encrypt(phone_kind, row.phone),
                keyring.digest(phone_kind, row.phone),
                row.province,
                row.city,
                row.birth_year,
                row.joined_on.isoformat(),
                row.status,
            )
        )
        for a in row.accounts:
            accounts.append(
                (
                    account_base + a.slot,
                    consumer_id,
                    a.product,
                    money(a.credit_limit),
                    money(a.balance),
                    a.opened_on.isoformat(),
                    a.status,
                )
            )
        for slot, kind, amount, merchant, epoch, channel, due, late in row.transactions:
            transactions.append(
                (
                    consumer_id,
                    account_base + slot,
                    kind,
                    money(amount),
                    None if merchant is None else merchant_ids[merchant],
                    timestamp(epoch),
                    channel,
                    None if due is None else due.isoformat(),
                    late,
                )
            )
        memberships.extend((segment_ids[slug], consumer_id) for slug in row.segments)
    return consumers, accounts, transactions, memberships


def copy_text(rows: list[tuple]) -> str:
    # Generated text (ciphertexts and hashes are base64url) never holds a tab, newline or backslash, so COPY's
    # text format needs no escaping.
    return "".join("\t".join(r"\N" if v is None else str(v) for v in row) + "\n" for row in rows)


def copy_chunk(args: tuple[LoadPlan, int, int]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """COPY text of one chunk for each table, for PostgreSQL (timestamps in Shanghai time)."""
    plan, start, count = args
    tables = generate_rows(plan, start, count, Timestamps(8, "+08"))
    return tuple(len(rows) for rows in tables), tuple(copy_text(rows) for rows in tables)
