"""What every method shares: reading count arrays, leaving out unusable units, seeding regions.

Kernels take array-likes (int or float; NaN, None or pandas <NA> for missing). ``as_float`` and
``as_counts`` turn one into a 1-D array or say clearly why they cannot; ``exclude_units`` applies a
method's exclusion rules in order, each unit left out for the first rule that applies, so the
counts per reason add up and nothing is dropped silently. ``region_seed`` gives each region (and
test) its own seed, derived from the run's seed, that does not change when other regions are added
or removed. ``usable_threads`` and ``in_threads`` run a test's fixed random streams side by side
(numpy's samplers release the GIL), so that its figures do not depend on the thread count.

This module imports nothing from the package: every method may import it, and it never closes a
cycle.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["as_float", "as_counts", "exclude_units", "Prepared", "prepare_counts", "region_seed"]


# ------------------------------------------------------------------------------------ coercion
def as_float(values: Any, name: str) -> np.ndarray:
    """An array-like of counts as float64 with NaN for missing; a clear error if it is not one."""
    try:
        if hasattr(values, "to_numpy"):
            try:
                out = values.to_numpy(dtype=float, na_value=np.nan)
            except TypeError:  # numpy arrays and some extension arrays take no na_value
                out = np.asarray(values.to_numpy(), dtype=float)
        else:
            try:
                out = np.asarray(values, dtype=float)
            except TypeError:  # a list holding pandas' <NA>: pandas maps every missing marker to NaN
                out = pd.Series(values, dtype=object).to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected numeric counts ({err})") from None
    if out.ndim != 1:
        raise ValueError(f"{name}: expected a one-dimensional array, got shape {out.shape}")
    return out


def as_counts(values: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts as exact int64 (0 where unusable), with masks of missing and of negative/fractional values.

    For the digit tests, which need every digit of counts above 2**53 exactly; the other kernels
    take ``as_float``.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        array = values
    else:  # lists, pandas objects (<NA>, None), object arrays: pandas maps every missing marker to NaN
        try:
            series = values if isinstance(values, pd.Series) else pd.Series(values)
            if pd.api.types.is_integer_dtype(series.dtype) and not series.isna().any():
                array = series.to_numpy(dtype=np.int64)
            else:
                array = series.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: expected a one-dimensional array of numeric counts ({err})") from None
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a one-dimensional array, got shape {array.shape}")
    if array.dtype.kind in "iu":
        if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name}: counts above 2**63 - 1 are not supported")
        ints = array.astype(np.int64, copy=False)
        missing = np.zeros(len(ints), dtype=bool)
        bad = ints < 0
        if not bad.any():  # the common case: no copy of a large clean array
            return ints, missing, bad
    else:
        floats = array.astype(float)
        missing = np.isnan(floats)
        with np.errstate(invalid="ignore"):
            bad = ~missing & ((floats < 0) | (floats != np.floor(floats)) | (floats >= 2.0**63))
        ints = np.where(missing | bad, 0, floats).astype(np.int64)
    ints = np.where(missing | bad, 0, ints)
    return ints, missing, bad


# ------------------------------------------------------------------------------------ exclusion
def exclude_units(n: int, reasons: Sequence[tuple[str, np.ndarray]]) -> tuple[np.ndarray, dict[str, int]]:
    """(mask of units kept, units left out per reason); each unit counts for the first reason that applies."""
    used = np.ones(n, dtype=bool)
    excluded: dict[str, int] = {}
    for reason, mask in reasons:
        hit = used & mask
        excluded[reason] = int(hit.sum())
        used &= ~hit
    return used, excluded


@dataclass(frozen=True, eq=False)
class Prepared:
    """A kernel's input after ``prepare_counts``: every array in full, the mask of usable units, the reasons."""

    arrays: dict[str, np.ndarray]
    used: np.ndarray
    excluded: dict[str, int]

    def kept(self, name: str) -> np.ndarray:
        return self.arrays[name][self.used]


def prepare_counts(arrays: Mapping[str, Any], rules: Callable[..., list[tuple[str, np.ndarray]]] | None = None, *,
                   lengths: Mapping[str, int] | None = None) -> Prepared:
    """Count arrays of one table of units, checked and with the unusable units marked.

    Each array goes through ``as_float``; the arrays (and any ``lengths`` of companion inputs,
    e.g. groups) must agree in length. Units are left out, in this order: a missing count, a
    negative or fractional count, then the method's own ``rules`` (called with the float arrays
    by name, returning ``(reason, mask)`` pairs).
    """
    coerced = {name: as_float(values, name) for name, values in arrays.items()}
    sizes = {name: len(values) for name, values in coerced.items()}
    sizes.update(lengths or {})
    if len(set(sizes.values())) > 1:
        raise ValueError("arrays differ in length: " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    stacked = np.vstack(list(coerced.values()))
    reasons = [
        ("missing count", np.isnan(stacked).any(axis=0)),
        ("negative or fractional count", ((stacked < 0) | (stacked != np.round(stacked))).any(axis=0)),
    ]
    if rules is not None:
        reasons += rules(**coerced)
    used, excluded = exclude_units(stacked.shape[1], reasons)
    return Prepared(arrays=coerced, used=used, excluded=excluded)


# ------------------------------------------------------------------------------------ seeding
def region_seed(seed: int, region: str, test: str | None = None, *, wide: bool = False) -> int:
    """A seed per region (and test) that does not change when other regions are added or removed.

    ``np.random.SeedSequence`` over the run's seed and the CRC-32 of the region code (and of the
    test's name). Two historical layouts are kept so that published figures stay the same:
    ``wide=False`` (turnout, spikes, Mebane: the seed as one word, a 32-bit result) and
    ``wide=True`` (digits, EFT: the seed split into two 32-bit words, a 63-bit result).
    """
    tail = [zlib.crc32(region.encode())] + ([] if test is None else [zlib.crc32(test.encode())])
    if wide:
        key = [int(seed) & 0xFFFFFFFF, int(seed) >> 32, *tail]
        return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] >> 1)
    return int(np.random.SeedSequence([int(seed), *tail]).generate_state(1)[0])


# ------------------------------------------------------------------------------------ threads
def usable_threads(cap: int) -> int:
    """Threads for a test's random streams: the cores this process may use, at most ``cap`` (its number
    of streams), and at most ``OMP_NUM_THREADS`` where it is set (the batch runner gives each kernel
    cores / jobs; ``make test`` one per worker)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.strip().isascii() and limit.strip().isdigit() and int(limit) > 0:  # ("²" is a digit to isdigit)
        cores = min(cores, int(limit))
    return max(1, min(cores, int(cap)))


def in_threads(work: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list:
    """``work(item)`` for each item, on up to ``threads`` threads, results in order. Each item is one
    fixed random stream's share of the work, so the results are the same on any number of threads."""
    threads = max(1, int(threads))
    if threads == 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(work, items))
