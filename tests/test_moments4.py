"""Batched Gaussian moments ⟨Π σ(z_i)^{c_i}⟩ (nnft.numeric.moments4) against routes that share no code with it."""

from __future__ import annotations

import numpy as np
import pytest

from nnft.errors import BudgetError, DivergenceError
from nnft.numeric.moments4 import gaussian_moments, sigma_moments4_entries
from nnft.numeric.quadrature_nd import gauss_nd


def _random_cov(rng, k, scale):
    A = rng.standard_normal((k, k + 2))
    S = A @ A.T / (k + 2)
    return scale * S


@pytest.mark.parametrize("powers", [(1, 1, 1, 1), (2, 1, 1), (3, 1), (2, 2), (4,), (1, 1)])
def test_tanh_against_eigen_coordinate_trapezoid(powers):
    """Against quadrature_nd's tensor trapezoid in eigen coordinates (another rule, another code) at tol 1e-12."""
    rng = np.random.default_rng(len(powers) * 10 + powers[0])
    k = len(powers)
    S = np.stack([_random_cov(rng, k, s) for s in (0.05, 0.3, 1.0)])
    got = gaussian_moments(np.tanh, S, powers)

    def f(*z):
        return np.prod([np.tanh(zz) ** c for zz, c in zip(z, powers, strict=True)], axis=0)

    ref = np.array([float(gauss_nd(f, s, tol=1e-12)) for s in S])
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-11)


def test_polynomials_are_exact_isserlis():
    """σ(z) = z: ⟨z1z2z3z4⟩ = Σ12Σ34 + Σ13Σ24 + Σ14Σ23; σ = z with powers (2, 2): Σ11Σ22 + 2Σ12²."""
    rng = np.random.default_rng(1)
    S = np.stack([_random_cov(rng, 4, 1.5) for _ in range(5)])
    got = gaussian_moments(lambda z: z, S, (1, 1, 1, 1))
    ref = S[:, 0, 1] * S[:, 2, 3] + S[:, 0, 2] * S[:, 1, 3] + S[:, 0, 3] * S[:, 1, 2]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    S2 = S[:, :2, :2]
    np.testing.assert_allclose(gaussian_moments(lambda z: z, S2, (2, 2)),
                               S2[:, 0, 0] * S2[:, 1, 1] + 2 * S2[:, 0, 1] ** 2, rtol=1e-12)


def test_erf_pair_against_arcsine():
    """⟨erf(z1)erf(z2)⟩ = (2/π) asin(2Σ12/√((1+2Σ11)(1+2Σ22))) (Williams 1997)."""
    from scipy.special import erf

    rng = np.random.default_rng(2)
    S = np.stack([_random_cov(rng, 2, s) for s in (0.1, 0.7, 1.5)])
    ref = 2 / np.pi * np.arcsin(2 * S[:, 0, 1] / np.sqrt((1 + 2 * S[:, 0, 0]) * (1 + 2 * S[:, 1, 1])))
    np.testing.assert_allclose(gaussian_moments(erf, S, (1, 1)), ref, rtol=0, atol=1e-12)


def test_singular_covariance_equals_fewer_variables():
    """Duplicate variable (exactly singular Σ): ⟨σ_aσ_aσ_bσ_c⟩ over four variables = the (2, 1, 1) class."""
    rng = np.random.default_rng(3)
    S3 = _random_cov(rng, 3, 0.8)
    idx = [0, 0, 1, 2]
    S4 = S3[np.ix_(idx, idx)]
    a = gaussian_moments(np.tanh, S4[None], (1, 1, 1, 1))
    b = gaussian_moments(np.tanh, S3[None], (2, 1, 1))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_entries_group_by_class():
    rng = np.random.default_rng(4)
    K = _random_cov(rng, 5, 0.6)
    quads = np.array([[0, 1, 2, 3], [0, 0, 1, 2], [1, 1, 1, 4], [2, 2, 3, 3], [4, 4, 4, 4], [0, 2, 3, 4]])
    got = sigma_moments4_entries(np.tanh, K, quads)
    for q, g in zip(quads, got, strict=True):
        vals, counts = np.unique(q, return_counts=True)
        ref = gaussian_moments(np.tanh, K[np.ix_(vals, vals)][None], tuple(int(c) for c in counts))[0]
        assert g == pytest.approx(ref, abs=1e-13)


def test_refusals():
    with pytest.raises(BudgetError, match="lower the variances"):
        gaussian_moments(np.tanh, np.array([[[1e5, 0.0], [0.0, 1e5]]]), (1, 1))
    with pytest.raises(DivergenceError, match="not finite"):
        gaussian_moments(lambda z: np.exp(z**3), np.array([[[2.0, 0.0], [0.0, 1.0]]]), (1, 1))
    with pytest.raises(ValueError, match="smooth"):
        sigma_moments4_entries(np.abs, np.eye(2), np.array([[0, 0, 1, 1]]), kinks=(0.0,))
