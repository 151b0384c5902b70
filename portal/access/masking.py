"""Masking of personal data for holders of `view_masked_records` without `view_records` (SPEC §3), and
small-cell suppression of aggregates."""

from portal.records import selectors
from portal.records.synthetic import PROVINCE_NAMES_EN


def mask_name(name: str) -> str:
    """The surname and two stars, whatever the name's length (张三丰, 张三 -> 张**): one star per character
    would tell a two-character name from a three-character one."""
    if not name:
        return name
    return name[0] + "**"


def mask_resident_id(value: str) -> str:
    """First six (the area) and last four characters: 110105********002X."""
    return value[:6] + "*" * 8 + value[-4:] if len(value) >= 10 else "*" * len(value)


def mask_phone(value: str) -> str:
    """First three and last four digits: 138****5678."""
    return value[:3] + "****" + value[-4:] if len(value) >= 7 else "*" * len(value)


def identity(consumer, *, masked: bool) -> dict[str, str]:
    """A consumer's name, resident ID and phone as the caller may see them: every path that shows them (API,
    export, admin console) takes them from here."""
    if masked:
        return {
            "name": mask_name(consumer.name),
            "resident_id": mask_resident_id(consumer.resident_id),
            "phone": mask_phone(consumer.phone),
        }
    return {"name": consumer.name, "resident_id": consumer.resident_id, "phone": consumer.phone}


SMALL_CELL = 10


def suppress(count: int | None) -> int | None:
    """A count of fewer than SMALL_CELL consumers is withheld (None): no individual can be singled out."""
    if count is None or count < SMALL_CELL:
        return None
    return count


def suppress_partition(counts: list[int], total_shown: bool) -> list[int | None]:
    """Suppress the small cells of counts that add up to a published total, and then enough others that no
    withheld cell can be worked out by subtraction (complementary suppression): when the total is shown,
    never exactly one withheld cell with a non-zero count among them."""
    shown: list[int | None] = [suppress(c) for c in counts]
    if total_shown:
        hidden_nonzero = [i for i, c in enumerate(counts) if shown[i] is None and c > 0]
        if len(hidden_nonzero) == 1:
            candidates = sorted((c, i) for i, c in enumerate(counts) if shown[i] is not None)
            if candidates:
                shown[candidates[0][1]] = None
    return shown


def suppress_figures(figures: dict) -> dict:
    """Segment figures with every cell of fewer than SMALL_CELL consumers withheld (SPEC §3), and nothing
    from which a withheld cell could be derived."""
    total = figures["consumers"]
    delinquent = figures["delinquent_consumers"]
    # The delinquent and the others both need enough consumers: either count gives away the other.
    delinquency_shown = suppress(delinquent) is not None and suppress(total - delinquent) is not None
    histogram = suppress_partition(
        [c["consumers"] for c in figures["score_histogram"]], suppress(total) is not None
    )
    return {
        "consumers": suppress(total),
        "score_histogram": [
            {**cell, "consumers": count}
            for cell, count in zip(figures["score_histogram"], histogram, strict=True)
        ],
        "delinquency": {
            "rate": round(delinquent / total, 4) if delinquency_shown else None,
            "delinquent_consumers": delinquent if delinquency_shown else None,
            "days_late_at_least": 30,
            "window_months": figures["delinquency_window_months"],
        },
        "monthly_volume": [
            {
                "month": row["month"],
                "consumers": suppress(row["consumers"]),
                "transactions": row["transactions"] if suppress(row["consumers"]) is not None else None,
                "amount": row["amount"] if suppress(row["consumers"]) is not None else None,
                "currency": "CNY",
            }
            for row in figures["monthly_volume"]
        ],
        "suppressed_below": SMALL_CELL,
    }


def _complement(values: list[int], shown: list[bool]) -> bool:
    """Withhold one more cell of a published partition when exactly one withheld cell is non-zero (it
    could be worked out by subtraction); True when something changed."""
    hidden_nonzero = [i for i, v in enumerate(values) if not shown[i] and v > 0]
    candidates = sorted((v, i) for i, v in enumerate(values) if shown[i])
    if len(hidden_nonzero) == 1 and candidates:
        shown[candidates[0][1]] = False
        return True
    return False


