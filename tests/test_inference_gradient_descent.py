"""nnft.gradient_descent against a direct integration of the gradient-flow ODE of the ensemble (no eigenbasis)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import nnft
from nnft.errors import InputError


@pytest.fixture
def setup():
    rng = np.random.default_rng(7)
    xa, xb = rng.normal(size=(5, 3)), rng.normal(size=(3, 3))
    Y = rng.normal(size=(5, 2))
    net = nnft.MLP("erf", depth=3, width=64, C_W=1.4, C_b=0.2, n_out=2)
    return net, xa, Y, xb


def ode_ensemble(K, Th, P_A, y, eta, times, ridge=0.0, ridge_in_start=False):
    """Mean and covariance of z = (z_A, z_B) under dz/dt = −η Θ_{·A}(z_A − y), z(0) ~ N(0, K), by solve_ivp.

    The ridge is added to Θ_AA; with ``ridge_in_start`` also to the starting covariance K_AA (the NNGP flow).
    """
    P = K.shape[0]
    Th = Th.copy()
    K = K.copy()
    Th[:P_A, :P_A] += ridge * np.eye(P_A)
    if ridge_in_start:
        K[:P_A, :P_A] += ridge * np.eye(P_A)
    A = np.zeros((P, P))
    A[:, :P_A] = -eta * Th[:, :P_A]
    c = eta * Th[:, :P_A] @ y

    def rhs(_, s):
        mu = s[:P]
        S = s[P:].reshape(P, P)
        return np.concatenate([A @ mu + c, (A @ S + S @ A.T).ravel()])

    s0 = np.concatenate([np.zeros(P), K.ravel()])
    sol = solve_ivp(rhs, (0, max(times)), s0, t_eval=times, rtol=1e-11, atol=1e-13, method="DOP853")
    return [(sol.y[:P, k][P_A:], sol.y[P:, k].reshape(P, P)[P_A:, P_A:]) for k in range(len(times))]


@pytest.mark.parametrize("eta,ridge,kernel", [(1.0, 0.0, "ntk"), (0.3, 0.05, "ntk"), (0.3, 0.05, "nngp")])
def test_closed_form_matches_the_ode(setup, eta, ridge, kernel):
    net, xa, Y, xb = setup
    times = np.array([0.0, 0.1, 0.7, 3.0])
    pred = nnft.gradient_descent(net, xa, Y, xb, t=times, learning_rate=eta, diag_reg=ridge, kernel=kernel)
    assert pred.mean.shape == (4, 3, 2) and pred.cov.shape == (4, 2, 3, 2, 3) and pred.std.shape == (4, 3, 2)
    ks = net.kernels(np.vstack([xa, xb]), layers="last")
    K, Th = np.asarray(ks.K)[-1], np.asarray(ks.Theta)[-1]
    if kernel == "nngp":
        Th = K
    for i in range(2):
        ref = ode_ensemble(K, Th, 5, Y[:, i], eta, times, ridge, ridge_in_start=kernel == "nngp")
        for k, (mu, S) in enumerate(ref):
            np.testing.assert_allclose(pred.mean[k, :, i], mu, rtol=0, atol=1e-8)
            np.testing.assert_allclose(pred.cov[k, i, :, i, :], S, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(pred.cov[:, 0, :, 1, :], 0.0)
    np.testing.assert_allclose(pred.mean[0], 0.0, atol=1e-15)  # at t = 0 the prior


def test_infinite_time(setup):
    net, xa, Y, xb = setup
    inf = nnft.gradient_descent(net, xa, Y, xb)
    ks = net.kernels(np.vstack([xa, xb]), layers="last")
    K, Th = np.asarray(ks.K)[-1], np.asarray(ks.Theta)[-1]
    a, b = slice(0, 5), slice(5, None)
    T = np.linalg.solve(Th[a, a], Th[a, b]).T
    np.testing.assert_allclose(inf.mean, T @ Y, atol=1e-10)
    cov = K[b, b] + T @ K[a, a] @ T.T - T @ K[a, b] - K[b, a] @ T.T
    np.testing.assert_allclose(inf.cov[1, :, 1, :], cov, atol=1e-10)
    late = nnft.gradient_descent(net, xa, Y, xb, t=1e7)
    np.testing.assert_allclose(late.mean, inf.mean, atol=1e-9)
    assert inf.t == np.inf and "Theta" in inf.latex()


def test_nngp_flow_limit_is_the_noise_free_gp(setup):
    net, xa, Y, xb = setup
    g = nnft.gradient_descent(net, xa, Y, xb, kernel="nngp")
    p = nnft.posterior(net, xa, Y, xb, noise=0.0)
    np.testing.assert_allclose(g.mean, p.mean, atol=1e-9)
    np.testing.assert_allclose(g.cov, p.cov, atol=1e-9)


def test_bad_input(setup):
    net, xa, Y, xb = setup
    with pytest.raises(InputError, match="t must"):
        nnft.gradient_descent(net, xa, Y, xb, t=-1.0)
    with pytest.raises(InputError, match="learning_rate"):
        nnft.gradient_descent(net, xa, Y, xb, learning_rate=0.0)
    with pytest.raises(InputError, match="kernel"):
        nnft.gradient_descent(net, xa, Y, xb, kernel="rbf")
    with pytest.raises(InputError, match="diag_reg"):
        nnft.gradient_descent(net, xa, Y, xb, diag_reg=-1.0)
    dup = np.vstack([xa, xa[:1]])
    Yd = np.vstack([Y, Y[:1]])
    with pytest.raises(InputError, match="singular.*t = ∞"):
        nnft.gradient_descent(net, dup, Yd, xb)
    ok = nnft.gradient_descent(net, dup, Yd, xb, t=2.0)  # finite time is fine with a duplicate
    assert np.all(np.isfinite(ok.mean))
    ok = nnft.gradient_descent(net, dup, Yd, xb, diag_reg=1e-3)
    assert np.all(np.isfinite(ok.cov))
