"""Tests of the TSM synthesis: the demo's planted directional misreadings are found as systematic
in their province and nowhere else; the systematic test's false-positive rate on clean elections;
massive, structured and the scorecard on known inputs."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis import tsm
from analysis.calibration import systematic_calibration
from analysis.consistency import find_misreadings
from analysis.election import Election
from analysis.synth import DEFAULT_PLAN, make_election

PLANTED = DEFAULT_PLAN["directional_misreading"]


def truth_misreadings(synthetic) -> pd.DataFrame:
    """The planted misreadings in find_misreadings' shape, with their true written numbers."""
    truth = synthetic.truth[synthetic.truth["kind"].str.endswith("misreading")]
    table = synthetic.election.table
    shown = [not pd.isna(table.at[u, f]) for u, f in zip(truth["unit_id"], truth["field"])]
    truth = truth[shown]
    return pd.DataFrame({"unit_id": truth["unit_id"], "field": truth["field"], "reported": truth["reported"],
                         "proposed": truth["original"].astype("Int64"), "edit": truth["detail"],
                         "confidence": 1.0, "unique": True}).reset_index(drop=True)


@pytest.fixture(scope="module")
def demo():
    # The demo exactly as `make report` builds it (scale 0.02, seed 2024).
    synthetic = make_election(scale=0.02, seed=2024)
    found = find_misreadings(synthetic.election)
    result = tsm.tsm(synthetic.election, found, level="province", n_boot=300, n_perm=199, seed=3)
    return synthetic, found, result


# ------------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize("written, read, kind", [
    (78, 780, "inserted"), (78, 718, "inserted"), (780, 78, "dropped"), (105, 5, "dropped"),
    (1, 4, "substituted"), (138, 188, "substituted"), (12, 21, "swapped"), (12, 34, "other"), (5, 5, "other"),
])
def test_classify_edit(written, read, kind):
    assert tsm.classify_edit(written, read) == kind


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 999), st.integers(0, 9), st.data())
def test_an_inserted_digit_is_classified_as_inserted_and_reads_larger(value, digit, data):
    text = str(value)
    pos = data.draw(st.integers(1 if digit == 0 else 0, len(text)))
    read = int(text[:pos] + str(digit) + text[pos:])
    assert tsm.classify_edit(value, read) == "inserted"
    assert read > value


def test_poisson_binomial_is_exact():
    pmf = tsm.poisson_binomial_pmf(np.full(40, 0.3))
    np.testing.assert_allclose(pmf, stats.binom.pmf(np.arange(41), 40, 0.3), atol=1e-12)
    p = np.random.default_rng(1).uniform(0, 1, 25)
    pmf = tsm.poisson_binomial_pmf(p)
    assert pmf.sum() == pytest.approx(1.0)
    assert np.dot(np.arange(26), pmf) == pytest.approx(p.sum())


def test_edit_model_direction_follows_the_digits():
    model = tsm.EditModel(kinds={"inserted": 0.3, "dropped": 0.2, "substituted": 0.5, "swapped": 0.0},
                          up_substituted=tuple(tsm.confusion_up()), n_reference=0, reference="test")
    up = model.p_up([0, 9, 99, 111, 999])
    assert up[0] == pytest.approx(1.0)  # 0 can only be read larger
    # 9 cannot be confused upwards; 99 can also lose a digit: both below 0.5
    assert up[1] == pytest.approx(0.3 / 0.8) and up[2] < up[1]
    assert up[3] > 0.5 > up[4]


def test_misreading_table_accounts_for_every_row():
    synthetic = make_election(scale=0.002, seed=3, min_tps=40, provinces_only=["31", "32"], plan={}, ocr_rate=0.05)
    rows = truth_misreadings(synthetic)
    bad = pd.DataFrame({"unit_id": ["0000000000000", rows["unit_id"].iloc[0]], "field": ["01", "no_such_box"],
                        "reported": [5, 5], "proposed": [4, 4], "edit": "", "confidence": 1.0, "unique": True})
    table, rejects = tsm.misreading_table(pd.concat([rows, bad]), synthetic.election)
    assert len(table) + len(rejects) == len(rows) + 2
    assert set(rejects["reason"]) == {"TPS not in this election", "field not a column of this election"}
    with pytest.raises(ValueError, match="lack the columns proposed"):
        tsm.misreading_table(rows.drop(columns="proposed"))


