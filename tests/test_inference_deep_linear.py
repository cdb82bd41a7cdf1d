"""nnft.posterior against the exact finite-width posterior of bias-free linear networks (THEORY.md §2).

The oracle (tests/deep_linear_oracle.py, numpy/scipy quadrature, shares no code with nnft) is exact at any
width. The must-show: order 0 misses it by c0/n, order 1 by c1/n² — for the posterior mean, the covariance
(incl. the cross-output covariance of two outputs) and the log evidence, with noise, for n = 50 … 800.
"""

from __future__ import annotations

import numpy as np
import pytest
from deep_linear_oracle import one_output, two_outputs

import nnft

WIDTHS = [50, 100, 200, 400, 800]
NOISE, C_W = 0.3, 1.3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), rng.normal(size=(3, 3))


def _errors(post, exact):
    m, c, lz = exact
    return {"mean": np.abs(post.mean - m).max(), "cov": np.abs(post.cov - c).max(),
            "logz": abs(post.log_marginal_likelihood - lz)}


def _assert_flat(scaled, tol):
    """``scaled`` (one value per width) is a nonzero constant up to a relative spread ``tol``."""
    scaled = np.asarray(scaled)
    assert scaled.min() > 0
    assert scaled.max() / scaled.min() < 1 + tol, scaled


def test_oracle_quadrature_converged_and_gp_limit(data):
    xa, Y, xb = data
    a = one_output(xa, Y[:, 0], xb, C_W=C_W, widths=[60, 60], noise=NOISE)
    b = one_output(xa, Y[:, 0], xb, C_W=C_W, widths=[60, 60], noise=NOISE, nodes=200, span=18.0)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-12)
    a2 = two_outputs(xa, Y, xb, C_W=C_W, n=60, noise=NOISE)
    b2 = two_outputs(xa, Y, xb, C_W=C_W, n=60, noise=NOISE, nodes=(96, 96, 72), span=16.0)
    for u, v in zip(a2, b2, strict=True):
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-11)
    # at huge width the oracle is the GP: a check of the oracle's own bookkeeping (rotation, Bartlett)
    net = nnft.MLP("linear", depth=2, width=10**6, C_W=C_W, C_b=0.0, n_out=2)
    gp = nnft.posterior(net, xa, Y, xb, noise=NOISE)
    m, c, lz = two_outputs(xa, Y, xb, C_W=C_W, n=10**6, noise=NOISE)
    np.testing.assert_allclose(m, gp.mean, atol=2e-5)
    np.testing.assert_allclose(c, gp.cov, atol=2e-5)
    assert lz == pytest.approx(gp.log_marginal_likelihood, abs=2e-5)


def test_one_output_two_hidden_layers_order1_error_falls_like_inverse_width_squared(data):
    xa, Y, xb = data
    e0, e1 = [], []
    for n in WIDTHS:
        exact = one_output(xa, Y[:, 0], xb, C_W=C_W, widths=[n, n], noise=NOISE)
        net = nnft.MLP("linear", depth=3, width=n, C_W=C_W, C_b=0.0)
        p0 = nnft.posterior(net, xa, Y[:, 0], xb, noise=NOISE)
        p1 = nnft.posterior(net, xa, Y[:, 0], xb, noise=NOISE, order=1)
        e0.append(_errors(p0, (exact[0][:, None], exact[1][None, :, None, :], exact[2])))
        e1.append(_errors(p1, (exact[0][:, None], exact[1][None, :, None, :], exact[2])))
    for key in ("mean", "cov", "logz"):
        _assert_flat([n * e[key] for n, e in zip(WIDTHS, e0, strict=True)], 0.2)
        _assert_flat([n * n * e[key] for n, e in zip(WIDTHS, e1, strict=True)], 0.2)
        assert e1[-1][key] < 0.05 * e0[-1][key]


def test_two_outputs_one_hidden_layer_incl_cross_covariance(data):
    xa, Y, xb = data
    rows = []
    for n in WIDTHS:
        m, c, lz = two_outputs(xa, Y, xb, C_W=C_W, n=n, noise=NOISE)
        net = nnft.MLP("linear", depth=2, width=n, C_W=C_W, C_b=0.0, n_out=2)
        p0 = nnft.posterior(net, xa, Y, xb, noise=NOISE)
        p1 = nnft.posterior(net, xa, Y, xb, noise=NOISE, order=1)
        cross = [np.abs(p.cov[0, :, 1, :] - c[0, :, 1, :]).max() for p in (p0, p1)]
        rows.append((_errors(p0, (m, c, lz)), _errors(p1, (m, c, lz)), cross))
    # the exact posterior couples the two outputs at finite width; order 0 cannot, order 1 does
    assert np.abs(two_outputs(xa, Y, xb, C_W=C_W, n=50, noise=NOISE)[1][0, :, 1, :]).max() > 1e-3
    for key in ("mean", "cov", "logz"):
        _assert_flat([n * r[0][key] for n, r in zip(WIDTHS, rows, strict=True)], 0.2)
        _assert_flat([n * n * r[1][key] for n, r in zip(WIDTHS, rows, strict=True)], 0.2)
    _assert_flat([n * r[2][0] for n, r in zip(WIDTHS, rows, strict=True)], 0.2)
    _assert_flat([n * n * r[2][1] for n, r in zip(WIDTHS, rows, strict=True)], 0.2)


def test_noise_free_one_hidden_layer_mean_is_exactly_the_nngp_mean(data):
    """σ_ε² = 0, one hidden layer: the mean given Q is K_BA K_AA⁻¹ y for every Q (THEORY §2), at any width."""
    xa, Y, xb = data
    xa = xa[:3]                                                  # P_A ≤ n_0 keeps K_AA invertible
    exact = one_output(xa, Y[:3, 0], xb, C_W=C_W, widths=[20], noise=0.0)
    net = nnft.MLP("linear", depth=2, width=20, C_W=C_W, C_b=0.0)
    for order in (0, 1):
        np.testing.assert_allclose(nnft.posterior(net, xa, Y[:3, 0], xb, order=order).mean[:, 0], exact[0],
                                   atol=1e-10)


@pytest.mark.slow
def test_oracle_agrees_with_the_monte_carlo_ensemble_at_small_width(data):
    """Two routes that share no code: the quadrature oracle and seeded finite networks (z-scores)."""
    xa, Y, xb = data
    net = nnft.MLP("linear", depth=3, width=6, C_W=C_W, C_b=0.0)
    mc = nnft.montecarlo.posterior(net, xa, Y[:, 0], xb, noise=1.0, samples=200_000, seed=5)
    m, c, lz = one_output(xa, Y[:, 0], xb, C_W=C_W, widths=[6, 6], noise=1.0)
    z_mean = (m - mc.mean[:, 0]) / mc.mean_stderr[:, 0]
    z_cov = (c - mc.cov[0, :, 0, :]) / mc.cov_stderr[0, :, 0, :]
    z_lz = (lz - mc.log_marginal_likelihood) / mc.log_marginal_likelihood_stderr
    assert np.abs(z_mean).max() < 4 and np.abs(z_cov).max() < 4.5 and abs(z_lz) < 4
    # and the test can fail: the order-0 GP is rejected at this width
    gp = nnft.posterior(net, xa, Y[:, 0], xb, noise=1.0)
    assert abs((gp.log_marginal_likelihood - mc.log_marginal_likelihood) / mc.log_marginal_likelihood_stderr) > 6
