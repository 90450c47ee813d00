# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One stage of the spikes resampling (``spikes._Resampler.draw_many``) in one pass per draw kind.

It calls numpy's own distributions (``numpy.random.c_distributions``: ``random_beta`` and
``random_binomial``, the functions behind ``Generator.beta`` and ``Generator.binomial``) on the
Generator's bit generator, in the order the array calls draw: every uniform, then every beta, then
every binomial. So it gives exactly the numbers of the numpy code it replaces (tested), without
the temporaries and the broadcasting of ``rng.beta(count + a[k], size - count + b[k])``.
"""

import numpy as np

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t
from numpy.random cimport bitgen_t
from numpy.random.c_distributions cimport binomial_t, random_beta, random_binomial


def posterior_binomial(rng, const double[:, ::1] cumulative, const double[::1] count, const double[::1] size,
                       const double[::1] a, const double[::1] b, const int64_t[:, ::1] trials, Py_ssize_t reps):
    """``reps`` rows of Bin(trials, p) per unit, p ~ Beta(count + a_k, size - count + b_k), k drawn from
    the cumulative memberships (units x components; the last column 1): what ``_posterior_p`` followed
    by ``rng.binomial`` draws. ``trials`` is ``reps`` rows x units, or one row shared by every row."""
    cdef bitgen_t *bitgen = <bitgen_t *> PyCapsule_GetPointer(rng.bit_generator.capsule, "BitGenerator")
    cdef Py_ssize_t units = count.shape[0], components = cumulative.shape[1]
    if cumulative.shape[0] != units or size.shape[0] != units or trials.shape[1] != units:
        raise ValueError("count, size, cumulative and trials must describe the same units")
    if a.shape[0] != components or b.shape[0] != components:
        raise ValueError("one a and one b per component")
    if reps < 1 or trials.shape[0] not in (1, reps):
        raise ValueError(f"trials must have one row or {reps} rows, not {trials.shape[0]}")
    out = np.empty((reps, units), dtype=np.int64)
    probability = np.empty((reps, units), dtype=np.float64)
    component = np.empty((reps, units), dtype=np.intp)
    cdef int64_t[:, ::1] drawn = out
    cdef double[:, ::1] p = probability
    cdef Py_ssize_t[:, ::1] k = component
    cdef Py_ssize_t r, i, j, shared = trials.shape[0] == 1
    cdef double u
    cdef binomial_t state
    state.has_binomial = 0
    with rng.bit_generator.lock, nogil:
        for r in range(reps):  # rng.random((reps, units)), then the component each uniform picks
            for i in range(units):
                u = bitgen.next_double(bitgen.state)
                j = 0
                while j < components - 1 and u > cumulative[i, j]:
                    j += 1
                k[r, i] = j
        for r in range(reps):  # rng.beta(count + a[k], size - count + b[k])
            for i in range(units):
                j = k[r, i]
                p[r, i] = random_beta(bitgen, count[i] + a[j], size[i] - count[i] + b[j])
        for r in range(reps):  # rng.binomial(trials, p)
            for i in range(units):
                drawn[r, i] = random_binomial(bitgen, p[r, i], trials[0 if shared else r, i], &state)
    return out
