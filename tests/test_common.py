import os
import threading

import pytest

from analysis._common import in_threads, usable_threads


def test_usable_threads_keep_to_the_cap_the_cores_and_omp_num_threads(monkeypatch):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert usable_threads(64) == cores and usable_threads(1) == 1 and usable_threads(0) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert usable_threads(64) == 1
    for ignored in ("", "0", "two", "-3", "\u00b2"):  # not a positive number: the cores decide
        monkeypatch.setenv("OMP_NUM_THREADS", ignored)
        assert usable_threads(64) == cores


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_in_threads_returns_each_items_result_in_order(threads):
    assert in_threads(lambda item: item * item, list(range(7)), threads) == [i * i for i in range(7)]
    assert in_threads(lambda item: item, [], threads) == []


def test_in_threads_runs_items_side_by_side_or_in_the_callers_thread():
    both = threading.Barrier(2, timeout=10)  # passes only if two items run at once
    assert in_threads(lambda item: both.wait() >= 0, [0, 1], 2) == [True, True]
    caller = threading.get_ident()
    assert in_threads(lambda item: threading.get_ident(), [0, 1, 2], 1) == [caller] * 3