# ------------------------------------------------------------------------------------ the demo
def test_demo_planted_province_is_systematic_and_no_other(demo):
    _, _, result = demo
    table = result.systematic.table
    flagged = table[(table["region"] != "all") & table["flagged"]]
    hit = flagged[flagged["region"] == PLANTED]
    assert list(hit["candidate"]) == ["02"]
    assert hit["qvalue"].iloc[0] < 0.05
    # BH at 5 % keeps the expected share of false discoveries at or below 5 %; with a single true
    # discovery that rounds down to none: no other province may be flagged.
    assert set(flagged["region"]) == {PLANTED}, flagged


def test_demo_systematic_holds_with_the_true_misreadings_too(demo):
    synthetic, _, _ = demo
    table = tsm.systematic(synthetic.election, truth_misreadings(synthetic)).table
    flagged = table[(table["region"] != "all") & table["flagged"]]
    assert set(zip(flagged["region"], flagged["candidate"])) == {(PLANTED, "02")}


def test_demo_massive_interval_holds_the_true_gain(demo):
    synthetic, found, result = demo
    truth = truth_misreadings(synthetic)
    massive = result.massive.table.set_index("region")
    row = massive.loc[PLANTED]
    in_province = truth[truth["unit_id"].str[:2].eq(PLANTED) & truth["field"].eq("02")]
    true_gain = float((in_province["reported"] - in_province["proposed"]).sum())
    assert row["gain_02_low"] <= true_gain <= row["gain_02_high"]
    assert row["gain_02"] == pytest.approx(true_gain, rel=0.1)  # repairs by find_misreadings, not the truth
    assert row["gain_02"] > 10 * max(abs(row["gain_01"]), abs(row["gain_03"]))
    national = massive.loc["all"]
    assert national["leader"] == "02" and not national["order_can_change"]
    assert national["leader_share_repaired_low"] < national["leader_share_repaired"] < national["leader_share"]
    assert national["regions_leader_20pct"] == 38


def test_demo_structured_finds_the_province_concentration(demo):
    _, _, result = demo
    table = result.structured.table
    national = table[table["region"] == "all"].set_index("component")
    assert national.loc["province", "pvalue"] < 0.05
    assert national.loc["province", "statistic"] > 2 * national.loc["province", "null_mean"]


def test_scorecard_sentences_carry_numbers_and_limits(demo):
    _, _, result = demo
    card = result.to_frame()
    assert list(card["region"][:1]) == ["all"] and len(card) == 39
    text = result.sentences(PLANTED)
    assert "favour 02" in text and "C1" in text and "%" in text
    table = result.systematic.table
    clean = table[(table["region"] != "all") & (table["region"] != PLANTED) & (table["misreadings"] > 0)]
    assert "No candidate is favoured" in result.sentences(clean["region"].iloc[0])
    empty = table[(table["region"] != "all") & (table["misreadings"] == 0)]
    if len(empty):
        assert "nothing to test" in result.sentences(empty["region"].iloc[0])
    assert "<table" in result._repr_html_()


def test_unrepaired_misreadings_widen_the_interval():
    synthetic = make_election(scale=0.005, seed=5, min_tps=100, provinces_only=["31", "32", "33"], plan={}, ocr_rate=0.03)
    rows = truth_misreadings(synthetic)
    repaired = tsm.massive(synthetic.election, rows, level=None, n_boot=200, seed=1).table.iloc[0]
    candidate = rows.index[rows["field"].eq("02")][0]
    rows.loc[candidate, "proposed"] = pd.NA
    partial = tsm.massive(synthetic.election, rows, level=None, n_boot=200, seed=1).table.iloc[0]
    assert partial["unrepaired"] == 1
    assert partial["gain_02_max"] - partial["gain_02_min"] > 0
    assert partial["gain_02_high"] - partial["gain_02_low"] > repaired["gain_02_high"] - repaired["gain_02_low"]


