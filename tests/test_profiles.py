"""analysis/profiles.py: what an election's forms promise, and the rules each profile applies."""

import pandas as pd
import pytest

from analysis import consistency
from analysis.election import Election, ElectionTableError
from analysis.profiles import PROFILES, ProfileError, get_profile, infer_profile, profile_of, profile_spec


def _stations(**extra):
    table = pd.DataFrame({"unit_id": ["a", "b", "c"], "region": ["1", "1", "2"], "registered": [1000, 2500, 900],
                          "voters": [600, 2400, 500], "valid": [590, 2390, 480], "invalid": [10, 10, 20],
                          "A": [300, 2000, 200], "B": [290, 390, 280], **extra})
    return table


def test_a_polling_station_table_gets_generic_rules_not_sirekap_capacities():
    election = Election.from_frame(_stations(), levels=["region"], candidates=["A", "B"])
    assert profile_of(election).name == "polling_station"
    checks = consistency.check_consistency(election)
    # 2,500 voters on one station's roll breaks no rule: there is no Indonesian capacity of 300 here.
    assert checks.violations.empty
    assert "dpt_within_capacity" not in checks.coverage.index
    assert {"candidates_sum_to_valid", "valid_plus_invalid_is_voters", "voters_within_registered"} <= set(checks.coverage.index)


def test_a_mapping_limit_adds_a_roll_rule():
    election = Election.from_frame(_stations(), levels=["region"], candidates=["A", "B"],
                                   profile={"name": "polling_station", "max_registered": 2000})
    checks = consistency.check_consistency(election)
    broken = checks.violations[checks.violations["rule"] == "registered_within_limit"]
    assert broken["unit_id"].tolist() == ["b"]


def test_generic_rules_catch_broken_sums():
    table = _stations()
    table.loc[0, "valid"] = 595  # candidates 590, valid + invalid 605 against 600 voters
    election = Election.from_frame(table, levels=["region"], candidates=["A", "B"])
    rules = set(consistency.check_consistency(election).violations["rule"])
    assert rules == {"candidates_sum_to_valid", "valid_plus_invalid_is_voters"}


def test_sirekap_columns_infer_the_sirekap_profile_and_the_profile_survives_parquet(tmp_path):
    assert infer_profile(["dpt", "registered"]).name == "sirekap_tps_2024"
    election = Election.from_frame(_stations(), levels=["region"], candidates=["A", "B"],
                                   profile={"name": "indonesia_aggregate"})
    back = Election.read_parquet(election.to_parquet(tmp_path / "e.parquet"))
    assert profile_of(back).name == "indonesia_aggregate" and not profile_of(back).single_station


def test_unknown_profiles_and_limits_are_refused():
    with pytest.raises(ProfileError, match="unknown profile"):
        get_profile("nope")
    with pytest.raises(ProfileError, match="unknown profile limits"):
        get_profile("polling_station", capacity=3)
    with pytest.raises(ProfileError, match="positive whole number"):
        get_profile("polling_station", max_registered=0)
    with pytest.raises(ElectionTableError, match="unknown profile"):
        Election.from_frame(_stations(), levels=["region"], candidates=["A", "B"], profile={"name": "x"})


def test_profile_spec_keeps_only_what_differs():
    assert profile_spec(PROFILES["sirekap_tps_2024"]) == {"name": "sirekap_tps_2024"}
    assert profile_spec(get_profile("polling_station", max_registered=3000)) == {"name": "polling_station",
                                                                                 "max_registered": 3000}
