"""Tests of the calibration study: invented digits look invented, and on clean synthetic elections the
calibrated digit nulls reject at their nominal rate while the textbook 2BL null does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import INVENTED_LAST_DIGIT, digit_calibration, invent_last_digits


def test_invented_last_digits_favour_0_and_5_and_avoid_repeats():
    rng = np.random.default_rng(3)
    totals = rng.integers(150, 300, 50_000).astype(float)
    counts = rng.binomial(totals.astype(int), 0.4).astype(float)
    counts[:10] = np.nan
    invented, rows = invent_last_digits(counts, totals, 0.2, rng)
    assert abs(len(rows) - 10_000) < 50                      # only counts above their total are kept as they were
    changed = invented[rows].astype(int)
    last = np.bincount(changed % 10, minlength=10) / len(changed)
    assert last[[0, 5]].min() > 0.15 and np.delete(last, [0, 5]).max() < 0.12
    assert not np.any((changed // 10) % 10 == changed % 10)  # no repeated final pair
    assert np.all(invented[rows] <= totals[rows]) and np.isnan(invented[:10]).all()
    untouched = np.setdiff1d(np.arange(10, len(counts)), rows)
    np.testing.assert_array_equal(invented[untouched], counts[untouched])
    assert INVENTED_LAST_DIGIT.sum() == pytest.approx(1)
    with pytest.raises(ValueError):
        invent_last_digits(counts, totals, 1.5, rng)


@pytest.fixture(scope="module")
def calibration():
    # Four clean elections at the demo's scale: 38 provinces x 3 candidates = 456 trials per test.
    return digit_calibration(n_elections=4, seed=500, fractions=(0.2,), nulls=("textbook", "exact"))


def test_calibrated_nulls_keep_their_level_on_clean_elections(calibration):
    clean = calibration.false_positive_rates().set_index(["test", "null"])
    trials = clean["trials"]
    assert (trials >= 400).all(), trials
    se = np.sqrt(0.05 * 0.95 / trials)
    for test in ("second digit", "last digit", "repeated final pair", "adjacent final pair"):
        rate = clean.loc[(test, "exact"), "rate"]
        assert abs(rate - 0.05) <= 3 * se[(test, "exact")], (test, rate)
    # bounded TPS counts are not Benford: the textbook 2BL null flags a large share of clean provinces
    assert clean.loc[("second digit", "textbook"), "rate"] > 0.25


def test_invented_digits_on_a_fifth_of_tps_are_detected(calibration):
    table = calibration.to_frame().set_index(["condition", "test", "null"])
    invented = "invented last digits on 20 % of TPS"
    assert table.loc[(invented, "last digit", "exact"), "rate"] > 0.3
    assert table.loc[(invented, "repeated final pair", "exact"), "rate"] > 0.2


def test_calibration_tables_round_trip_and_show_their_settings(calibration, tmp_path):
    from analysis.calibration import load_calibration, save_calibration

    save_calibration(calibration, "digits", tmp_path)
    loaded = load_calibration("digits", tmp_path)
    assert loaded.alpha == calibration.alpha and loaded.n_elections == calibration.n_elections
    pd.testing.assert_frame_equal(loaded.table[["test", "null", "condition", "trials", "rejections"]],
                                  calibration.table[["test", "null", "condition", "trials", "rejections"]])
    assert loaded.settings["code_version"] and loaded.settings["seed"] == 500
    appendix = loaded.appendix()
    assert len(appendix) == calibration.table[["test", "null"]].drop_duplicates().shape[0]
    assert any(c.startswith("false-positive rate") for c in appendix.columns)
    assert "invented last digits on 20 % of TPS" in appendix.columns
    assert "<table" in loaded._repr_html_()
    with pytest.raises(FileNotFoundError, match="forensik calibrate"):
        load_calibration("nothing", tmp_path)


def test_the_shipped_digit_calibration_backs_the_reports_claims():
    """The table the national report shows: measured by `forensik calibrate digits`, not edited by hand."""
    from analysis.calibration import load_calibration

    shipped = load_calibration("digits")
    clean = shipped.false_positive_rates().set_index(["test", "null"])
    assert (clean["rejections"] <= clean["trials"]).all()
    np.testing.assert_allclose(clean["rate"], clean["rejections"] / clean["trials"])
    se = np.sqrt(0.05 * 0.95 / clean["trials"])
    # the calibrated null the reports use keeps its level within 3 binomial Monte Carlo SEs (which
    # understate the error: tests of one election share its draws); the textbook 2BL does not
    for test in ("second digit", "last digit", "repeated final pair", "adjacent final pair"):
        assert abs(clean.loc[(test, "exact"), "rate"] - 0.05) <= 3 * se[(test, "exact")], test
    assert clean.loc[("second digit", "textbook"), "rate"] > 0.25


# ------------------------------------------------------------------------------------ turnout methods
def test_inject_incremental_stuffs_the_region_winner_and_keeps_forms_balanced():
    from analysis.calibration import inject_incremental
    from analysis.synth import make_election
    from analysis.turnout import region_winners

    election = make_election(seed=31, plan={}, ocr_rate=0, provinces_only=["11", "73"]).election
    stuffed, truth = inject_incremental(election, 0.2, seed=1)
    share = len(truth) / len(election)
    assert 0.15 < share < 0.25, share
    winners = region_winners(election, "province")
    before, after = election.totals("province"), stuffed.totals("province")
    for region, winner in winners.items():
        assert after.loc[region, winner] > before.loc[region, winner]
        assert after.loc[region, "voters"] >= before.loc[region, "voters"]
        assert after.loc[region, "registered"] == before.loc[region, "registered"]
    table = stuffed.table.dropna(subset=["valid", "01", "02", "03"])
    assert (table[["01", "02", "03"]].sum(axis=1) == table["valid"]).all()


def test_turnout_calibration_takes_any_method_and_measures_power():
    import pandas as pd

    from analysis.calibration import turnout_calibration

    calls = []

    def always_flags_big_turnout(election, seed):
        calls.append(seed)
        turnout = pd.Series(election.column("voters") / election.column("registered"), index=election.table.index)
        by_region = turnout.groupby(election.table["province"].astype(str)).median()
        return (by_region < 0.9).astype(float).rename("median turnout < 90 %")  # p 0 when turnout is high

    result = turnout_calibration(methods={"toy": always_flags_big_turnout}, n_elections=1, seed=3,
                                 provinces_only=["11", "73"], f_i=(0.2,))
    table = result.to_frame()
    assert set(table["condition"]) == {"clean", "incremental stuffing f_i = 0.2"}
    assert (table["trials"] == 2).all() and len(calls) == 2
    assert list(result.power().columns) == [0.2]


def test_turnout_calibration_runs_elections_in_parallel_with_the_same_table():
    from analysis.calibration import turnout_calibration

    offset = 0.0  # a closure over local state: forked workers inherit it, nothing is pickled

    def turnout_pvalue(election, seed):
        turnout = pd.Series(election.column("voters") / election.column("registered"), index=election.table.index)
        return (turnout.groupby(election.table["province"].astype(str)).median() - 0.8 + offset).rename("toy")

    small = dict(methods={"toy": turnout_pvalue}, n_elections=3, seed=5, provinces_only=["11", "73"], f_i=(0.2,))
    serial = turnout_calibration(**small)
    parallel = turnout_calibration(**small, jobs=2)
    pd.testing.assert_frame_equal(serial.table, parallel.table)
    assert (serial.table["trials"] == 6).all()


def _toy_methods():
    def median_turnout(election, seed):
        turnout = pd.Series(election.column("voters") / election.column("registered"), index=election.table.index)
        return (turnout.groupby(election.table["province"].astype(str)).median() - 0.75).clip(0, 1)

    def winner_share(election, seed):
        share = pd.Series(election.column("02") / election.column("valid"), index=election.table.index)
        return (share.groupby(election.table["province"].astype(str)).mean() - 0.5 + 1e-3 * (seed % 7)).clip(0, 1)

    return {"turnout toy": median_turnout, "share toy": winner_share}


def test_turnout_calibration_extends_with_methods_measured_on_the_same_elections(tmp_path):
    from analysis.calibration import (extend_turnout_calibration, load_calibration, save_calibration,
                                      turnout_calibration)

    toys = _toy_methods()
    design = dict(n_elections=2, seed=5, provinces_only=["11", "73"], f_i=(0.1, 0.2))
    first = turnout_calibration(methods={"turnout toy": toys["turnout toy"]}, **design)
    save_calibration(first, "turnout", tmp_path)
    later = turnout_calibration(methods={"share toy": toys["share toy"]}, **design)
    extended = extend_turnout_calibration(load_calibration("turnout", tmp_path), later)
    together = turnout_calibration(methods=toys, **design)
    # The same rows as one run of both methods: the elections and stuffing do not depend on the methods.
    key = ["method", "condition"]
    pd.testing.assert_frame_equal(extended.table.sort_values(key).reset_index(drop=True)[together.table.columns],
                                  together.table.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert extended.settings["methods"] == ["turnout toy", "share toy"]
    assert [run["methods"] for run in extended.settings["runs"]] == [["turnout toy"], ["share toy"]]

    with pytest.raises(ValueError, match="seed differ"):
        extend_turnout_calibration(first, turnout_calibration(methods={"share toy": toys["share toy"]},
                                                              **{**design, "seed": 6}))
    with pytest.raises(ValueError, match="n_elections differ"):
        extend_turnout_calibration(first, turnout_calibration(methods={"share toy": toys["share toy"]},
                                                              **{**design, "n_elections": 1}))
    with pytest.raises(ValueError, match="turnout toy already in the stored table"):
        extend_turnout_calibration(first, first)
    with pytest.raises(ValueError, match="provinces_only differ"):  # other elections, though the same seeds
        extend_turnout_calibration(first, turnout_calibration(methods={"share toy": toys["share toy"]},
                                                              **{**design, "provinces_only": ["11"]}))
    assert extended.settings["runs"][-1]["code_version"]


def test_default_turnout_methods_include_spikes_and_local_outliers():
    from analysis.calibration import default_turnout_methods, inject_incremental
    from analysis.synth import make_election

    methods = default_turnout_methods(spikes_resamples=49)
    assert {"spikes", "local outliers", "local outliers vs other regions"} <= set(methods)
    election = make_election(scale=0.02, seed=41, plan={}, ocr_rate=0, provinces_only=["32", "65"]).election
    sizes = election.table["province"].astype(str).value_counts()
    for name in ("spikes", "local outliers"):
        p = methods[name](election, 3)
        assert set(p.index) <= {"32", "65"} and 0 <= p["32"] <= 1, (name, p)
    # Two provinces are too few to compare each with the others: no trial (tests/test_outliers.py
    # measures that comparison with enough regions).
    assert methods["local outliers vs other regions"](election, 3).isna().all()
    spikes = methods["spikes"](election, 3)
    # Below 100 usable TPS the spikes test makes no trial (as spikes_table leaves such regions NaN).
    assert all(pd.isna(spikes.get(code)) for code, n in sizes.items() if n < 100)
    # Local outliers see a TPS stuffed far beyond its neighbours: f_i = 0.2 raises the excess count.
    stuffed, _ = inject_incremental(election, 0.2, seed=9)
    assert methods["local outliers"](stuffed, 3)["32"] < methods["local outliers"](election, 3)["32"]


def test_turnout_calibration_round_trips_through_save_and_load(tmp_path):
    import pandas as pd

    from analysis.calibration import TurnoutCalibration, load_calibration, save_calibration

    table = pd.DataFrame({"method": ["Klimek model", "Klimek model"], "condition": ["clean", "incremental stuffing f_i = 0.1"],
                          "f_i": [0.0, 0.1], "trials": [76, 76], "rejections": [3, 40]})
    table["rate"] = table["rejections"] / table["trials"]
    table["mc_se"] = (table["rate"] * (1 - table["rate"]) / table["trials"]) ** 0.5
    save_calibration(TurnoutCalibration(table, 0.05, 2, "province", {"scale": 0.02}), "turnout", tmp_path)
    loaded = load_calibration("turnout", tmp_path)
    assert isinstance(loaded, TurnoutCalibration)
    appendix = loaded.appendix().set_index("method")
    assert appendix.loc["Klimek model", "false-positive rate (clean)"] == "0.039 ± 0.022"
    assert appendix.loc["Klimek model", "power, f_i = 0.1"].startswith("0.526")


def test_parallel_elections_give_the_same_table_and_disjoint_runs_extend_it():
    from analysis.calibration import digit_calibration, extend_calibration

    small = dict(nulls=("textbook", "exact"), provinces_only=["11", "31"], fractions=(0.2,))
    serial = digit_calibration(n_elections=2, seed=7, **small)
    parallel = digit_calibration(n_elections=2, seed=7, jobs=2, **small)
    pd.testing.assert_frame_equal(serial.table, parallel.table)

    later = digit_calibration(n_elections=1, seed=9, **small)
    extended = extend_calibration(serial, later)
    assert extended.n_elections == 3
    assert [(r["seed"], r["n_elections"]) for r in extended.settings["runs"]] == [(7, 2), (9, 1)]
    # A clean election's trials do not depend on the run it was drawn in: the clean rows are those of one run.
    one_run = digit_calibration(n_elections=3, seed=7, **small)
    keys = ["test", "null", "condition"]

    def clean(calibration):
        return calibration.false_positive_rates().set_index(keys)[["trials", "rejections", "rate"]].sort_index()

    pd.testing.assert_frame_equal(clean(extended), clean(one_run))
    merged = extended.table.merge(serial.table, on=keys).merge(later.table, on=keys)
    np.testing.assert_array_equal(merged["trials_x"], merged["trials_y"] + merged["trials"])
    with pytest.raises(ValueError, match="overlapping seeds"):
        extend_calibration(serial, one_run)
    # the same elections may add rows of another null: only that null's rows are taken from them
    from analysis.calibration import select_nulls

    exact_only = select_nulls(digit_calibration(n_elections=2, seed=7, **{**small, "nulls": ("exact",)}), ["exact"])
    textbook = select_nulls(serial, ["textbook"])
    both = extend_calibration(textbook, exact_only)

    def counts(calibration):
        return calibration.table.set_index(keys)[["trials", "rejections"]].sort_index()

    pd.testing.assert_frame_equal(counts(both), counts(select_nulls(serial, ["textbook", "exact"])))
    assert both.n_elections == 2 and [r["nulls"] for r in both.settings["runs"]] == [["textbook"], ["exact"]]
    with pytest.raises(ValueError, match="no rows"):
        select_nulls(serial, ["simulated"])
    with pytest.raises(ValueError, match="provinces_only"):
        extend_calibration(serial, digit_calibration(n_elections=1, seed=30, **{**small, "provinces_only": ["11"]}))
    with pytest.raises(ValueError, match="fractions"):
        extend_calibration(serial, digit_calibration(n_elections=1, seed=20, **{**small, "fractions": (0.05,)}))


def test_between_election_se_treats_elections_as_the_units():
    from analysis.calibration import _between_election_se

    keys = {"test": "t", "null": "n", "condition": "clean"}
    elections = pd.DataFrame([{**keys, "election": e, "trials": 100, "rejections": r} for e, r in enumerate([2, 8, 5, 5])])
    summary = pd.DataFrame([{**keys, "trials": 400, "rejections": 20}])
    rates = np.array([2, 8, 5, 5]) / 100
    # equal cluster sizes: the SE of the mean of the per-election rates
    assert _between_election_se(elections, summary)[0] == pytest.approx(rates.std(ddof=1) / 2)
    # trials not all per election (another run without them): no between-election SE
    summary.loc[0, "trials"] = 500
    assert np.isnan(_between_election_se(elections, summary)[0])


def test_per_election_counts_round_trip_and_survive_an_extension(tmp_path):
    from analysis.calibration import digit_calibration, extend_calibration, load_calibration, save_calibration

    small = dict(nulls=("textbook", "exact"), provinces_only=["11", "31"], fractions=(0.2,))
    first = digit_calibration(n_elections=2, seed=40, **small)
    assert np.isfinite(first.table["mc_se_elections"]).all() and first.elections["election"].nunique() == 2
    save_calibration(first, "digits", tmp_path)
    loaded = load_calibration("digits", tmp_path)
    pd.testing.assert_frame_equal(loaded.elections, first.elections, check_dtype=False)
    extended = extend_calibration(loaded, digit_calibration(n_elections=1, seed=42, **small))
    assert extended.elections["election"].nunique() == 3 and np.isfinite(extended.table["mc_se_elections"]).all()
    assert "between elections" in extended.appendix().iloc[0, 2]


# ------------------------------------------------------------------------------------ TSM systematic test
def _tsm_recount(elections: pd.DataFrame, condition: str, measure: str) -> tuple[int, int]:
    part = elections[elections["condition"] == condition]
    if measure == "false_p":
        return int(part["false_p"].sum()), int(part["tests"].sum())
    if measure == "false_q":
        return int(part["false_q"].sum()), int(part["tests"].sum())
    if measure == "any_false_q":
        return int((part["false_q"] > 0).sum()), len(part)
    return int(part["planted_found"].astype(str).isin(["True", "true", "1"]).sum()), len(part)


def test_tsm_calibration_counts_what_it_says_and_round_trips(tmp_path):
    from analysis.calibration import TSMCalibration, load_calibration, save_calibration, tsm_calibration

    result = tsm_calibration(n_elections=2, seed=5, scale=0.01, min_tps=200, directional_shares=(0.015,),
                             provinces_only=["11", "12", "13", "31", "35", "73"])
    planted = "directional misreadings on 1.5 % of TPS in 35"
    assert set(result.table["condition"]) == {"clean", planted}
    assert result.rate("found", 0.015)[1] == 2 and result.rate("false_p")[1] >= 20
    save_calibration(result, "tsm", tmp_path)
    loaded = load_calibration("tsm", tmp_path)
    assert isinstance(loaded, TSMCalibration) and loaded.settings["ocr_rate"] == 0.02
    for condition, share in (("clean", 0.0), (planted, 0.015)):
        for measure in ("false_p", "false_q", "any_false_q") + (("found",) if share else ()):
            assert loaded.rate(measure, share) == _tsm_recount(loaded.elections, condition, measure)
    assert "<table" in loaded._repr_html_() and "scale 0.01" in loaded._repr_html_()
    with pytest.raises(KeyError):
        loaded.rate("found", 0.0)  # no plant in a clean election


def test_shipped_tsm_table_is_its_elections_summed():
    # The figures notebooks quote must be the per-election measurements, summed, not typed.
    from analysis.calibration import TSM_MEASURES, load_calibration

    table = load_calibration("tsm")
    assert table.n_elections == len(table.elections[table.elections["condition"] == "clean"])
    for row in table.table.itertuples(index=False):
        key = next(k for k, v in TSM_MEASURES.items() if v == row.measure)
        assert (row.rejections, row.trials) == _tsm_recount(table.elections, row.condition, key)
        assert row.rate == pytest.approx(row.rejections / row.trials)


def test_shipped_mebane_tables_load_with_their_settings():
    from analysis.calibration import TurnoutCalibration, load_calibration

    chi2 = load_calibration("mebane")
    assert isinstance(chi2, TurnoutCalibration) and chi2.settings["kind"] == "mebane"
    rates = chi2.table.set_index("method")
    assert (rates["rejections"] <= rates["trials"]).all()
    assert rates["rate"].to_numpy() == pytest.approx((rates["rejections"] / rates["trials"]).to_numpy())
    assert all("not valid" in m for m in rates.index)  # the chi-square rows say what they are
    boot = load_calibration("mebane_bootstrap")
    assert boot.settings["n_null"] >= 1 and any("parametric bootstrap" in m for m in boot.table["method"])
