"""Tests of Mebane's toolkit statistics: the published Albania 2013 table, definitions, flags, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.election import Election
from analysis.eft import EFT_COLUMNS, EFT_NULLS, eft_statistics, eft_table

ALBANIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference" / "albania_2013.csv.gz"

# methods.md, section 1: the toolkit's published "Turnout" rows (count = ballots, pct = ballots / registered).
PUBLISHED = {
    "BERAT": {"_2BL": 4.244, "P05s": 0.197, "C05s": 0.217, "Skew": 0.261, "Kurt": 3.474, "DipT": 0.651, "Obs": 300},
    "DIBER": {"_2BL": 4.167, "P05s": 0.221, "C05s": 0.225, "Skew": 1.685, "Kurt": 4.954, "DipT": 0.0, "Obs": 258},
    "GJIROKASTER": {"_2BL": 4.549, "P05s": 0.287, "C05s": 0.228, "Skew": 0.72, "Kurt": 2.166, "DipT": 0.0, "Obs": 237},
}


@pytest.fixture(scope="module")
def albania() -> pd.DataFrame:
    if not ALBANIA.exists():
        pytest.skip(f"reference data not found: {ALBANIA} (../shared is absent)")
    return pd.read_csv(ALBANIA)


@pytest.mark.parametrize("prefecture", sorted(PUBLISHED))
def test_albania_2013_turnout_rows_reproduce_the_published_table(albania, prefecture):
    units = albania[albania["Prefectures"] == prefecture]
    row = eft_statistics(units["Ballots"], units["Registered"], n_boot=200, seed=1, row="Turnout").to_frame().iloc[0]
    for name, published in PUBLISHED[prefecture].items():
        assert round(float(row[name]), 3) == pytest.approx(published, abs=5e-4), (prefecture, name, row[name])


def test_albania_intervals_and_flags_follow_the_toolkit_rules(albania):
    units = albania[albania["Prefectures"] == "GJIROKASTER"]
    result = eft_statistics(units["Ballots"], units["Registered"], n_boot=500, seed=3)
    frame = result.to_frame()
    assert list(frame.columns[:10]) == list(EFT_COLUMNS)
    for name in ("_2BL", "LastC", "C05s", "P05s", "Skew", "Kurt"):
        lo, hi, value = frame[f"{name}_lo"].iloc[0], frame[f"{name}_hi"].iloc[0], frame[name].iloc[0]
        assert lo < value < hi
        assert frame[f"{name}_flag"].iloc[0] == (not lo <= EFT_NULLS[name] <= hi)
    assert result.flags["DipT"]  # p = 0.000 published: multimodal turnout
    assert result.flags["P05s"] and result.flags["Kurt"]  # P05s 0.287 and Kurt 2.166 lie far from 0.2 and 3
    again = eft_statistics(units["Ballots"], units["Registered"], n_boot=500, seed=3).to_frame()
    pd.testing.assert_frame_equal(frame, again)


def test_definitions_on_a_hand_checked_example():
    counts = np.array([0, 7, 10, 25, 150, 199, 1234])
    totals = np.array([10, 10, 20, 50, 300, 200, 1234])
    registered = np.array([20, 30, 40, 60, 400, 250, 2000])
    result = eft_statistics(counts, totals, registered=registered, n_boot=0)
    v = result.values
    assert v["_2BL"] == pytest.approx(np.mean([0, 5, 5, 9, 2]))       # 10, 25, 150, 199, 1234
    assert v["LastC"] == pytest.approx(np.mean([0, 7, 0, 5, 0, 9, 4]))
    assert v["C05s"] == pytest.approx(4 / 7)
    pct = counts / totals                                            # 0, .7, .5, .5, .5, .995, 1
    assert v["P05s"] == pytest.approx(np.mean([1, 1, 1, 1, 1, 1, 1]))  # 0, 70, 50, 50, 50, 100 (99.5 -> 100), 100
    dev = pct - pct.mean()
    assert v["Skew"] == pytest.approx(np.mean(dev ** 3) / np.mean(dev ** 2) ** 1.5)
    assert v["Kurt"] == pytest.approx(np.mean(dev ** 4) / np.mean(dev ** 2) ** 2)
    turnout = totals / registered
    slope = np.polyfit(turnout, pct, 1)[0]
    assert v["Sobyanin"] == pytest.approx(slope - pct.mean())
    assert v["Correlation"] == pytest.approx(np.corrcoef(turnout, pct)[0, 1])
    assert result.n == 7 and np.isnan(result.lower["_2BL"])        # no bootstrap asked for


def test_percentages_round_half_to_even_and_cap_at_one():
    # 0.125 -> 12.5 -> 12 (half to even), 0.135 -> 13.5 -> 14; 1.2 capped to 1 -> 100 ends in 0
    result = eft_statistics([125, 135, 12], [1000, 1000, 10], n_boot=0)
    assert result.values["P05s"] == pytest.approx(1 / 3)


def test_missing_and_bad_input():
    result = eft_statistics([10, None, 30, 40, 50], [100, 100, 0, 200, 100], n_boot=50, seed=0)
    assert result.n == 5
    assert np.isfinite(result.values["_2BL"])
    with pytest.raises(ValueError, match="differ in length"):
        eft_statistics([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="n_boot"):
        eft_statistics([1, 2], [1, 2], n_boot=-1)
    with pytest.raises(ValueError, match="counts"):
        eft_statistics([[1, 2]], [[1, 2]])
    empty = eft_statistics([], [], n_boot=10)
    assert empty.n == 0 and np.isnan(empty.values["_2BL"])


def _election() -> Election:
    rng = np.random.default_rng(5)
    rows = []
    for province, name, size in (("11", "Aceh", 150), ("12", "<img src=x onerror=alert(1)>", 120), ("13", "Tiny", 5)):
        for i in range(size):
            registered = int(rng.integers(150, 300))
            voters = int(rng.binomial(registered, 0.8))
            a = int(rng.binomial(voters, 0.3 if province == "11" else 0.6))
            rows.append({"unit_id": f"{province}{i:05d}", "province": province, "province_name": name,
                         "registered": registered, "voters": voters, "valid": voters, "invalid": 0,
                         "01": a, "02": voters - a})
    return Election.from_frame(pd.DataFrame(rows), levels=["province"], candidates=["01", "02"], name="t")


def test_eft_table_rows_per_region_leader_and_escaping():
    table = eft_table(_election(), level="province", n_boot=100, seed=2)
    frame = table.to_frame()
    assert set(frame["row"]) == {"Turnout", "01", "02", "All leaders (02)", "All leaders (01)"}
    aceh = frame[frame["region"] == "11"].set_index("row")
    assert "All leaders (02)" in aceh.index  # 01 gets 30 %: 02 leads in Aceh here
    assert (frame.loc[frame["region"] == "13", "note"].str.startswith("too few units")).all()
    assert aceh.loc["Turnout", "Obs"] == 150 and np.isnan(aceh.loc["Turnout", "Sobyanin"])
    assert np.isfinite(aceh.loc["01", "Sobyanin"]) and np.isfinite(aceh.loc["01", "Correlation"])
    page = table._repr_html_()
    assert "<img" not in page and "&lt;img" in page
    assert set(table.flags().columns) >= {"region", "row", "statistic", "value", "lower", "upper"}
    whole = eft_table(_election(), n_boot=0)
    assert set(whole.to_frame()["region"]) == {"all"}
    with pytest.raises(KeyError):
        eft_table(_election(), level="regency")


def test_bootstrap_by_weights_equals_resampling_units():
    # The bootstrap computes each resample's statistics from unit counts (a matrix product); they must
    # equal the statistics of the resampled units themselves, missing values and capped shares included.
    from analysis import eft

    rng = np.random.default_rng(8)
    counts = rng.integers(0, 400, 3000).astype(float)
    totals = counts + rng.integers(0, 300, 3000)
    counts[rng.random(3000) < 0.05] = np.nan
    totals[:20] = 0  # 0 / 0 and x / 0: missing and capped percentages
    with np.errstate(divide="ignore", invalid="ignore"):
        units = eft._units(counts, counts / totals)
    index = rng.integers(0, 3000, size=(40, 3000))
    by_weights = eft._resampled(units, index)
    for row, picked in enumerate(index):
        resample = eft._Units(**{name: getattr(units, name)[picked] for name in eft._Units.__dataclass_fields__})
        for name, value in eft._point(resample).items():
            np.testing.assert_allclose(by_weights[name][row], value, rtol=1e-9, atol=1e-12, err_msg=name)
