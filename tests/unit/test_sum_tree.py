"""SumTree against a ``np.cumsum`` + ``np.searchsorted`` oracle, for every backend."""

from __future__ import annotations

import numpy as np
import pytest

from rlkit.agent.replay import SumTree
from rlkit.agent.replay.sum_tree import NUMBA_AVAILABLE

BACKENDS = ["numpy"] + (["numba"] if NUMBA_AVAILABLE else [])

# (backend, branching, top_size): the defaults, plus shapes that give several K-ary levels
# even at small capacities (the numpy default top holds up to 4096 leaves directly).
CONFIGS = [(b, None, None) for b in BACKENDS] + [
    (b, k, top) for b in BACKENDS for k, top in ((4, 3), (3, 2))
]


def make(capacity: int, config) -> SumTree:
    backend, k, top = config
    return SumTree(capacity, branching=k, top_size=top, backend=backend)


def oracle_find(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Leaf i with cumsum[i-1] <= q < cumsum[i], queries clamped into [0, total)."""
    csum = np.cumsum(p)
    q = np.clip(q, 0.0, np.nextafter(csum[-1], 0.0))
    return np.searchsorted(csum, q, side="right")


def config_id(config) -> str:
    return "-".join(str(c) for c in config)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@pytest.mark.parametrize("capacity", [1, 7, 1000])
def test_random_updates_with_duplicates_and_zeros_match_oracle(config, capacity):
    # Quarter-integer priorities: every sum is exact in float64, so the tree must agree
    # with the oracle bit for bit, boundaries included.
    rng = np.random.default_rng(capacity)
    tree = make(capacity, config)
    p = np.zeros(capacity)
    for _ in range(40):
        idx = rng.integers(0, capacity, size=rng.integers(1, 3 * capacity // 2 + 2))
        vals = rng.integers(0, 6, size=idx.size) / 4.0  # about 1 in 6 is zero
        tree.update(idx, vals)
        for i, v in zip(idx, vals, strict=True):  # sequential writes: last one wins
            p[i] = v
        assert tree.total == p.sum()
        np.testing.assert_array_equal(tree.get(np.arange(capacity)), p)
        if p.sum() == 0:
            continue
        csum = np.cumsum(p)
        q = np.concatenate(
            [
                rng.random(200) * p.sum(),
                csum,  # exactly on every boundary
                [0.0, p.sum(), 2 * p.sum(), -1.0],  # edges and out of range
            ]
        )
        found = tree.find(q)
        np.testing.assert_array_equal(found, oracle_find(p, q))
        assert (p[found] > 0).all()


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_last_write_wins_and_parents_follow(config):
    tree = make(10, config)
    tree.update(np.array([3, 5, 3, 3, 9]), np.array([1.0, 2.0, 7.0, 4.0, 0.5]))
    np.testing.assert_array_equal(tree.get([3, 5, 9]), [4.0, 2.0, 0.5])
    assert tree.total == 6.5
    tree.update(np.array([9, 3, 9]), np.array([8.0, 0.0, 0.0]))  # unsorted input
    np.testing.assert_array_equal(tree.get([3, 5, 9]), [0.0, 2.0, 0.0])
    assert tree.total == 2.0
    np.testing.assert_array_equal(tree.find([0.0, 1.0, 1.999]), [5, 5, 5])


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_zero_leaves_are_never_returned_with_inexact_sums(config):
    # Arbitrary floats (sums round differently in the tree and in the oracle) and many
    # zeros, including a zero tail: the found leaf must be non-zero and match the oracle
    # up to rounding at the boundaries.
    rng = np.random.default_rng(0)
    capacity = 777
    p = rng.random(capacity) ** 3 * (rng.random(capacity) < 0.3)
    p[700:] = 0.0
    tree = make(capacity, config)
    tree.update(np.arange(capacity), p)
    csum = np.cumsum(p)
    q = np.concatenate(
        [rng.random(5000) * csum[-1], csum, np.nextafter(csum, 0), [csum[-1], tree.total]]
    )
    found = tree.find(q)
    assert (p[found] > 0).all()
    qc = np.clip(q, 0, np.nextafter(csum[-1], 0))
    lower = np.where(found > 0, csum[found - 1], 0.0)
    tol = 1e-12 * csum[-1]
    assert (lower - tol <= qc).all() and (qc < csum[found] + tol).all()
    # the top edge maps to the last non-zero leaf
    last = np.flatnonzero(p)[-1]
    assert tree.find([tree.total, csum[-1], 10 * csum[-1]]).tolist() == [last] * 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_capacity_one_million(backend):
    rng = np.random.default_rng(1)
    capacity = 10**6
    p = rng.random(capacity)
    p[rng.integers(0, capacity, 1000)] = 0.0
    tree = SumTree(capacity, backend=backend)
    tree.update(np.arange(capacity), p)
    assert tree.total == pytest.approx(np.sum(p), rel=1e-12)
    idx = rng.integers(0, capacity, 300)
    tree.update(idx, np.full(idx.size, 2.5))  # a small update after the bulk one
    p[idx] = 2.5
    csum = np.cumsum(p)
    q = rng.random(64) * csum[-1]
    found = tree.find(q)
    expected = oracle_find(p, q)
    # float rounding may only move a query that sits within ~1e-9 of a boundary
    moved = found != expected
    assert moved.sum() <= 1
    assert (p[found] > 0).all()
    assert tree.find([csum[-1]])[0] == np.flatnonzero(p)[-1]


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_update_one_is_lazy_but_consistent(config):
    rng = np.random.default_rng(2)
    capacity = 300
    tree = make(capacity, config)
    p = np.zeros(capacity)
    for step in range(1200):
        i = int(rng.integers(capacity))
        v = float(rng.integers(0, 4)) / 2.0
        tree.update_one(i, v)
        p[i] = v
        if step % 97 == 0 and p.sum() > 0:
            assert tree.total == p.sum()
            q = rng.random(50) * p.sum()
            np.testing.assert_array_equal(tree.find(q), oracle_find(p, q))
    tree.update(np.array([0, 1]), np.array([3.0, 0.0]))  # update after pending writes
    p[[0, 1]] = [3.0, 0.0]
    assert tree.total == p.sum()
    q = rng.random(100) * p.sum()
    np.testing.assert_array_equal(tree.find(q), oracle_find(p, q))


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_find_stratified_and_priorities(config):
    rng = np.random.default_rng(3)
    p = rng.integers(0, 5, 500) / 2.0
    tree = make(500, config)
    tree.update(np.arange(500), p)
    u = rng.random(64)
    idx, prio = tree.find_stratified(u)
    expected = oracle_find(p, (np.arange(64) + u) * p.sum() / 64)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(prio, p[idx])
    assert (np.diff(idx) >= 0).all()
    idx2, prio2 = tree.find_with_priorities([0.0, p.sum() / 2])
    np.testing.assert_array_equal(prio2, p[idx2])


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_invalid_updates_raise_and_change_nothing(config):
    tree = make(8, config)
    tree.update(np.arange(8), np.ones(8))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(np.array([0, 1]), np.array([2.0, -1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(np.array([2]), np.array([np.nan]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(np.array([2]), np.array([np.inf]))
    with pytest.raises(IndexError, match="in \\[0, 8\\)"):
        tree.update(np.array([1, 8]), np.array([2.0, 2.0]))
    with pytest.raises(IndexError):
        tree.update(np.array([-1]), np.array([2.0]))
    with pytest.raises(IndexError):
        tree.update_one(8, 1.0)
    with pytest.raises(ValueError):
        tree.update_one(0, -0.5)
    assert tree.total == 8.0
    np.testing.assert_array_equal(tree.get(np.arange(8)), np.ones(8))


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_empty_tree_find_raises(config):
    tree = make(5, config)
    assert tree.total == 0.0
    with pytest.raises(ValueError, match="empty"):
        tree.find([0.0])
    tree.update(np.array([2]), np.array([1.0]))
    tree.update(np.array([2]), np.array([0.0]))
    with pytest.raises(ValueError, match="empty"):
        tree.find([0.5])


def test_numpy_exact_descent_matches_oracle():
    # The exact descent is the numpy backend's fallback for rounding corner cases.
    rng = np.random.default_rng(4)
    tree = SumTree(5000, branching=8, top_size=16, backend="numpy")
    p = rng.integers(0, 3, 5000) / 4.0
    p[4000:] = 0.0
    tree.update(np.arange(5000), p)
    q = np.concatenate([rng.random(500) * p.sum(), np.cumsum(p)[::50], [p.sum(), -3.0]])
    np.testing.assert_array_equal(tree._find_exact(q), oracle_find(p, q))


def test_memory_is_leaves_plus_a_small_fraction():
    for backend in BACKENDS:
        tree = SumTree(10**6, backend=backend)
        leaves = 10**6 * 8
        assert leaves <= tree.nbytes < 1.2 * leaves


def test_bad_arguments():
    with pytest.raises(ValueError, match="capacity"):
        SumTree(0)
    with pytest.raises(ValueError, match="branching"):
        SumTree(10, branching=1)
    with pytest.raises(ValueError, match="backend"):
        SumTree(10, backend="cuda")
    with pytest.raises(ValueError, match="values"):
        SumTree(10).update(np.array([1, 2]), np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_parent_sum_past_its_children_still_gives_a_non_zero_leaf(backend):
    # Rounding can make a stored parent sum exceed the sum of its children as seen by
    # the descent. Simulate a large such error: queries that land in the excess must go
    # to the subtree's last non-zero leaf, never to a zero one.
    tree = SumTree(64, branching=4, top_size=4, backend=backend)  # 64 -> 16 -> 4 (top)
    p = np.ones(64)
    p[3::4] = 0.0  # the last child of every leaf group is zero
    tree.update(np.arange(64), p)
    tree._levels[1][5] += 0.5  # node 5 owns leaves 20..23 and really sums to 3.0
    tree._top_fresh = False  # its parent is recomputed (stale top cumsum for numpy)
    parent = tree._levels[1].reshape(-1, 4).sum(axis=1)
    tree._levels[2][:] = parent
    tree._total = float(parent.sum())
    before = p[:20].sum()  # prefix sum in front of node 5
    found = tree.find([before + 3.25, before + 3.49, before + 2.5])
    assert found.tolist() == [22, 22, 22]
    q = np.linspace(0.0, tree.total, 2001)
    assert (p[tree.find(q)] > 0).all()


def test_numpy_exact_descent_with_inexact_sums():
    rng = np.random.default_rng(5)
    for _ in range(5):
        tree = SumTree(3000, branching=8, top_size=8, backend="numpy")
        p = rng.random(3000) * (rng.random(3000) < 0.5)
        p[2500:] = 0.0
        tree.update(np.arange(3000), p)
        csum = np.cumsum(p)
        q = np.concatenate([csum, np.nextafter(csum, 0), np.nextafter(csum, np.inf)])
        found = tree._find_exact(q)
        assert (p[found] > 0).all()
