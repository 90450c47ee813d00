"""Results shared by the reports of one batch: per-region computations memoised on disk (joblib).

The national report tests every province with the same kernels, seeds and inputs as the province
reports do (Klimek's model and Kobak's test, the turnout tests, the spikes test, the digit and
final-pair tests per province). In one batch, whichever report reaches a (kernel, inputs) first
computes it and the other reads the result back: the same object, bit for bit, since the key is a
hash of the kernel's code and of every argument (arrays by their bytes, seeds included).

Off unless ``FORENSIK_CACHE_DIR`` names a folder: the batch runner sets it for its kernels to a
scratch folder it deletes afterwards, so nothing outlives the batch and a notebook run by hand
computes everything itself. ``cached(kernel)(...)`` is ``kernel(...)`` when it is off.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, TypeVar

__all__ = ["CACHE_VARIABLE", "cached", "cache_location"]

#: The environment variable that switches the cache on and says where it lives.
CACHE_VARIABLE = "FORENSIK_CACHE_DIR"

F = TypeVar("F", bound=Callable)


def cache_location() -> str | None:
    """The cache folder from ``FORENSIK_CACHE_DIR``, or None when caching is off."""
    return os.environ.get(CACHE_VARIABLE) or None


@functools.lru_cache(maxsize=None)
def _memory(location: str):
    import joblib

    return joblib.Memory(location, verbose=0)


@functools.lru_cache(maxsize=None)
def _memoised(func: Callable, location: str) -> Callable:
    return _memory(location).cache(func)


def _quiet(memoised: Callable) -> Callable:
    """``memoised`` without joblib's note that hashing large arguments took time: a published page is no place for it."""
    @functools.wraps(memoised)
    def call(*args, **kwargs):
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Persisting input arguments took", category=UserWarning)
            return memoised(*args, **kwargs)
    return call


def cached(func: F) -> F:
    """``func`` memoised under ``FORENSIK_CACHE_DIR`` (joblib ``Memory.cache``), or ``func`` itself.

    Only for pure functions of their arguments (the kernels: arrays and parameters in, a frozen
    result out). Read at each call, so a kernel started with the variable set shares its results.
    """
    location = cache_location()
    return _quiet(_memoised(func, location)) if location else func
