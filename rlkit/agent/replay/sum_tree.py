"""A float64 sum-tree for proportional prioritized replay, vectorised over batches.

Layout (bottom-up, one flat float64 array): the leaves (one priority per slot), then
levels of group sums: level ``l + 1`` holds the sums of consecutive groups of
``K = branching`` nodes of level ``l``, until a level has at most ``top_size`` nodes (the
top). Level ``l`` has ``n_top * K**(steps - l)`` nodes, so every node owns exactly one
row of ``K`` children and the leaves are zero-padded by less than ``K / top_size`` of the
capacity. Any capacity works (nothing is padded to a power of two), and the internal
levels cost about ``1 / (K - 1)`` of the leaves in memory. The top is searched through
its sequential cumulative sum (binary search); every level below it, ``K`` children at
a time.

Two interchangeable backends compute ``find`` and ``update`` on that layout:

* ``"numba"`` (used when numba is installed; K = 8, top <= 256, i.e. four ``K``-ary
  steps at capacity 10^6): compiled loops over the batch. ``find`` scans the ``K``
  children of a node with a running sum, so a zero child is never entered; ``update``
  writes the leaves in order and recomputes each touched parent from its children.
  The kernels live in ``rlkit.agent.replay.sum_tree_kernels``.
* ``"numpy"`` (K = 16, top <= 4096, i.e. two ``K``-ary steps at capacity 10^6): no
  Python loop over the batch. ``update`` recomputes the touched parents level by level
  with ``[B, K]`` gathers; ``find`` forms each node's child prefix sums with a small
  matrix product. A query that rounding puts on a zero leaf (possible only within a few
  ulps of a boundary) is redone by an exact descent that uses sequential ``np.cumsum``.

Exactness. Every parent is recomputed from its children (never updated with deltas), so
sums do not drift and a node is zero exactly when all leaves below it are zero. When
rounding carries a query past a subtree's sum, the descent moves to the subtree's last
non-zero child. So a zero-priority leaf is never returned.
"""

from __future__ import annotations

import numpy as np

from rlkit.agent.replay.sum_tree_kernels import NUMBA_AVAILABLE

if NUMBA_AVAILABLE:
    from rlkit.agent.replay.sum_tree_kernels import _nb_find, _nb_propagate, _nb_write
_FLUSH_AT = 4096  # pending `update_one` leaves that trigger propagation


