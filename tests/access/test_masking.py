from portal.access import masking


def test_names_ids_and_phones_are_masked_as_the_spec_says():
    assert masking.mask_name("张三丰") == "张**"
    assert masking.mask_name("李四") == "李**"  # the length is not told
    assert masking.mask_resident_id("11010519491231002X") == "110105********002X"
    assert masking.mask_phone("13812345678") == "138****5678"


def test_a_single_withheld_cell_takes_another_with_it():
    assert masking.suppress_partition([54, 3, 0, 20], total_shown=True) == [54, None, None, None]
    assert masking.suppress_partition([54, 3, 5, 20], total_shown=True) == [54, None, None, 20]
    assert masking.suppress_partition([54, 3], total_shown=False) == [54, None]


def test_delinquency_is_withheld_when_either_side_is_small():
    figures = {
        "consumers": 57,
        "delinquent_consumers": 50,
        "delinquency_window_months": 12,
        "score_histogram": [],
        "monthly_volume": [],
    }
    assert masking.suppress_figures(figures)["delinquency"]["rate"] is None
    figures["delinquent_consumers"] = 20
    assert masking.suppress_figures(figures)["delinquency"]["delinquent_consumers"] == 20
