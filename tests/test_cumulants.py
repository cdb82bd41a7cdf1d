"""Tests of nnft.cumulants: set partitions, moments ↔ cumulants, distinct sums, k-statistics."""

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from nnft.cumulants import (
    cumulants_from_moments,
    distinct_sum,
    joint_cumulant,
    k_statistic,
    mobius,
    moments_from_cumulants,
    neuron_cumulant_terms,
    set_partitions,
    unbiased_product_of_means,
)

BELL = [1, 1, 2, 5, 15, 52, 203, 877]


@pytest.mark.parametrize("k", range(8))
def test_set_partitions_are_bell_many_and_distinct(k):
    parts = list(set_partitions(k))
    assert len(parts) == BELL[k]
    canon = {tuple(sorted(tuple(sorted(b)) for b in p)) for p in parts}
    assert len(canon) == BELL[k]
    for p in parts:
        assert sorted(i for b in p for i in b) == list(range(k))


def test_mobius_values():
    assert mobius([[0, 1, 2, 3]]) == -6
    assert mobius([[0], [1], [2]]) == 1
    assert mobius([[0, 1], [2, 3, 4]]) == -2


def test_gaussian_cumulants_vanish_above_two():
    # standard normal raw moments: 0, 1, 0, 3, 0, 15
    assert cumulants_from_moments([0, 1, 0, 3, 0, 15]) == [0, 1, 0, 0, 0, 0]
    assert moments_from_cumulants([0, 1, 0, 0, 0, 0]) == [0, 1, 0, 3, 0, 15]


def test_poisson_cumulants_all_equal_lambda():
    lam = 1.7
    # Poisson raw moments are Touchard polynomials: E[X^n] = Σ_k S(n,k) λ^k
    stirling = {1: [1], 2: [1, 1], 3: [1, 3, 1], 4: [1, 7, 6, 1], 5: [1, 15, 25, 10, 1]}
    moments = [sum(c * lam ** (k + 1) for k, c in enumerate(stirling[n])) for n in range(1, 6)]
    assert np.allclose(cumulants_from_moments(moments), [lam] * 5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=6, max_size=6))
def test_moments_cumulants_roundtrip(kappas):
    back = cumulants_from_moments(moments_from_cumulants(kappas))
    assert np.allclose(back, kappas, atol=1e-9 * (1 + max(abs(k) for k in kappas)) ** 6)


def test_joint_cumulant_of_independent_blocks_vanishes():
    # X0, X1 independent standard normals: kappa(X0, X0, X1, X1) = 0, kappa(X0, X0, X0, X0) = 0
    def moment(block):
        counts = [sum(1 for j in block if lab[j] == v) for v in (0, 1)]
        return math.prod(0 if c % 2 else math.prod(range(c - 1, 0, -2)) for c in counts)

    lab = (0, 0, 1, 1)
    assert joint_cumulant(moment, 4) == 0
    lab = (0, 0, 0, 0)
    assert joint_cumulant(moment, 4) == 0
    lab = (0, 0)
    assert joint_cumulant(moment, 2) == 1


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_distinct_sum_matches_brute_force(k):
    rng = np.random.default_rng(k)
    f = rng.standard_normal((k, 7))

    def ps(block):
        prod = np.ones(7)
        for j in block:
            prod = prod * f[j]
        return prod.sum()

    brute = sum(math.prod(f[j, r[j]] for j in range(k)) for r in itertools.permutations(range(7), k))
    assert distinct_sum(ps, k) == pytest.approx(brute, rel=1e-12, abs=1e-12)


def test_unbiased_product_of_means_is_exactly_unbiased():
    # exact expectation over all samples of size 4 drawn with replacement from a 3-point distribution
    support = np.array([-1.0, 0.5, 2.0])
    probs = np.array([0.2, 0.5, 0.3])
    g = support**2
    mean_f, mean_g = probs @ support, probs @ g
    expectation = 0.0
    for idx in itertools.product(range(3), repeat=4):
        p = np.prod(probs[list(idx)])
        expectation += p * unbiased_product_of_means(support[list(idx)], support[list(idx)], g[list(idx)])
    assert expectation == pytest.approx(mean_f * mean_f * mean_g, rel=1e-12)
    # the naive product of sample means is biased for the same problem (the test can fail)
    naive = sum(
        np.prod(probs[list(i)]) * support[list(i)].mean() ** 2 * g[list(i)].mean()
        for i in itertools.product(range(3), repeat=4)
    )
    assert abs(naive - mean_f * mean_f * mean_g) > 1e-2


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_k_statistics_match_scipy(order):
    x = np.random.default_rng(order).standard_normal(40) ** 3 + 0.3
    assert k_statistic(x, order) == pytest.approx(scipy.stats.kstat(x, order), rel=1e-10)


def test_k_statistic_bad_input():
    with pytest.raises(ValueError, match="at least 4 samples"):
        k_statistic([1.0, 2.0, 3.0], 4)
    with pytest.raises(ValueError, match="order"):
        k_statistic([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="at least 3 samples"):
        unbiased_product_of_means(np.ones(2), np.ones(2), np.ones(2))


def test_neuron_cumulant_terms_known_values():
    # derived by hand in the module docstring of nnft.numeric.montecarlo and PDLT §4
    assert neuron_cumulant_terms("iiii") == {((4,),): 1, ((2,), (2,)): -3}
    assert neuron_cumulant_terms("iijj") == {((2, 2),): 1, ((2,), (2,)): -1}
    assert neuron_cumulant_terms("iiiiii") == {((6,),): 1, ((2,), (4,)): -15, ((2,), (2,), (2,)): 30}
    assert neuron_cumulant_terms("iiiijj") == {
        ((4, 2),): 1, ((2,), (4,)): -1, ((2,), (2, 2)): -6, ((2,), (2,), (2,)): 6
    }
    assert neuron_cumulant_terms("iijjkk") == {((2, 2, 2),): 1, ((2,), (2, 2)): -3, ((2,), (2,), (2,)): 2}


@pytest.mark.parametrize("pattern", ["iiii", "iijj", "iiiiii", "iiiijj", "iijjkk"])
def test_neuron_cumulants_vanish_for_iid_gaussian_neurons(pattern):
    # i.i.d. N(0, s) neurons: E[Π z_a^{k_a}] = Π s^{k_a/2}(k_a − 1)!!, and every connected function is 0
    s = 1.3

    def mom(key):
        return math.prod(s ** (k / 2) * math.prod(range(k - 1, 0, -2)) for k in key)

    total = sum(c * math.prod(mom(k) for k in prod) for prod, c in neuron_cumulant_terms(pattern).items())
    assert total == pytest.approx(0.0, abs=1e-12)
