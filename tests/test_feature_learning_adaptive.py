"""Adaptive kernels (Seroussi, Naveh & Ringel 2023): limits, gradients, and the Monte Carlo judge of the sign.

The judge samples finite networks (numpy only: channels drawn from their Gaussian given the layer below,
weighted by the likelihood of the data) and estimates the posterior second moment of the layer-2
preactivations, which the K equation predicts; with the first layer infinitely wide the derived equation is
exact to O(1/C) for it, so its z-score must fall with C while the published sign's stays large.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from nnft import MLP, posterior
from nnft.errors import InputError
from nnft.feature_learning.adaptive import adaptive_kernels, grad_K, grad_Sigma


def _task(seed=0, P_A=6, P_B=2, d=4):
    rng = np.random.default_rng(seed)
    x, xt = rng.normal(size=(P_A, d)), rng.normal(size=(P_B, d))
    return x, np.sign(x @ rng.normal(size=d)), xt


def test_infinitely_many_channels_give_the_gp():
    x, y, xt = _task()
    net = MLP("erf", depth=3, width=[10**9, 10**9], C_W=[2.0, 2.0, 1.0])
    r = adaptive_kernels(net, x, y, xt, noise=0.05)
    gp = posterior(net, x, y, xt, noise=0.05, order=0).mean[:, 0]
    np.testing.assert_allclose(r.mean, gp, atol=5e-8)
    np.testing.assert_allclose(r.Sigma, 2.0 * np.eye(4) / 4, atol=1e-8)  # the O(1/C) shift is 1.5e-9 here
    K = net.kernels(np.vstack([x, xt]), ntk=False, layers="all").K
    np.testing.assert_allclose(r.K, K[1], atol=5e-8)
    np.testing.assert_allclose(r.Qf, K[2], atol=5e-8)


def test_the_gradients_are_finite_differences_of_the_traces():
    rng = np.random.default_rng(1)
    net = MLP("erf", depth=3, width=10)
    X = rng.normal(size=(5, 3))
    S = 0.5 * np.eye(3) + 0.1 * np.ones((3, 3))
    N = rng.normal(size=(5, 5))
    N = N + N.T
    K = net.kernels(X, ntk=False, layers="all").K[1]

    def Q(G, cw):
        from nnft.feature_learning.adaptive import _erf_like_map

        return _erf_like_map(net.activation, G, cw)

    gK, gS = grad_K(net.activation, K, N, 1.3), grad_Sigma(net.activation, X, S, N, 1.7)
    h = 1e-6
    for i, j in [(0, 0), (1, 3), (4, 2)]:
        E = np.zeros((5, 5))
        E[i, j] = E[j, i] = h / (1 if i == j else 2)
        fd = (np.sum(N * Q(K + E, 1.3)) - np.sum(N * Q(K - E, 1.3))) / (2 * h)
        assert fd == pytest.approx(gK[i, j], rel=1e-6, abs=1e-8)
    for i, j in [(0, 0), (0, 2), (1, 2)]:
        E = np.zeros((3, 3))
        E[i, j] = E[j, i] = h / (1 if i == j else 2)
        fd = (np.sum(N * Q(X @ (S + E) @ X.T, 1.7)) - np.sum(N * Q(X @ (S - E) @ X.T, 1.7))) / (2 * h)
        assert fd == pytest.approx(gS[i, j], rel=1e-6, abs=1e-8)


def test_the_solution_satisfies_the_equations_of_state_and_the_shift_is_order_one_over_c():
    x, y, xt = _task(2)
    shifts = []
    for C in (50, 100, 200):
        net = MLP("erf", depth=3, width=C, C_W=[2.0, 2.0, 1.0])
        r = adaptive_kernels(net, x, y, xt, noise=0.1)
        assert r.converged and r.residual < 1e-10
        gp = posterior(net, x, y, xt, noise=0.1, order=0).mean[:, 0]
        shifts.append(C * np.abs(r.mean - gp).max())
    assert shifts[2] / shifts[1] == pytest.approx(1, abs=0.1) and shifts[1] > 0.05


def test_bad_input():
    x, y, xt = _task()
    with pytest.raises(InputError, match="3-layer"):
        adaptive_kernels(MLP("erf", depth=2), x, y, xt, noise=0.1)
    with pytest.raises(InputError, match="sign"):
        adaptive_kernels(MLP("erf", depth=3), x, y, xt, noise=0.1, sign=0)
    with pytest.raises(InputError, match="noise"):
        adaptive_kernels(MLP("erf", depth=3), x, y, xt, noise=0.0)


def _second_moment_mc(Q1, C_a, C2, y, P_A, noise, samples, seed, batch=4000):
    """E[(1/C2) Σ_c h2_c h2_cᵀ | y] with the first layer infinitely wide (h2_c ~ N(0, Q1) iid), by importance
    sampling the C2 channels and integrating the readout (output kernel C_a/C2 Σ erf(h2)erf(h2)ᵀ)."""
    rng = np.random.default_rng(seed)
    P = Q1.shape[0]
    L = np.linalg.cholesky(Q1)
    logw, H = [], []
    for _ in range(samples // batch):
        h2 = np.einsum("pq,scq->scp", L, rng.standard_normal((batch, C2, P)))
        f2 = erf(h2)
        Qf = C_a * np.einsum("scp,scq->spq", f2, f2) / C2
        G = Qf[:, :P_A, :P_A] + noise * np.eye(P_A)
        Yb = np.broadcast_to(y[:, None], (batch, P_A, 1))
        logw.append(-0.5 * np.einsum("sai,sai->s", np.linalg.solve(G, Yb), Yb) - 0.5 * np.linalg.slogdet(G)[1])
        H.append(np.einsum("scp,scq->spq", h2, h2) / C2)
    logw, H = np.concatenate(logw), np.concatenate(H)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean = np.einsum("s,spq->pq", w, H)
    return mean, np.sqrt(np.einsum("s,spq->pq", w**2, (H - mean) ** 2)), 1 / np.sum(w**2)


@pytest.mark.slow
def test_monte_carlo_judge_supports_the_derived_minus_sign():
    x, y, xt = _task()
    z_minus, z_plus = [], []
    for C in (25, 50):
        net = MLP("erf", depth=3, width=[10**9, C], C_W=[2.0, 2.0, 1.0])
        minus = adaptive_kernels(net, x, y, xt, noise=0.05, sign=-1)
        plus = adaptive_kernels(net, x, y, xt, noise=0.05, sign=+1)
        Q1 = net.kernels(np.vstack([x, xt]), ntk=False, layers="all").K[1]
        mc, se, ess = _second_moment_mc(Q1, 1.0, C, y, 6, 0.05, 200_000, seed=1)
        assert ess > 5e4
        assert np.abs((Q1 - mc) / se).max() > 100  # the adaptation itself is resolved
        z_minus.append(np.abs((minus.K - mc) / se).max())
        z_plus.append(np.abs((plus.K - mc) / se).max())
    assert z_minus[1] < z_minus[0] / 1.8  # bias O(1/C²) over an error O(1/√C): falls like C^-1.5
    assert min(z_plus) > 30 and z_plus[1] > 4 * z_minus[1]
