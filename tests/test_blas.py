"""analysis.blas: BLAS on one thread inside the context, as it was outside it."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from analysis.blas import one_blas_thread


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_one_thread_inside_and_the_setting_restored():
    if not _blas_threads():
        pytest.skip("numpy reports no BLAS library that threadpoolctl can control")
    with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine without OPENBLAS_NUM_THREADS
        before = _blas_threads()
        with one_blas_thread():
            assert set(_blas_threads()) == {1}
        assert _blas_threads() == before