class SumTree:
    """Non-negative float64 priorities over ``capacity`` leaves with prefix-sum search.

    ``find(q)`` returns, for each query, the leaf ``i`` with
    ``cumsum[i - 1] <= q < cumsum[i]``. Zero-priority leaves are never returned, and
    queries outside ``[0, total)`` (negative, equal to ``total`` or past it through
    rounding) are clamped into it, so they return the first / last non-zero leaf.

    Args:
        capacity: number of leaves, >= 1.
        branching: children per internal node (K), in [2, 255] (default: 16 for numpy,
            8 for numba).
        top_size: most nodes in the top level (default: 4096 for numpy, 256 for numba).
        backend: ``"auto"`` (numba if installed, else numpy), ``"numba"`` or ``"numpy"``.
    """

    def __init__(
        self,
        capacity: int,
        branching: int | None = None,
        top_size: int | None = None,
        backend: str = "auto",
    ) -> None:
        if int(capacity) < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        if backend == "auto":
            backend = "numba" if NUMBA_AVAILABLE else "numpy"
        if branching is None:
            branching = 16 if backend == "numpy" else 8
        if not 2 <= int(branching) <= 255:
            raise ValueError(f"SumTree branching must be in [2, 255], got {branching}")
        if backend not in ("numpy", "numba"):
            raise ValueError(f"SumTree backend must be 'auto', 'numpy' or 'numba', got {backend!r}")
        if backend == "numba" and not NUMBA_AVAILABLE:
            raise ValueError("SumTree backend 'numba' needs numba: pip install numba")
        self.backend = backend
        self.capacity = int(capacity)
        self.branching = k = int(branching)
        if top_size is None:
            top_size = 4096 if backend == "numpy" else 256
        if int(top_size) < 1:
            raise ValueError(f"SumTree top_size must be >= 1, got {top_size}")
        steps = 0  # number of K-ary levels below the top
        while -(-self.capacity // k**steps) > top_size:
            steps += 1
        n_top = -(-self.capacity // k**steps)
        sizes = [n_top * k ** (steps - level) for level in range(steps + 1)]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._tree = _aligned_zeros(int(self._offsets[-1]))
        self._levels = [
            self._tree[a:b] for a, b in zip(self._offsets[:-1], self._offsets[1:], strict=True)
        ]
        self._rows = [level.reshape(-1, k) for level in self._levels[:-1]]  # [G, K] views
        self._rows_top_down = self._rows[::-1]
        self._leaves = self._levels[0]
        self._top = self._levels[-1]
        # Exclusive prefix sums of the top: [0, t0, t0 + t1, ..., total]; rebuilt lazily.
        self._top_csum = np.zeros(n_top + 1, dtype=np.float64)
        self._top_fresh = True
        self._total = 0.0
        self._hi = 0.0  # largest float below total: queries are clamped to [0, _hi]
        # _residual @ [q; x_0; ...; x_{K-1}] = [q - sum(x_m for m < i) for i in range(K)]
        self._residual = np.hstack([np.ones((k, 1)), -np.tril(np.ones((k, k)), -1)])
        self._ones = np.ones(k, dtype=np.float64)
        self._shift = k.bit_length() - 1 if k & (k - 1) == 0 else 0  # log2(K) if a power of 2
        self._cols: dict[int, np.ndarray] = {}  # N -> arange(N), for flat gathers
        self._dirty: list[int] = []  # leaves written by `update_one`, ancestors stale

    # ------------------------------------------------------------------ properties
    @property
    def total(self) -> float:
        """Sum of all priorities."""
        if self._dirty or not self._top_fresh:
            self._refresh()
        return self._total

    @property
    def depth(self) -> int:
        """Number of stored levels, leaves and top included."""
        return len(self._levels)

    @property
    def nbytes(self) -> int:
        """Bytes held by the tree's arrays (leaves, internal levels, padding, top cumsum)."""
        return self._tree.nbytes + self._top_csum.nbytes

    def __len__(self) -> int:
        return self.capacity

    # ------------------------------------------------------------------ writes
    def update(self, indices: np.ndarray, values: np.ndarray | float) -> None:
        """Set ``leaf[indices] = values``; with repeated indices the last write wins.

        indices: [N] ints in ``[0, capacity)``; values: [N] or a scalar, finite and >= 0.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if vals.size == 1 and idx.size != 1:
            vals = np.full(idx.shape, vals[0])
        if idx.shape != vals.shape:
            raise ValueError(f"SumTree.update got {idx.size} indices but {vals.size} values")
        if idx.size == 0:
            return
        if self._dirty:
            self._flush()
        self._top_fresh = False
        if self.backend == "numba":
            total = _nb_write(
                self._tree, self._offsets, self._top_csum, self.branching, self.capacity, idx, vals
            )
            if total < 0.0:
                self._raise_invalid(idx, vals)
            self._total = total
            self._top_fresh = True  # the numba backend needs no top cumsum, only the total
            return
        if idx.size > 1:
            idx, vals = _last_write_wins(idx, vals)  # now sorted and unique
        if idx[0] < 0 or idx[-1] >= self.capacity or not vals.min() >= 0.0:
            self._raise_invalid(idx, vals)
        if not np.isfinite(vals.max()):
            self._raise_invalid(idx, vals)
        self._leaves[idx] = vals
        self._propagate(idx)

    def update_one(self, index: int, value: float) -> None:
        """Set one leaf; its ancestors are recomputed lazily, in one batch, before the
        next read of ``total`` / ``find`` or the next ``update`` (the fast path for adds)."""
        index = int(index)
        value = float(value)
        if not 0 <= index < self.capacity:
            raise IndexError(f"SumTree index {index} out of range [0, {self.capacity})")
        if not 0.0 <= value < np.inf:
            raise ValueError(f"SumTree priorities must be finite and >= 0, got {value}")
        self._leaves[index] = value
        self._dirty.append(index)
        self._top_fresh = False
        if len(self._dirty) >= _FLUSH_AT:
            self._flush()

    # ------------------------------------------------------------------ reads
    def get(self, indices: np.ndarray) -> np.ndarray:
        """Leaf priorities at ``indices`` (float64 copy, same shape)."""
        return self._leaves[np.asarray(indices, dtype=np.int64)]

    def find(self, prefix_sums: np.ndarray) -> np.ndarray:
        """Leaf index for each prefix-sum query.

        prefix_sums: [N] floats, nominally in ``[0, total)``. Returns [N] int64 leaves
        ``i`` with ``cumsum[i - 1] <= q < cumsum[i]``, always of non-zero priority.
        Raises ValueError when every priority is zero.
        """
        return self.find_with_priorities(prefix_sums)[0]

    def find_with_priorities(self, prefix_sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``find`` that also returns the [N] float64 priorities of the found leaves."""
        return self._find(np.asarray(prefix_sums, dtype=np.float64).reshape(-1), 0.0)

    def find_stratified(self, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stratified sampling: split ``[0, total)`` into ``N = len(uniforms)`` equal
        segments and find the point ``(b + uniforms[b]) * total / N`` of segment ``b``.

        uniforms: [N] floats in ``[0, 1)``. Returns ([N] int64 leaves, [N] float64
        priorities); the leaves come out sorted. Raises ValueError when the tree is empty.
        """
        u = np.asarray(uniforms, dtype=np.float64).reshape(-1)
        return self._find(u, self.total / max(u.size, 1))

    def _find(self, q: np.ndarray, strata: float) -> tuple[np.ndarray, np.ndarray]:
        """Queries ``q`` (or, when ``strata > 0``, ``(arange(N) + q) * strata``)."""
        if self._dirty or not self._top_fresh:
            self._refresh()
        if self.backend == "numba":
            # The numba descent scans children with running sums, so it needs no top
            # cumsum and clamps out-of-range queries itself.
            idx = np.empty(q.size, dtype=np.int64)
            prio = np.empty(q.size, dtype=np.float64)
            args = (self._tree, self._offsets, self._top_csum, self.branching, q, strata, idx, prio)
            if not _nb_find(*args):
                raise ValueError("SumTree.find on an empty tree (all priorities are zero)")
            return idx, prio
        if strata > 0.0:
            q = (np.arange(q.size, dtype=np.float64) + q) * strata
        return self._find_numpy(q)

    # ------------------------------------------------------------------ numpy backend
    def _find_numpy(self, q0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q, node = self._find_top(q0)
        n = q.size
        k = self.branching
        cols = self._cols.get(n)
        if cols is None:
            cols = self._cols[n] = np.arange(n, dtype=np.int64)
        residual = self._residual
        for rows in self._rows_top_down:
            # aug = [q; children of node] as [K + 1, N]; d = residual @ aug is [K, N] with
            # d[i] = q - (sum of the first i children), so d[0] = q >= 0.
            aug = np.empty((k + 1, n))
            aug[0] = q
            aug[1:] = rows.take(node, axis=0).T
            d = residual.dot(aug)
            j = np.add.reduce(d[1:] >= 0.0, axis=0, dtype=np.int64)  # chosen child, [0, K)
            q = d.ravel().take(j * n + cols)  # residual inside the chosen child
            node = node * k + j
        prio = self._leaves.take(node)
        if not prio.all():  # rounding put a query on a zero leaf: redo those exactly
            bad = prio == 0.0
            node[bad] = self._find_exact(q0[bad])
            prio = self._leaves.take(node)
        return node, prio

    def _refresh(self) -> None:
        """Propagate pending single-leaf writes and rebuild the top's cumsum if stale."""
        if self._dirty:
            self._flush()
        if not self._top_fresh:
            np.cumsum(self._top, out=self._top_csum[1:])
            self._total = float(self._top_csum[-1])
            self._hi = float(np.nextafter(self._total, 0.0))
            self._top_fresh = True

    def _find_top(self, prefix_sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clamp the [N] float64 queries and pick a top node: returns (residual q, node)."""
        self._refresh()
        if not self._top_csum[-1] > 0.0:
            raise ValueError("SumTree.find on an empty tree (all priorities are zero)")
        q = np.minimum(prefix_sums, self._hi)
        np.maximum(q, 0.0, out=q)
        # np.cumsum is sequential, hence monotone: csum[j] <= q < csum[j + 1] => top[j] > 0.
        node = np.searchsorted(self._top_csum[1:], q, side="right")
        q -= self._top_csum.take(node)
        return q, node

    def _find_exact(self, prefix_sums: np.ndarray) -> np.ndarray:
        """Reference descent with sequential cumsums; never returns a zero leaf."""
        prefix_sums = np.asarray(prefix_sums, dtype=np.float64).reshape(-1)
        q, node = self._find_top(prefix_sums)
        k = self.branching
        rows_idx = np.arange(q.size)
        for rows in self._rows_top_down:
            csum = np.cumsum(rows[node], axis=1)  # [N, K] inclusive prefix sums
            j = np.count_nonzero(csum <= q[:, None], axis=1)
            over = j >= k  # rounding carried q past this subtree: take its last non-zero child
            if over.any():
                j[over] = np.argmax(csum[over], axis=1)
            q = q - np.where(j > 0, csum[rows_idx, j - 1], 0.0)
            node = node * k + j
        return node

    # ------------------------------------------------------------------ internals
    def _flush(self) -> None:
        idx = np.unique(np.asarray(self._dirty, dtype=np.int64))
        self._dirty.clear()
        self._top_fresh = False
        if self.backend == "numba":
            self._total = _nb_propagate(
                self._tree, self._offsets, self._top_csum, self.branching, idx
            )
            self._top_fresh = True
        else:
            self._propagate(idx)

    def _propagate(self, idx: np.ndarray) -> None:
        """numpy: recompute the ancestors of sorted leaves ``idx`` bottom-up."""
        if not self._rows:
            return
        k = self.branching
        if idx.size * 8 >= self._rows[0].shape[0]:  # large update: rebuild every level
            for rows, parent in zip(self._rows, self._levels[1:], strict=True):
                parent[:] = rows.dot(self._ones)
            return
        node = idx
        for rows, parent in zip(self._rows, self._levels[1:], strict=True):
            node = node >> self._shift if self._shift else node // k
            # duplicates in `node` write identical sums, so their order is irrelevant
            parent[node] = rows.take(node, axis=0).dot(self._ones)

    def _raise_invalid(self, idx: np.ndarray, vals: np.ndarray) -> None:
        if idx.min() < 0 or idx.max() >= self.capacity:
            raise IndexError(
                f"SumTree indices must be in [0, {self.capacity}), "
                f"got values in [{idx.min()}, {idx.max()}]"
            )
        raise ValueError("SumTree priorities must be finite and >= 0 (got negative/NaN/inf)")


def _aligned_zeros(n: int, align: int = 64) -> np.ndarray:
    """float64 zeros starting on an ``align``-byte boundary, so that a row of 8 children
    is one cache line."""
    buf = np.zeros(n + align // 8, dtype=np.float64)
    start = (-buf.ctypes.data % align) // 8
    return buf[start : start + n]


def _last_write_wins(idx: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by index and keep, for each repeated index, the value written last."""
    later, earlier = idx[1:], idx[:-1]
    if (later > earlier).all():  # already sorted and unique (the usual case)
        return idx, vals
    if not (later >= earlier).all():  # unsorted: a stable sort keeps the write order
        order = np.argsort(idx, kind="stable")
        idx, vals = idx[order], vals[order]
        later, earlier = idx[1:], idx[:-1]
    keep = np.empty(idx.size, dtype=bool)  # the last of each run of equal indices
    keep[-1] = True
    np.not_equal(later, earlier, out=keep[:-1])
    return idx[keep], vals[keep]
