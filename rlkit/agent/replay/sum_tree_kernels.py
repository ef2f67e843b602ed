"""The compiled kernels of ``SumTree``'s ``"numba"`` backend (``rlkit.agent.replay.sum_tree``).

Defined only when numba is installed (``NUMBA_AVAILABLE``); the layout they work on is
described in ``rlkit.agent.replay.sum_tree``.
"""

from __future__ import annotations

import numpy as np

try:  # optional accelerator: `pip install numba`
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

NUMBA_AVAILABLE = numba is not None

# tree: the flat float64 array; offsets[l] = start of level l (leaves are level 0, the
# top is level len(offsets) - 2); top_csum: exclusive prefix sums of the top level
# ([0, t0, t0 + t1, ..., total], sequential); k = branching.
if NUMBA_AVAILABLE:
    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def _nb_propagate(tree, offsets, top_csum, k, idx):  # pragma: no cover - compiled
        """Recompute the ancestors of leaves ``idx`` (any order, duplicates allowed) and
        the top's prefix sums; returns the new total."""
        div = 1
        for level in range(1, offsets.size - 1):
            div *= k
            child_lo = offsets[level - 1]
            lo = offsets[level]
            for i in range(idx.size):
                node = idx[i] // div
                base = child_lo + node * k
                s = 0.0
                for c in range(k):
                    s += tree[base + c]
                tree[lo + node] = s
        top_lo = offsets[offsets.size - 2]
        for i in range(top_csum.size - 1):
            top_csum[i + 1] = top_csum[i] + tree[top_lo + i]
        return top_csum[top_csum.size - 1]

    @_jit
    def _nb_write(tree, offsets, top_csum, k, capacity, idx, vals):  # pragma: no cover
        """Validate, write leaves in order (last write wins), propagate; returns the new
        total, or -1.0 (nothing written) when an index or a value is invalid."""
        for i in range(idx.size):
            v = vals[i]
            if idx[i] < 0 or idx[i] >= capacity or not (v >= 0.0 and v < np.inf):
                return -1.0
        for i in range(idx.size):
            tree[idx[i]] = vals[i]
        return _nb_propagate(tree, offsets, top_csum, k, idx)

    @_jit
    def _nb_pick(tree, base, n, x):  # pragma: no cover - compiled
        """Child c of the ``n`` children at ``tree[base:]`` with prefix(c) <= x <
        prefix(c + 1), where prefix is the sequential (hence monotone) running sum, so a
        zero child is never picked; or the last non-zero child when x is past their sum.
        Returns (c, x - prefix(c)); after such a clamp the residual is +inf so that lower
        levels clamp too. Branch-free over the children (random queries would mispredict
        an early exit)."""
        acc = 0.0
        below = 0  # children whose inclusive prefix sum is <= x
        prefix = 0.0
        last = -1
        for c in range(n):
            v = tree[base + c]
            acc += v
            le = acc <= x
            below += le
            prefix = acc if le else prefix
            last = c if v > 0.0 else last
        if below >= n:
            return last, np.inf
        return below, x - prefix

    @_jit
    def _nb_find(tree, offsets, top_csum, k, q, strata, out_idx, out_prio):  # pragma: no cover
        """Descend for every query; returns False when all priorities are zero.

        With ``strata > 0`` query b is ``(b + q[b]) * strata`` (stratified sampling).
        The top is binary-searched in its sequential (hence monotone) prefix sums:
        csum[j] <= x < csum[j + 1] implies top[j] > 0. Below it the descent is level by
        level so that the memory loads of different queries overlap: a first pass
        touches each query's row of children, a second pass scans the cached rows.
        """
        n = q.size
        n_top = top_csum.size - 1
        total = top_csum[n_top]
        if not total > 0.0:
            return False
        top_lo = offsets[offsets.size - 2]
        x = np.empty(n)
        for b in range(n):
            xb = (b + q[b]) * strata if strata > 0.0 else q[b]
            if not xb >= 0.0:  # negative or NaN
                xb = 0.0
            if xb < total:
                j = np.searchsorted(top_csum[1:], xb, side="right")
                x[b] = xb - top_csum[j]
            else:  # at or past the total: the last non-zero top node, clamped below too
                j = n_top - 1
                while tree[top_lo + j] == 0.0:
                    j -= 1
                x[b] = np.inf
            out_idx[b] = j
        for level in range(offsets.size - 3, -1, -1):
            lo = offsets[level]
            touch = 0.0
            for b in range(n):
                touch += tree[lo + out_idx[b] * k]
            for b in range(n):
                c, x[b] = _nb_pick(tree, lo + out_idx[b] * k, k, x[b])
                out_idx[b] = out_idx[b] * k + c
            if touch < 0.0:  # never true (priorities are >= 0); keeps the loads alive
                return False
        for b in range(n):
            out_prio[b] = tree[out_idx[b]]
        return True
