"""Masking of personal data for holders of `view_masked_records` without `view_records` (SPEC §3)."""


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
