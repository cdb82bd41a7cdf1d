"""nnft.posterior at order 0 against a textbook GP written here, its order-1 terms' structure, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnft
from nnft.errors import InputError
from nnft.numeric.spd import JitterWarning, factor_spd


def textbook_gp(K, P_A, Y, noise):
    """Rasmussen & Williams Algorithm 2.1, written independently (numpy.linalg only)."""
    Kaa = K[:P_A, :P_A] + noise * np.eye(P_A)
    Kba = K[P_A:, :P_A]
    L = np.linalg.cholesky(Kaa)
    alpha = np.linalg.solve(L.T, np.linalg.solve(L, Y))
    mean = Kba @ alpha
    v = np.linalg.solve(L, Kba.T)
    cov = K[P_A:, P_A:] - v.T @ v
    logml = sum(-0.5 * Y[:, i] @ alpha[:, i] - np.sum(np.log(np.diag(L))) - 0.5 * P_A * math.log(2 * math.pi)
                for i in range(Y.shape[1]))
    return mean, cov, logml


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), rng.normal(size=(4, 3))


@pytest.mark.parametrize("act", ["relu", "tanh", "erf", "gelu"])
@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_order0_is_the_textbook_gp(act, noise, data):
    xa, Y, xb = data
    net = nnft.MLP(act, depth=3, width=64, C_W=1.6, C_b=0.1, n_out=2)
    post = nnft.posterior(net, xa, Y, xb, noise=noise)
    K = net.nngp(np.vstack([xa, xb]))
    mean, cov, logml = textbook_gp(K, 6, Y, noise)
    np.testing.assert_allclose(post.mean, mean, rtol=0, atol=1e-12)
    assert post.cov.shape == (2, 4, 2, 4) and post.std.shape == (4, 2)
    for i in range(2):
        np.testing.assert_allclose(post.cov[i, :, i, :], cov, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(post.cov[0, :, 1, :], 0.0)
    assert post.log_marginal_likelihood == pytest.approx(logml, abs=1e-10)
    assert post.jitter == 0.0 and post.order == 0
    np.testing.assert_allclose(post.std[:, 1], np.sqrt(np.diag(cov)), atol=1e-12)


def test_one_output_vector_targets(data):
    xa, Y, xb = data
    net = nnft.MLP("tanh", depth=2, width=32, C_W=1.2)
    p = nnft.posterior(net, xa, Y[:, 0], xb, noise=0.1)
    assert p.mean.shape == (4, 1) and p.cov.shape == (1, 4, 1, 4)
    q = nnft.posterior(net, xa, Y[:, :1], xb, noise=0.1)
    np.testing.assert_array_equal(p.mean, q.mean)


def test_order1_reduces_to_order0_as_width_grows(data):
    """The 1/n terms scale like 1/n: (order 1 − order 0) × n converges, its drift falling like 1/n (the K1 shift
    enters G̃ non-linearly, so the difference holds O(1/n²) pieces)."""
    xa, Y, xb = data
    diffs = []
    for n in (100, 400, 1600):
        net = nnft.MLP("tanh", depth=3, width=n, C_W=1.6, C_b=0.1, n_out=2)
        p0 = nnft.posterior(net, xa, Y, xb, noise=0.1)
        p1 = nnft.posterior(net, xa, Y, xb, noise=0.1, order=1)
        diffs.append(((p1.mean - p0.mean) * n, (p1.cov - p0.cov) * n,
                      (p1.log_marginal_likelihood - p0.log_marginal_likelihood) * n))
    for k in range(3):
        d1 = np.max(np.abs(np.asarray(diffs[1][k]) - diffs[0][k]))
        d2 = np.max(np.abs(np.asarray(diffs[2][k]) - diffs[1][k]))
        scale = np.max(np.abs(diffs[2][k]))
        assert d1 < 0.03 * scale and 2.5 < d1 / d2 < 6.0, (k, d1, d2, scale)
    assert np.max(np.abs(diffs[0][0])) > 1e-3  # the correction is there
    assert np.max(np.abs(diffs[0][1][0, :, 1, :])) > 1e-4  # including the cross-output covariance


def test_order1_cov_symmetry_and_cross_output(data):
    xa, Y, xb = data
    net = nnft.MLP("relu", depth=3, width=20, C_W=2.0, n_out=2)
    p = nnft.posterior(net, xa, Y, xb, noise=0.2, order=1)
    np.testing.assert_allclose(p.cov, p.cov.transpose(2, 3, 0, 1), atol=1e-14)
    assert np.max(np.abs(p.cov[0, :, 1, :])) > 1e-4
    assert "V^{\\perp}" in p.latex() and p._repr_latex_().startswith("$$")
    assert "order=1" in repr(p) and "n=20" in repr(p)


def test_deep_linear_noise_free_mean_is_the_nngp_mean(data):
    """σ_ε² = 0, linear, no bias: V⊥ = 0 so the order-1 mean is the NNGP mean (exact for every q; THEORY §2)."""
    xa, Y, xb = data
    net = nnft.MLP("linear", depth=3, width=10, C_W=1.3, n_out=2)
    p0 = nnft.posterior(net, xa[:3], Y[:3], xb, noise=0.0)
    p1 = nnft.posterior(net, xa[:3], Y[:3], xb, noise=0.0, order=1)
    np.testing.assert_allclose(p1.mean, p0.mean, atol=1e-10)


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_input(data):
    xa, Y, xb = data
    net = nnft.MLP("tanh", depth=2, width=16, n_out=2)
    with pytest.raises(InputError, match="4 points|shape"):
        nnft.posterior(net, xa, Y[:4], xb, noise=0.1)
    with pytest.raises(InputError, match="input dimension"):
        nnft.posterior(net, xa, Y, xb[:, :2], noise=0.1)
    with pytest.raises(InputError, match="noise"):
        nnft.posterior(net, xa, Y, xb, noise=-0.1)
    with pytest.raises(InputError, match="NaN"):
        Ybad = Y.copy()
        Ybad[2, 1] = np.nan
        nnft.posterior(net, xa, Ybad, xb, noise=0.1)
    with pytest.raises(InputError, match="NaN"):
        xbad = xa.copy()
        xbad[0, 0] = np.inf
        nnft.posterior(net, xbad, Y, xb, noise=0.1)
    with pytest.raises(InputError, match="n_out"):
        nnft.posterior(nnft.MLP("tanh", depth=2, width=16), xa, Y, xb, noise=0.1)
    with pytest.raises(InputError, match="2-D"):
        nnft.posterior(net, xa[:, 0], Y, xb, noise=0.1)
    with pytest.raises(InputError, match="order"):
        nnft.posterior(net, xa, Y, xb, noise=0.1, order=2)


def test_duplicate_training_inputs(data):
    xa, Y, xb = data
    xd = np.vstack([xa, xa[:1]])
    Yd = np.vstack([Y, Y[:1]])
    net = nnft.MLP("tanh", depth=2, width=16, n_out=2)
    with pytest.raises(InputError, match="duplicated input.*noise"):
        nnft.posterior(net, xd, Yd, xb, noise=0.0)
    p = nnft.posterior(net, xd, Yd, xb, noise=0.1)  # with noise the copies are two noisy observations
    assert np.all(np.isfinite(p.mean))
    p1 = nnft.posterior(net, xd, Yd, xb, noise=0.1, order=1)  # V on A ∪ B with a duplicate is expanded
    assert np.all(np.isfinite(p1.cov))


def test_near_duplicates_get_a_reported_jitter(data):
    xa, Y, xb = data
    xd = np.vstack([xa, xa[:1] + 1e-9])
    Yd = np.vstack([Y, Y[:1]])
    net = nnft.MLP("tanh", depth=2, width=16, n_out=2)
    with pytest.warns(JitterWarning, match="jitter"):
        p = nnft.posterior(net, xd, Yd, xb, noise=0.0)
    assert p.jitter > 0 and "jitter=" in repr(p)


def test_factor_spd_errors():
    with pytest.raises(InputError, match="not positive definite"):
        factor_spd(np.array([[1.0, 2.0], [2.0, 1.0]]), "A")
    with pytest.raises(InputError, match="not symmetric"):
        factor_spd(np.array([[1.0, 0.5], [0.0, 1.0]]), "A")
    with pytest.raises(InputError, match="non-finite"):
        factor_spd(np.array([[np.nan, 0.0], [0.0, 1.0]]), "A")
    with pytest.raises(InputError, match="non-positive diagonal"):
        factor_spd(np.array([[-1.0, 0.0], [0.0, 1.0]]), "A")
    f = factor_spd(np.array([[2.0, 1.0], [1.0, 2.0]]), "A")
    assert f.jitter == 0.0 and f.logdet() == pytest.approx(math.log(3.0))
    np.testing.assert_allclose(f.solve(np.array([1.0, 0.0])), [2 / 3, -1 / 3])
