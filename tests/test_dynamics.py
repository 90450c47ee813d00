"""What changed between snapshots: diffs of Elections, increments, decreases, the composition test."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.dynamics import composition_test, decreases, diff_elections, increments, share_of_added
from analysis.election import Election
from analysis.synth import synthetic_series
from analysis.sources.sirekap.aggregates import (
    PROGRESS_COLUMNS, VOTE_COLUMNS, AggregateSeries, read_national_history, read_province_hourly,
)

AGGREGATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sirekap" / "aggregates"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CANDIDATES = ("01", "02", "03")
LEVELS = ("province", "regency")


# ------------------------------------------------------------------------------ two snapshots
def small_election(rows: list[dict], name: str = "") -> Election:
    table = pd.DataFrame(rows, columns=["unit_id", *LEVELS, "registered", "voters", "valid", "invalid", *CANDIDATES])
    for c in ("registered", "voters", "valid", "invalid", *CANDIDATES):
        table[c] = table[c].astype("Int64")
    return Election.from_frame(table, levels=LEVELS, candidates=CANDIDATES, name=name)


def tps(code: str, votes, registered=250) -> dict:
    votes = list(votes) if votes is not None else [None] * 3
    valid = None if votes[0] is None else sum(votes)
    return {"unit_id": code, "province": code[:2], "regency": code[:4], "registered": registered,
            "voters": None if valid is None else valid + 2, "valid": valid, "invalid": None if valid is None else 2,
            **dict(zip(CANDIDATES, votes))}


def test_diff_names_every_kind_of_change():
    a = small_election([tps("3101011001001", (10, 20, 30)), tps("3101011001002", (5, 5, 5)),
                        tps("3101011001003", None), tps("3201011001001", (1, 2, 3)), tps("3201011001002", (7, 7, 7))], "A")
    b = small_election([tps("3101011001001", (10, 25, 30)), tps("3101011001002", None),
                        tps("3101011001003", (40, 0, 1)), tps("3201011001001", (1, 2, 3)), tps("3301011001001", (2, 2, 2))], "B")
    diff = diff_elections(a, b)
    status = diff.units.set_index("unit_id")["status"]
    assert status.to_dict() == {"3101011001001": "revised", "3101011001002": "withdrawn", "3101011001003": "published",
                                "3201011001001": "unchanged", "3201011001002": "dropped", "3301011001001": "published"}
    revised = diff.changes[diff.changes["unit_id"] == "3101011001001"].set_index("column")
    assert revised.loc["02", "old"] == 20 and revised.loc["02", "new"] == 25
    net = diff.net[diff.net["level"] == "province"].set_index(["region", "contestant"])
    assert net.loc[("31", "01"), "change"] == 40 - 5
    assert net.loc[("31", "01"), "from_published"] == 40 and net.loc[("31", "01"), "from_withdrawn"] == -5
    assert net.loc[("32", "02"), "from_dropped"] == -7
    parts = diff.net[["from_published", "from_withdrawn", "from_revised", "from_dropped"]].sum(axis=1)
    assert (parts == diff.net["change"]).all()
    changed = diff.changed_tps().set_index("unit_id")
    assert "3201011001001" not in changed.index
    assert changed.loc["3101011001001", "01_old"] == changed.loc["3101011001001", "01_new"] == 10
    html = diff._repr_html_()
    assert "revised" in html and "<table" in html


def test_diff_refuses_different_ballots():
    a = small_election([tps("3101011001001", (1, 2, 3))])
    b = Election.from_frame(a.table.rename(columns={"03": "04"}), levels=LEVELS, candidates=("01", "02", "04"))
    with pytest.raises(ValueError, match="not the same ballot"):
        diff_elections(a, b)


ACTIONS = st.sampled_from(["keep", "revise", "withdraw", "publish", "drop"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(st.tuples(ACTIONS, st.integers(0, 300), st.integers(0, 2)), min_size=1, max_size=12),
       new=st.lists(st.tuples(st.integers(0, 300), st.booleans()), max_size=4))
def test_applying_the_reported_changes_to_a_gives_b(actions, new):
    rows_a, rows_b = [], []
    for i, (action, value, which) in enumerate(actions):
        code = f"{31 + i % 3}01011001{i:03d}"
        votes = [value, value // 2 + 1, 300 - value]
        published_in_a = action != "publish"
        rows_a.append(tps(code, votes if published_in_a else None))
        if action == "drop":
            continue
        after = list(votes)
        if action == "revise":
            after[which] = (after[which] + 7) % 301
        rows_b.append(tps(code, None if action == "withdraw" else after))
    for j, (value, has_votes) in enumerate(new):
        rows_b.append(tps(f"3501011001{j:03d}", (value, 1, 2) if has_votes else None))
    a, b = small_election(rows_a), small_election(rows_b)
    diff = diff_elections(a, b)
    rebuilt = diff.apply(a.table).sort_index()
    expected = b.table[list(diff.columns)].sort_index()
    pd.testing.assert_frame_equal(rebuilt, expected, check_dtype=False, check_names=False)
    # The net change per region equals the change of the regions' totals.
    for level in LEVELS:
        totals = (b.table.groupby(level)[list(CANDIDATES)].sum().reindex(a.table[level].unique().tolist()
                  + b.table[level].unique().tolist()).fillna(0)
                  - a.table.groupby(level)[list(CANDIDATES)].sum().reindex(a.table[level].unique().tolist()
                  + b.table[level].unique().tolist()).fillna(0))
        totals = totals[~totals.index.duplicated()]
        net = diff.net[diff.net["level"] == level].pivot(index="region", columns="contestant", values="change")
        assert (net.reindex(totals.index)[list(CANDIDATES)].astype(int).to_numpy() == totals.astype(int).to_numpy()).all()


# ------------------------------------------------------------------------------ aggregate series
def series_from(wide: dict[str, list[list[int]]], tps_reported: dict[str, list[int]] | None = None) -> AggregateSeries:
    """A small hand-made series: region -> rows of votes per snapshot (contestants 01..K)."""
    votes, progress = [], []
    for region, rows in wide.items():
        times = pd.date_range("2024-02-20 10:00", periods=len(rows), freq="h", tz="Asia/Jakarta")
        for t, row in zip(times, rows):
            for k, v in enumerate(row):
                votes.append((t, pd.NaT, region, "province", f"{k + 1:02d}", v))
        if tps_reported:
            for t, n in zip(times, tps_reported[region]):
                progress.append((t, region, "province", np.nan, 1000, n, True))
    k = len(next(iter(wide.values()))[0])
    return AggregateSeries("test", pd.DataFrame(votes, columns=VOTE_COLUMNS).astype({"votes": "Int64"}),
                           pd.DataFrame(progress, columns=PROGRESS_COLUMNS).astype({"tps_reported": "Int64", "tps_total": "Int64"}),
                           pd.DataFrame(columns=["source", "row", "reason"]),
                           contestants=tuple(f"{i + 1:02d}" for i in range(k)))


def test_increments_and_the_tps_capacity_bound():
    series = series_from({"1": [[100, 100], [300, 250], [1300, 300], [1250, 310]]}, {"1": [2, 3, 4, 4]})
    table = increments(series).table
    assert table["added"].tolist() == [350, 1050, -40]
    assert table["tps_new"].tolist() == [1, 1, 0]
    # One new TPS holds at most ceil(300 x 1.02) + 100 = 406 votes.
    assert increments(series).per_tps == 406
    assert table["over_capacity"].tolist() == [False, True, False]   # a fall exceeds no capacity
    assert table["removed"].tolist() == [0, 0, -50]


def test_decreases_are_found_with_before_and_after():
    series = series_from({"1": [[100, 100], [90, 120], [95, 110]], "2": [[5, 5], [6, 6], [7, 7]]})
    found = decreases(series)
    t = found.table
    assert t[["region", "contestant", "before", "after", "change"]].values.tolist() == [
        ["1", "01", 100, 90, -10], ["1", "02", 120, 110, -10]]
    summary = found.summary().set_index("contestant")
    assert summary.loc["01", "falls"] == 1 and summary.loc["02", "votes_lost"] == -10
    assert "2" not in set(t["region"])


def test_share_of_added_counts_a_period_and_names_an_unknown_contestant():
    series = series_from({"1": [[100, 100], [130, 110], [150, 150]]})
    shares = share_of_added(series, "02", periods={"all": ("2024-02-20 10:00", "2024-02-20 12:00")}, regions=["1"])
    assert shares.loc[0, ["added", "added_02", "share"]].tolist() == [100.0, 50.0, 0.5]
    with pytest.raises(ValueError, match=r"no contestant '2' in the series of region 1; it has 01, 02"):
        share_of_added(series, "2", periods={"all": ("2024-02-20 10:00", "2024-02-20 12:00")}, regions=["1"])


@pytest.fixture(scope="module")
def clean_tests():
    # Three clean series (4 regions x 300 intervals each), increments of whole TPS, drifting shares.
    return [composition_test(synthetic_series(seed=seed)) for seed in (101, 102, 103)]


def test_composition_false_positive_rate_on_clean_series_is_near_alpha(clean_tests):
    pvalues = np.concatenate([c.table["pvalue"].to_numpy() for c in clean_tests])
    assert len(pvalues) > 2000
    rate = float((pvalues < 0.05).mean())
    # Over ten clean series the rate was 4.1 % (see the report); intervals of one region share a
    # baseline, so allow about three binomial standard errors either side.
    assert 0.02 <= rate <= 0.075, rate
    assert float((pvalues < 0.01).mean()) <= 0.02
    assert sum(int(c.flagged().shape[0]) for c in clean_tests) <= 3


def test_composition_detects_an_injected_skewed_increment():
    # Interval 60 adds about 100 exp(-1) ~ 37 TPS (~8,100 votes); 1,600 extra votes for 04 is 20 %.
    plants = [{"region": str(r), "interval": 60, "contestant": "04", "votes": 1600} for r in (1, 2, 3, 4)]
    series = synthetic_series(seed=7, inject=plants)
    result = composition_test(series, focus=("04",))
    end = series.times[60]
    hits = result.table[result.table["end"] == end]
    assert len(hits) == 4
    assert (hits["qvalue"] < 0.05).all() and (hits["driver"] == "04").all()
    assert (hits["share_04"] > hits["expected_04"]).all()
    others = result.table[result.table["end"] != end]
    assert int(others["flagged"].sum()) <= 2


def test_composition_test_result_object():
    result = composition_test(synthetic_series(seed=3, regions=1, intervals=120), focus=("02",))
    frame = result.to_frame()
    for column in ("region", "start", "end", "n", "statistic", "phi", "pvalue", "qvalue", "share_02", "z_02"):
        assert column in frame
    assert "chi2(4)" in result.null
    assert (frame["n"] >= 1000).all()
    assert "<table" in result._repr_html_()
    with pytest.raises(ValueError, match="baseline"):
        composition_test(synthetic_series(seed=3, regions=1, intervals=20), baseline="median")


# ------------------------------------------------------------------------------ the real series
def needs_shared():
    if not AGGREGATES.is_dir():
        pytest.skip(f"real aggregate series not found: {AGGREGATES} (../shared is absent)")


@pytest.fixture(scope="module")
def dpr():
    needs_shared()
    return read_province_hourly(AGGREGATES / "province_hourly", ballot="pdpr")


def test_real_psi_surge_is_found_as_irregular_increments(dpr):
    periods = {"before": ("2024-02-25 22:07:06", "2024-02-28 22:07:13"),
               "surge": ("2024-02-28 22:07:13", "2024-03-02 15:07:15")}
    shares = share_of_added(dpr, "15", periods=periods).set_index("period")
    assert shares.loc["surge", "share"] > 3 * shares.loc["before", "share"]
    result = composition_test(dpr, regions=["0"], focus=("15",))
    window = result.table[(result.table["end"] > pd.Timestamp("2024-02-28 22:07:13", tz="Asia/Jakarta"))
                          & (result.table["end"] <= pd.Timestamp("2024-03-02 15:07:15", tz="Asia/Jakarta"))]
    psi = window[window["flagged"] & (window["z_15"] > 0) & (window["share_15"] > 0.2)]
    # PSI's national share was ~3 %; the increments flagged here gave it more than 20 %.
    assert len(psi) >= 10
    assert psi["added_15"].sum() > 100_000
    before = result.table[result.table["end"] <= pd.Timestamp("2024-02-28 22:07:13", tz="Asia/Jakarta")]
    assert before["flagged"].mean() < window["flagged"].mean()


def test_real_presidential_decreases_are_counted():
    needs_shared()
    path = AGGREGATES / "ppwp_national_hourly_history.jsonl.gz"
    found = decreases(read_national_history(path), regions=["0"])
    # An independent count straight from the JSON lines.
    charts = {}
    with gzip.open(path, "rt") as handle:
        for line in handle:
            body = json.loads(line)["raw_data"]
            charts.setdefault(body["ts"], [body["chart"][k] for k in ("100025", "100026", "100027")])
    values = np.array([charts[ts] for ts in sorted(charts)])
    steps = np.diff(values, axis=0)
    assert found.table["end"].nunique() == int((steps < 0).any(axis=1).sum())
    assert len(found.table) == int((steps < 0).sum())
    assert found.table["change"].sum() == steps[steps < 0].sum()
    worst = found.table.loc[found.table["change"].idxmin()]
    assert worst["change"] == steps.min()


@pytest.mark.slow
def test_dynamics_notebook_runs_on_the_real_series(tmp_path):
    needs_shared()
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(str(NOTEBOOKS / "dynamics.ipynb"), str(tmp_path / "dynamics.ipynb"),
                               kernel_name="python3", parameters={"aggregates_dir": str(AGGREGATES)},
                               cwd=str(NOTEBOOKS), progress_bar=False)


def test_dispersion_fit_reports_when_it_did_not_converge():
    from analysis.dynamics import _fit_dispersion

    rng = np.random.default_rng(3)
    n = rng.integers(1_000, 100_000, 60).astype(float)
    stat = rng.chisquare(2, 60) * (n / 1_000) ** 0.5
    a, b, converged, message = _fit_dispersion(n, stat, 2)
    assert converged and message == "" and 0.2 < b < 0.8
    *_, converged, message = _fit_dispersion(n, stat, 2, max_iter=1)
    assert not converged and "Maximum number of iterations" in message
