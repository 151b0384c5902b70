"""Masking of personal data for holders of `view_masked_records` without `view_records` (SPEC §3)."""


def mask_name(name: str) -> str:
    """The surname and one star per remaining character: 张三丰 -> 张**."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def mask_resident_id(value: str) -> str:
    """First six (the area) and last four characters: 110105********002X."""
    return value[:6] + "*" * 8 + value[-4:] if len(value) >= 10 else "*" * len(value)


def mask_phone(value: str) -> str:
    """First three and last four digits: 138****5678."""
    return value[:3] + "****" + value[-4:] if len(value) >= 7 else "*" * len(value)


SMALL_CELL = 10


def suppress(count: int | None) -> int | None:
    """A count of fewer than SMALL_CELL consumers is withheld (None): no individual can be singled out."""
    if count is None or count < SMALL_CELL:
        return None
    return count


def suppress_figures(figures: dict) -> dict:
    """Segment figures with every cell of fewer than SMALL_CELL consumers withheld (SPEC §3)."""
    total = figures["consumers"]
    delinquent = figures["delinquent_consumers"]
    enough = total >= SMALL_CELL
    return {
        "consumers": suppress(total),
        "score_histogram": [
            {**cell, "consumers": suppress(cell["consumers"])} for cell in figures["score_histogram"]
        ],
        "delinquency": {
            # A rate over a suppressed population, or of a suppressed count, would reveal the count.
            "rate": round(delinquent / total, 4) if enough and suppress(delinquent) is not None else None,
            "delinquent_consumers": suppress(delinquent) if enough else None,
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