def test_html_escapes_region_names():
    synthetic = make_election(scale=0.002, seed=4, min_tps=40, provinces_only=["31", "32"], plan={}, ocr_rate=0.05)
    table = synthetic.election.table.copy()
    table["province_name"] = "<script>alert(1)</script>"
    election = Election.from_frame(table, levels=synthetic.election.levels, candidates=synthetic.election.candidates)
    result = tsm.tsm(election, truth_misreadings(synthetic), n_boot=50, n_perm=19)
    for part in (result, result.massive, result.systematic, result.structured):
        out = part._repr_html_()
        assert "<script>" not in out
    assert html.escape("<script>") in result.massive._repr_html_()


# ------------------------------------------------------------------------------------ calibration
def test_systematic_false_positive_rate_on_clean_elections_is_at_most_alpha():
    # Clean elections: symmetric random OCR noise only, at 2 % of TPS so that each province has
    # several candidate misreadings. Ten seeds x 12 provinces x 3 candidates = 360 tests. Measured
    # with the full setting (20 seeds, 38 provinces): 1.9 % at p < 0.05, no q < 0.05 (report).
    provinces = ["11", "12", "13", "31", "32", "33", "35", "36", "51", "52", "64", "73"]
    runs = systematic_calibration(range(401, 411), ocr_rate=0.02, provinces_only=provinces, scale=0.01,
                                 min_tps=200)
    rate = runs["false_p"].sum() / runs["tests"].sum()
    assert runs["tests"].sum() >= 300
    # one-sided binomial bound: above 0.05 + 2.33 standard errors would reject calibration at 1 %
    assert rate <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / runs["tests"].sum()), rate
    assert runs["false_q"].sum() <= 1


def test_flag_rows_have_the_report_shape(demo):
    _, _, result = demo
    rows = result.systematic.flag_rows()
    assert list(rows.columns) == ["test", "region", "statistic", "pvalue", "qvalue"]
    assert len(rows) == 38 * 3
    hit = rows[rows["qvalue"] < 0.05]
    assert list(zip(hit["region"], hit["test"])) == [(PLANTED, "misreadings favour 02")]


def test_conditional_variant_also_finds_the_planted_province_only(demo):
    _, _, result = demo
    table = result.systematic_conditional.table
    flagged = table[(table["region"] != "all") & table["flagged"]]
    assert set(zip(flagged["region"], flagged["candidate"])) == {(PLANTED, "02")}
    assert "robustness variant" in result.sentences(PLANTED)


def test_concentration_null_is_the_within_parent_shuffle():
    # The fast null (inverse-CDF draws for parents with one misreading, multivariate hypergeometric
    # for the others) against brute-force shuffles of the indicator within each parent.
    from analysis.tsm import _concentration

    rng = np.random.default_rng(0)
    groups = rng.integers(0, 120, 1200).astype(str)
    parents = np.array([str(int(g) // 6) for g in groups])
    y = (rng.random(1200) < 0.02).astype(int)
    observed, null, _ = _concentration(y, groups, parents, 4000, np.random.default_rng(1))
    frame = pd.DataFrame({"g": groups, "p": parents})
    total = y.sum() - y.sum() ** 2 / len(y)

    def statistic(values):
        by_group = pd.Series(values).groupby([frame["p"], frame["g"]]).agg(["sum", "size"])
        by_parent = pd.Series(values).groupby(frame["p"]).agg(["sum", "size"])
        return ((by_group["sum"] ** 2 / by_group["size"]).sum() - (by_parent["sum"] ** 2 / by_parent["size"]).sum()) / total

    assert observed == pytest.approx(statistic(y))
    shuffle = np.random.default_rng(2)
    brute = []
    for _ in range(400):
        values = y.copy()
        for index in frame.groupby("p").indices.values():
            values[index] = shuffle.permutation(values[index])
        brute.append(statistic(values))
    brute = np.array(brute)
    assert abs(null.mean() - brute.mean()) < 3 * brute.std() / np.sqrt(len(brute))
    assert abs(np.quantile(null, 0.9) - np.quantile(brute, 0.9)) < 0.15 * brute.std() + 3 * brute.std() / np.sqrt(len(brute))
