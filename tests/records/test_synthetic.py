"""The generator: valid identifiers, determinism, and an outcome that the data can predict."""

from datetime import date, timedelta

import pytest

from portal.records import synthetic

END = date(2026, 11, 1)


@pytest.fixture(scope="module")
def world() -> list[synthetic.ConsumerRow]:
    return list(synthetic.generate(seed=3, start=0, count=3_000, end=END))


def test_check_digit_of_known_resident_id():
    # The worked example of GB 11643-1999.
    assert synthetic.resident_id_check_digit("11010519491231002") == "X"
    assert synthetic.resident_id_is_valid("11010519491231002X")
    assert not synthetic.resident_id_is_valid("110105194912310021")


def test_every_generated_resident_id_has_a_valid_check_digit(world):
    assert all(synthetic.resident_id_is_valid(c.resident_id) for c in world)


def test_resident_id_encodes_birth_year_and_a_real_area(world):
    area_codes = {code for _p, _c, code in synthetic.AREA_SLOTS}
    for consumer in world:
        assert consumer.resident_id[:6] in area_codes
        assert int(consumer.resident_id[6:10]) == consumer.birth_year


def test_identifiers_are_unique(world):
    assert len({c.resident_id for c in world}) == len(world)
    assert len({c.phone for c in world}) == len(world)
    assert len({c.public_id for c in world}) == len(world)


def test_phone_numbers_are_chinese_mobile_numbers(world):
    for consumer in world:
        assert len(consumer.phone) == 11 and consumer.phone.isdigit()
        assert consumer.phone[:3] in synthetic.MOBILE_PREFIXES


def test_public_id_is_opaque(world):
    for consumer in world:
        assert consumer.public_id[0] == "C" and len(consumer.public_id) == 17
        assert set(consumer.public_id[1:]) <= set(synthetic.PUBLIC_ID_ALPHABET)


def test_same_seed_gives_the_same_world():
    first = list(synthetic.generate(seed=5, start=0, count=50, end=END))
    again = list(synthetic.generate(seed=5, start=0, count=50, end=END))
    assert first == again


def test_a_chunk_generates_the_same_rows_as_the_whole():
    whole = list(synthetic.generate(seed=5, start=0, count=40, end=END))
    chunk = list(synthetic.generate(seed=5, start=25, count=15, end=END))
    assert chunk == whole[25:]


def test_another_seed_gives_another_world():
    a = [c.public_id for c in synthetic.generate(seed=5, start=0, count=20, end=END)]
    b = [c.public_id for c in synthetic.generate(seed=6, start=0, count=20, end=END)]
    assert not set(a) & set(b)


def test_transactions_lie_in_the_two_years_before_the_end(world):
    start = synthetic.epoch_of(END - timedelta(days=synthetic.HISTORY_DAYS))
    stop = synthetic.epoch_of(END)
    for consumer in world:
        for txn in consumer.transactions:
            assert start <= txn[4] < stop
            assert txn[2] > 0


def test_only_repayments_carry_due_dates(world):
    for consumer in world:
        for _slot, kind, _amount, _merchant, _when, _channel, due, late in consumer.transactions:
            assert (due is not None and late is not None) == (kind == "repayment")


def test_about_fifty_transactions_per_consumer(world):
    average = sum(len(c.transactions) for c in world) / len(world)
    assert 40 <= average <= 60


def test_the_provinces_follow_population_weights(world):
    guangdong = sum(c.province == "广东" for c in world) / len(world)
    tianjin = sum(c.province == "天津" for c in world) / len(world)
    assert guangdong > 3 * tianjin


def test_the_default_outcome_is_observed_and_driven_by_the_hidden_risk(world):
    as_of = date(2025, 11, 1)
    borrowers = [c for c in world if any(a.product in synthetic.CREDIT_PRODUCTS for a in c.accounts)]
    outcomes = [synthetic.defaulted_within(c, as_of) for c in borrowers]
    rate = sum(outcomes) / len(outcomes)
    assert 0.02 < rate < 0.12
    riskiest = sorted(borrowers, key=lambda c: c.risk)[-len(borrowers) // 10 :]
    safest = sorted(borrowers, key=lambda c: c.risk)[: len(borrowers) // 2]
    rate_riskiest = sum(synthetic.defaulted_within(c, as_of) for c in riskiest) / len(riskiest)
    rate_safest = sum(synthetic.defaulted_within(c, as_of) for c in safest) / len(safest)
    assert rate_riskiest > 5 * max(rate_safest, 0.001)


def test_late_payments_before_the_as_of_date_predict_default_after_it(world):
    """The outcome is learnable without leakage: history before as-of separates defaulters after it."""
    as_of = date(2025, 11, 1)
    cutoff = synthetic.epoch_of(as_of)

    def late_before(c: synthetic.ConsumerRow) -> int:
        return sum(1 for t in c.transactions if t[1] == "repayment" and t[4] < cutoff and (t[7] or 0) > 0)

    scored = [(late_before(c), synthetic.defaulted_within(c, as_of)) for c in world if c.joined_on < as_of]
    positives = [s for s, y in scored if y]
    negatives = [s for s, y in scored if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    auc = wins / (len(positives) * len(negatives))
    assert auc > 0.65


def test_segments_overlap_and_follow_their_rules(world):
    by_slug: dict[str, list[synthetic.ConsumerRow]] = {}
    for consumer in world:
        for slug in consumer.segments:
            by_slug.setdefault(slug, []).append(consumer)
    assert set(by_slug) == {s.slug for s in synthetic.SEGMENTS}
    assert all(c.province in ("重庆", "四川") for c in by_slug["chengdu-chongqing-consumer-finance"])
    assert all(c.province == "广东" for c in by_slug["greater-bay-area"])
    assert any(len(c.segments) > 1 for c in world)


def test_an_index_outside_the_identity_space_is_refused():
    with pytest.raises(ValueError, match="outside"):
        synthetic.generate_consumer(1, synthetic.IDENTITY_SPACE, END)


def test_merchants_are_fixed_and_cover_every_category():
    merchants = synthetic.merchants()
    assert merchants == synthetic.merchants()
    assert {m.category for m in merchants} == {c[0] for c in synthetic.CATEGORIES}
    assert len({m.code for m in merchants}) == len(merchants)
