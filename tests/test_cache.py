"""analysis.cache: per-region results shared by the reports of a batch, identical to computing them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cache, digits, eft, turnout
from analysis.synth import make_election

CALLS: list[tuple] = []


def _square_sum(values, *, seed):
    """A kernel that records each real call (joblib runs it in this process)."""
    CALLS.append((len(values), seed))
    return float(np.sum(np.asarray(values) ** 2)) + seed


def _entries(location: Path) -> int:
    """Results stored by joblib: one output.pkl per (function, arguments)."""
    return sum(1 for _ in location.rglob("output.pkl"))


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    location = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(location))
    return location


@pytest.fixture(scope="module")
def election():
    return make_election(scale=0.002, min_tps=300, seed=17, provinces_only=["31", "73"]).election


def test_off_without_the_variable(monkeypatch):
    monkeypatch.delenv(cache.CACHE_VARIABLE, raising=False)
    assert cache.cached(_square_sum) is _square_sum
    assert cache.cache_location() is None


def test_a_call_with_the_same_arguments_is_computed_once(cache_dir):
    CALLS.clear()
    values = np.arange(10.0)
    first = cache.cached(_square_sum)(values, seed=3)
    again = cache.cached(_square_sum)(values.copy(), seed=3)
    assert first == again == 288.0
    assert CALLS == [(10, 3)]
    cache.cached(_square_sum)(values, seed=4)  # another seed is another result
    values[0] = np.nan  # and so is another array
    cache.cached(_square_sum)(values, seed=3)
    assert CALLS == [(10, 3), (10, 4), (10, 3)]
    assert _entries(cache_dir) == 3


def _rows_73(frame: pd.DataFrame) -> pd.DataFrame:
    """Province 73's rows without the q-values, which depend on the other regions in the table."""
    rows = frame[frame["region"] == "73"].reset_index(drop=True)
    return rows.drop(columns=[c for c in rows.columns if "qvalue" in c])


def _national_then_province(election, run):
    """(rows for province 73 from the whole election, the same from province 73 alone)."""
    return _rows_73(run(election)), _rows_73(run(election.select(province="73")))


@pytest.mark.parametrize("name, run", [
    ("turnout models", lambda e: turnout.turnout_models(e, level="province", seed=5, n_boot=9, n_repeats=1,
                                                        n_rep=200).results),
    ("turnout tests", lambda e: turnout.turnout_tests(e, level="province", winner="02", seed=5, n_perm=99,
                                                      n_rep=200).results),
    ("spikes", lambda e: turnout.spikes_table(e, level="province", candidate="02", resamples=20, seed=5).results),
    ("digits", lambda e: digits.digit_tests(e, level="province", null="exact", share_level="district").results),
    ("pairs", lambda e: digits.pair_tests(e, level="province", share_level="district")),
    ("toolkit", lambda e: eft.eft_table(e, level="province", n_boot=20, seed=5).table),
])
def test_the_province_report_reads_what_the_national_one_computed(election, cache_dir, monkeypatch, name, run):
    # Without the cache: the reference rows.
    monkeypatch.delenv(cache.CACHE_VARIABLE)
    expected_whole, expected_alone = _national_then_province(election, run)
    pd.testing.assert_frame_equal(expected_whole, expected_alone)  # the premise: the same rows either way
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(cache_dir))
    whole = run(election)
    stored = _entries(cache_dir)
    assert stored > 0, f"{name}: nothing was cached"
    alone = run(election.select(province="73"))
    assert _entries(cache_dir) == stored, f"{name}: province 73 was computed again"
    pd.testing.assert_frame_equal(_rows_73(whole), expected_alone)
    pd.testing.assert_frame_equal(_rows_73(alone), expected_alone)


def test_the_batch_runner_turns_the_cache_on_for_its_kernels(tmp_path, monkeypatch):
    from analysis.report import runner

    monkeypatch.delenv(cache.CACHE_VARIABLE, raising=False)
    saved = dict(os.environ)
    try:
        runner._worker_init(str(tmp_path), 1)
        assert os.environ[cache.CACHE_VARIABLE] == str(tmp_path / "cache")
        os.environ[cache.CACHE_VARIABLE] = "/somewhere/of/mine"
        runner._worker_init(str(tmp_path), 1)
        assert os.environ[cache.CACHE_VARIABLE] == "/somewhere/of/mine"  # a user's own folder is kept
    finally:
        os.environ.clear()
        os.environ.update(saved)
