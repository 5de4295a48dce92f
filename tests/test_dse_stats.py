"""DSE statistics: Wilson intervals against published values and exact binomial coverage, McNemar's
exact test against scipy's binomial test, the packed per-image results, and the frontier marks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas_minifloat.dse.runner import mark_frontier
from brevitas_minifloat.dse.stats import mcnemar_exact, pack_correct, unpack_correct, wilson_interval


@pytest.mark.parametrize("k, n, lo, hi", [
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score interval)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0),
])
def test_wilson_matches_published_intervals(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_coverage_is_near_nominal():
    """Exact coverage over the binomial distribution (not simulated): Wilson's is close to 95 %."""
    n = 200
    for p in (0.1, 0.5, 0.9):
        cover = sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)
                    if wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1])
        assert 0.93 < cover < 0.97, (p, cover)


@given(st.integers(1, 20000), st.data())
def test_wilson_contains_the_estimate_and_stays_in_range(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(k, n)
    assert 0 <= lo <= k / n <= hi <= 1
    assert hi - lo <= 2 * 1.96 * math.sqrt(0.25 / n) + 1e-12  # never wider than the worst normal case


def test_wilson_rejects_bad_counts():
    for k, n in ((5, 0), (-1, 10), (11, 10)):
        with pytest.raises(ValueError, match="correct"):
            wilson_interval(k, n)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.floats(0.3, 0.99), st.floats(0.3, 0.99), st.integers(0, 2**31 - 1))
def test_mcnemar_equals_scipy_binomial_test(n, pa, pb, seed):
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) < pa, rng.random(n) < pb
    res = mcnemar_exact(a, b)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    assert (res["a_only"], res["b_only"]) == (a_only, b_only)
    expected = 1.0 if a_only + b_only == 0 else scipy_stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert res["p"] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_paired_sensitivity_and_errors():
    # 9,000 shared hits, b misses 30 images a gets and never the reverse: a clear difference that two
    # overlapping 95 % intervals (90.3 vs 90.0 % on 10,000 images) would not show
    a = np.zeros(10_000, bool)
    a[:9030] = True
    b = a.copy()
    b[9000:9030] = False
    res = mcnemar_exact(a, b)
    assert res["a_only"] == 30 and res["b_only"] == 0 and res["p"] == pytest.approx(2 * 0.5 ** 30)
    ia, ib = wilson_interval(9030, 10_000), wilson_interval(9000, 10_000)
    assert ia[0] < ib[1]  # the intervals overlap
    assert mcnemar_exact(a, a)["p"] == 1.0
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact(a, b[:10])


@given(st.lists(st.booleans(), max_size=3000))
def test_pack_round_trip(bits):
    hits = np.array(bits, dtype=bool)
    assert np.array_equal(unpack_correct(pack_correct(hits), len(hits)), hits)


def test_unpack_too_short():
    with pytest.raises(ValueError, match="holds 8 images"):
        unpack_correct(pack_correct(np.ones(5, bool)), 9)


def test_mark_frontier_tests_each_point_against_its_cheaper_neighbour():
    n = 1000
    base = np.zeros(n, bool)
    base[:800] = True
    same = base.copy()
    same[0], same[900] = False, True  # one image swapped: no difference
    better = base.copy()
    better[800:860] = True  # 60 more images right
    packed = {"a": pack_correct(base), "b": pack_correct(same), "c": pack_correct(better)}
    frontier = [{"point": k, "eval_images": n} for k in ("a", "b", "c")]
    mark_frontier(frontier, packed)
    assert frontier[0]["frontier_p"] is None and frontier[0]["frontier_distinct"] is None
    assert frontier[1]["frontier_p"] == 1.0 and frontier[1]["frontier_distinct"] is False
    assert frontier[2]["frontier_p"] < 1e-10 and frontier[2]["frontier_distinct"] is True
    frontier = [{"point": "a", "eval_images": n}, {"point": "missing", "eval_images": n}]
    mark_frontier(frontier, packed)
    assert frontier[1]["frontier_p"] is None  # no per-image results: not marked