def _rate_shown(cells: list[dict], shown_cells: list[bool], numerator: str) -> list[bool]:
    """A rate per cell, shown when the cell is, and both its numerator and the rest number SMALL_CELL or more;
    the numerators add up to a figure that is published (or derivable from the other dimension)."""
    values = [c[numerator] for c in cells]
    shown = [
        shown_cells[i] and suppress(v) is not None and suppress(cells[i]["consumers"] - v) is not None
        for i, v in enumerate(values)
    ]
    _complement(values, shown)
    return shown


def _histograms_shown(cells: list[dict], shown_cells: list[bool]) -> list[list[bool]]:
    """Cell-by-bucket counts whose rows (a cell's consumers) and columns (a bucket of the segment's
    histogram) are both published: small cells withheld, then others until no row or column has exactly one
    withheld non-zero count."""
    matrix = [c["histogram"] for c in cells]
    shown = [[shown_cells[r] and suppress(v) is not None for v in row] for r, row in enumerate(matrix)]
    changed = True
    while changed:
        changed = False
        for r, row in enumerate(matrix):
            changed |= _complement(row, shown[r])
        for col in range(len(matrix[0]) if matrix else 0):
            column = [row[col] for row in matrix]
            flags = [shown[r][col] for r in range(len(matrix))]
            if _complement(column, flags):
                for r, flag in enumerate(flags):
                    shown[r][col] = flag
                changed = True
    return shown


def suppress_fairness_dimension(cells: list[tuple[str, dict]], buckets: list[tuple[int, int]]) -> list[dict]:
    """One dimension (province or age band) of segment_fairness_figures with small cells withheld as the
    segment summary withholds them: a cell of fewer than SMALL_CELL consumers shows no count or figure and
    is flagged `suppressed`; the cells of a dimension add up to the summary's published figures, so enough
    others are withheld that no withheld figure can be worked out by subtraction."""
    raw = [figures for _key, figures in cells]
    counts = suppress_partition([c["consumers"] for c in raw], total_shown=True)
    shown_cells = [c is not None for c in counts]
    delinquency = _rate_shown(raw, shown_cells, "delinquent")
    default = _rate_shown(raw, shown_cells, "defaulted")
    histograms = _histograms_shown(raw, shown_cells)
    result = []
    for i, (key, figures) in enumerate(cells):
        n = figures["consumers"]
        result.append(
            {
                "key": key,
                "suppressed": not shown_cells[i],
                "consumers": counts[i],
                "delinquency_rate": round(figures["delinquent"] / n, 4) if delinquency[i] else None,
                "delinquent_consumers": figures["delinquent"] if delinquency[i] else None,
                "default_rate": round(figures["defaulted"] / n, 4) if default[i] else None,
                "defaulted_consumers": figures["defaulted"] if default[i] else None,
                "score_histogram": [
                    {"from": low, "to": high, "consumers": value if histograms[i][b] else None}
                    for b, ((low, high), value) in enumerate(zip(buckets, figures["histogram"], strict=True))
                ],
            }
        )
    return result


def segment_fairness(segment_id: int) -> dict:
    """The fairness figures of one segment as shown to anyone in scope (API and web page alike)."""
    raw = selectors.segment_fairness_figures(segment_id)
    by_province = suppress_fairness_dimension(raw["province"], raw["buckets"])
    for cell in by_province:
        cell["name_en"] = PROVINCE_NAMES_EN.get(cell["key"], cell["key"])
    by_age_band = suppress_fairness_dimension(raw["age_band"], raw["buckets"])
    for cell in by_age_band:
        cell["name_en"] = cell["key"]
    return {
        "window_months": raw["window_months"],
        "delinquency_days_late_at_least": selectors.DELINQUENT_DAYS,
        "default_days_late_at_least": selectors.DEFAULT_DAYS,
        "age_basis": "Age reached this calendar year (China Standard Time) from the birth year.",
        "by_province": by_province,
        "by_age_band": by_age_band,
        "suppressed_below": SMALL_CELL,
    }
