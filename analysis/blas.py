"""One BLAS thread around the small optimisations (L-BFGS-B on a handful of parameters).

scipy's L-BFGS-B (C since scipy 1.15) calls BLAS on vectors of a few elements at every step; with
OpenBLAS running a thread per core, each call pays a hand-off between threads. On this project's
2-core machine a beta-binomial mixture fit of one kabupaten (the spikes test) took 0.79 s with two
BLAS threads and 0.049 s with one. The batch runner already gives each kernel cores / jobs threads;
this covers JupyterLab, the tests, the CLI and the benchmarks, through threadpoolctl.
"""

from __future__ import annotations

import functools
from typing import ContextManager

__all__ = ["one_blas_thread"]


@functools.lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # inspects the loaded libraries once, not at every fit


def one_blas_thread() -> ContextManager:
    """A context in which BLAS (OpenBLAS, MKL, BLIS) runs on one thread; restored on exit."""
    return _controller().limit(limits=1, user_api="blas")
