"""Compiled kernels of ``FrameStackStorage`` (``rlkit.agent.replay.frames``), with NumPy
fallbacks when numba is missing: the same results either way."""

from __future__ import annotations

import numpy as np

from rlkit.agent.replay.sum_tree_kernels import NUMBA_AVAILABLE


def _hash_rows_numpy(words: np.ndarray, mult: np.ndarray) -> np.ndarray:
    return np.einsum("ij,j->i", words, mult)


def _equal_rows_numpy(pool: np.ndarray, cands: np.ndarray, given: np.ndarray) -> np.ndarray:
    hit = cands >= 0
    out = np.zeros(len(cands), dtype=bool)
    if hit.any():
        out[hit] = (pool[cands[hit]] == given[hit]).all(axis=1)
    return out


if NUMBA_AVAILABLE:
    import numba

    @numba.njit(cache=True, nogil=True)
    def hash_rows(words, mult):  # pragma: no cover - compiled
        """``sum_j words[i, j] * mult[j]`` mod 2**64 for every row ``i`` (uint64)."""
        m, w = words.shape
        out = np.empty(m, np.uint64)
        for i in range(m):
            h = np.uint64(0)
            for j in range(w):
                h += words[i, j] * mult[j]
            out[i] = h
        return out

    @numba.njit(cache=True, nogil=True)
    def equal_rows(pool, cands, given):  # pragma: no cover - compiled
        """For each row ``i``: ``cands[i] >= 0`` and ``pool[cands[i]]`` equals ``given[i]``
        element for element (no gathered copy of the pool rows)."""
        m, w = given.shape
        out = np.zeros(m, np.bool_)
        for i in range(m):
            c = cands[i]
            if c < 0:
                continue
            row = pool[c]
            same = True
            for j in range(w):
                if row[j] != given[i, j]:
                    same = False
                    break
            out[i] = same
        return out

else:  # pragma: no cover - depends on the environment
    hash_rows = _hash_rows_numpy
    equal_rows = _equal_rows_numpy
