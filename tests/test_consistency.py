from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.consistency import check_consistency, monitor_flags, region_inconsistency_test
from analysis.election import Election

JAKARTA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sirekap" / "tps_json_dki_sample.zip"


def form(**changes):
    """One correct Sirekap-like form, with changes."""
    row = {"province": "31", "regency": "3101", "registered": 252, "voters": 230, "valid": 225, "invalid": 5,
           "ballots": 230, "01": 60, "02": 120, "03": 45, "dpt": 250, "dpt_voters": 226, "dptb_voters": 2,
           "dpk_voters": 2, "pemilih_dpt_j": 250, "pemilih_dpt_l": 120, "pemilih_dpt_p": 130}
    row.update(changes)
    return row


def election(rows, **kwargs):
    table = pd.DataFrame(rows)
    table.index = pd.Index([f"31010110010{i:02d}" for i in range(len(table))], name="unit_id")
    return Election.from_frame(table, levels=["province", "regency"], candidates=["01", "02", "03"], **kwargs)


def test_a_correct_form_passes_every_rule():
    result = check_consistency(election([form()]))
    assert result.violations.empty
    assert (result.coverage["evaluable"] == 1).all() and (result.coverage["failed"] == 0).all()


@pytest.mark.parametrize("changes, rule, difference", [
    ({"02": 780}, "candidates_sum_to_valid", 660),          # "78 became 780" in the votes
    ({"valid": 255}, "candidates_sum_to_valid", -30),
    ({"invalid": 50}, "valid_plus_invalid_is_ballots", 45),
    ({"dpk_voters": 12}, "voter_kinds_sum_to_total", 10),
    ({"ballots": 240, "invalid": 15}, "ballots_within_voters", 10),
    ({"dpt": 778, "pemilih_dpt_j": 778}, "dpt_within_capacity", 478),
    ({"pemilih_dpt_l": 121}, "male_plus_female_is_total:pemilih_dpt", 1),
])
def test_each_rule_fails_where_it_should_with_the_difference(changes, rule, difference):
    result = check_consistency(election([form(), form(**changes)]))
    rows = result.violations[result.violations["rule"] == rule]
    assert list(rows["unit_id"]) == ["3101011001001"]
    assert rows["difference"].iloc[0] == difference


def test_a_candidate_above_the_capacity_of_the_tps():
    result = check_consistency(election([form(**{"01": 641, "valid": 806, "ballots": 811})]))
    rows = result.violations[result.violations["rule"] == "candidate_within_capacity:01"]
    # capacity = ceil(250 * 1.02) + 2 DPTb + 2 DPK = 259
    assert rows["expected"].iloc[0] == 259 and rows["reported"].iloc[0] == 641


def test_missing_inputs_are_not_evaluable_not_passes():
    result = check_consistency(election([form(), form(**{"01": None}), form(valid=None)]))
    coverage = result.coverage.loc["candidates_sum_to_valid"]
    assert coverage["evaluable"] == 1 and coverage["not_evaluable"] == 2 and coverage["failed"] == 0


def test_rules_without_columns_are_listed_as_not_checked():
    rows = [{k: v for k, v in form().items() if not k.startswith(("pemilih", "dpt", "dpk", "dptb", "ballots"))}]
    result = check_consistency(election(rows))
    assert "voter_kinds_sum_to_total" in result.not_checked
    assert "dpt_voters" in result.not_checked["voter_kinds_sum_to_total"]
    assert "valid_plus_invalid_is_ballots" in result.not_checked
    assert "candidates_sum_to_valid" in result.coverage.index


def _regions(rates, per_region=400, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for r, rate in enumerate(rates):
        for _ in range(per_region):
            broken = rng.random() < rate
            rows.append(form(regency=f"31{r:02d}", **({"02": 121} if broken else {})))
    table = pd.DataFrame(rows)
    table.index = pd.Index([f"{i:013d}" for i in range(len(table))], name="unit_id")
    return check_consistency(Election.from_frame(table, levels=["province", "regency"], candidates=["01", "02", "03"]))


def test_a_region_with_ten_times_the_failures_is_flagged():
    result = _regions([0.01] * 19 + [0.10])
    table = region_inconsistency_test(result, "regency")
    assert list(table.loc[table["flagged"], "region"]) == ["3119"]
    assert (table["qvalue"] >= table["pvalue"]).all()


def test_evenly_spread_failures_flag_almost_nothing():
    # Null true in all 20 regions: BH at 0.05 bounds the chance of any flag at 5 %; Fisher's
    # exact test is conservative, so over 40 elections we expect at most ~2 with a flag.
    runs_with_flags = sum(region_inconsistency_test(_regions([0.02] * 20, 200, seed), "regency")["flagged"].any()
                          for seed in range(40))
    assert runs_with_flags <= 5


def test_monitor_rule_and_shares_before_and_after():
    flagged = form(**{"02": 780, "valid": 0})
    short = form(valid=100)
    result = monitor_flags(election([form(), flagged, short]))
    assert result.unit_ids == ("3101011001001", "3101011001002") and result.checked == 3
    assert result.shares.loc["02", "after, %"] == pytest.approx(100 * 120 / 225, abs=0.01)


def test_html_escapes_region_codes_and_names():
    result = check_consistency(election([form(regency="<img src=x onerror=alert(1)>")]))
    assert "<img" not in result._repr_html_()
    assert "<img" not in monitor_flags(election([form()]))._repr_html_()


@pytest.mark.skipif(not JAKARTA.exists(), reason="../shared/data/sirekap/tps_json_dki_sample.zip is absent")
def test_jakarta_sample_reproduces_the_published_inconsistency_counts():
    parse = pytest.importorskip("analysis.sources.sirekap.parse")
    jakarta, _ = parse.read_tps_bodies(JAKARTA)
    both = jakarta.table["has_chart"].astype(bool) & jakarta.table["has_administrasi"].astype(bool)
    result = check_consistency(jakarta)
    broken = result.failed["candidates_sum_to_valid"] & both.to_numpy()
    assert int(both.sum()) == 348
    assert int(broken.sum()) == 28  # sirekap-api.md: 28 of the 348 have sum of chart != suara_sah
    over = (jakarta.table["voters"] > jakarta.table["registered"]).fillna(False) & both
    assert int(over.sum()) == 17  # and 17 have more voters than DPT + DPTb
