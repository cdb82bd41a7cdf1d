"""nnft.proportional: the renormalised-kernel posterior in the proportional limit P = αn, against exact results.

Independent routes:
- the exact posterior of bias-free deep linear networks (tests/deep_linear_oracle.py, quadrature of the
  Gamma scale mixture of THEORY §2, numpy/scipy only): the saddle point is off by O(1/n) at fixed α;
- the zero-noise polynomials of THEORY §3 (typed here) against the engine's derivation, symbolically,
  and their numpy roots against the solver;
- a direct minimisation of the action written with dense matrices here (no eigen-pencil), with biases;
- the α → 0 limit: the NNGP posterior (nnft.posterior).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from deep_linear_oracle import linear_kernel, one_output, scale_posterior, two_outputs
from scipy.optimize import minimize_scalar

import nnft
from nnft.errors import ConvergenceError, InputError
from nnft.proportional import renormalised_posterior, scalar_action, zero_noise_equation

NOISE = 0.3


def smooth_design(P: int, r: float = 1.2, outputs: int = 1):
    """P points t_μ = (μ + ½)/P with n_0 = P features √(P λ_k) φ_k(t) (φ_k the orthonormal DCT-II basis).

    The training kernel x·x'/n_0 is exactly U diag(λ) Uᵀ with the fixed profile λ_k = 2/(1 + (4k/P)²), so
    its spectrum has a limit as P grows (a proportional design: O(P) modes of O(1) size); the targets are
    ``U β`` with ``β_k = r √λ_k ξ_k``, ξ one fixed standard-normal sequence (prefix-consistent in P), so
    ``r₀ = yᵀK⁻¹y/P → r²``; three test points t ∈ {0.13, 0.41, 0.77}. ``outputs=2``: a second target
    ``U β'`` with ``β'_k = r √λ_k (0.6 ξ_k + 0.8 ξ'_k)``, correlated with the first (so that Q is not diagonal).
    """
    def phi(t):
        f = np.sqrt(2.0 / P) * np.cos(np.pi * np.outer(t, np.arange(P)))
        f[:, 0] /= np.sqrt(2.0)
        return f

    k = np.arange(P)
    lam = 2.0 / (1.0 + (4.0 * k / P) ** 2)
    U = phi((k + 0.5) / P)
    xi = np.random.default_rng(5).standard_normal(4096)[:P]
    y = U @ (r * np.sqrt(lam) * xi)
    if outputs == 2:
        xi2 = np.random.default_rng(6).standard_normal(4096)[:P]
        y = np.stack([y, U @ (r * np.sqrt(lam) * (0.6 * xi + 0.8 * xi2))], axis=1)
    return U * np.sqrt(P * lam), y, phi(np.array([0.13, 0.41, 0.77])) * np.sqrt(P * lam)


# ------------------------------------------------------------------------------------ the derivation


@pytest.mark.parametrize("hidden", [1, 2, 3])
def test_zero_noise_polynomial_is_derived(hidden):
    """THEORY §3: Q^{L_h+1} − (1 − α) Q^{L_h} − α r₀ = 0 at σ_ε² = 0, equal widths, one output."""
    Q, alpha, r0 = sp.symbols("Q alpha r_0", positive=True)
    expected = Q ** (hidden + 1) - (1 - alpha) * Q ** hidden - alpha * r0
    assert sp.simplify(zero_noise_equation(hidden) - expected) == 0


def test_layers_share_one_stationarity_constant():
    """n_ℓ (Q_ℓ − 1) = c for every layer: the derivation checks the layers' terms agree (THEORY §3)."""
    act = scalar_action(3)
    t = act.common_term
    assert not any(t.has(Ql) for Ql in act.Q)  # a function of q = Π Q_ℓ alone
    assert "Q_{1}" in act.latex() and "Q_{3}" in act.latex()


# ------------------------------------------------------------------------------ exact closed forms


@pytest.mark.parametrize("hidden", [1, 2])
def test_zero_noise_saddle_is_the_root_of_the_polynomial(hidden):
    rng = np.random.default_rng(3)
    P, n0, n = 12, 20, 30
    x, xb = rng.normal(size=(P, n0)), rng.normal(size=(2, n0))
    y = rng.normal(size=P)
    net = nnft.MLP("linear", depth=hidden + 1, width=n, C_W=1.3, C_b=0.0)
    r = renormalised_posterior(net, x, y, xb, noise=0.0)
    K = linear_kernel(x, 1.3, hidden + 1)
    r0 = y @ np.linalg.solve(K, y) / P
    alpha = P / n
    roots = np.roots([1.0, -(1 - alpha), *([0.0] * (hidden - 1)), -alpha * r0])
    Q = max(z.real for z in roots if abs(z.imag) < 1e-12 and z.real > 0)
    np.testing.assert_allclose(r.order_parameters["Q_1"].value, Q, rtol=1e-11)
    np.testing.assert_allclose(r.q, Q ** hidden, rtol=1e-11)
    # the noise-free mean is the NNGP mean for every q; the variance is scaled by q (THEORY §3)
    gp = nnft.posterior(net, x, y, xb, noise=0.0)
    np.testing.assert_allclose(r.mean, gp.mean, atol=1e-9)
    np.testing.assert_allclose(r.cov, r.q * gp.cov, atol=1e-9)


def test_large_targets_leave_any_fixed_bracket():
    """ln Q ≈ 9.6 here, outside deepbays' fixed bracket [−4, 7]: the adaptive bracket finds it."""
    rng = np.random.default_rng(4)
    P, n0, n = 10, 16, 5
    x, xb = rng.normal(size=(P, n0)), rng.normal(size=(1, n0))
    K = linear_kernel(x, 1.0, 2)
    y = rng.normal(size=P)
    y *= np.sqrt(1e8 * P / (y @ np.linalg.solve(K, y)))  # r₀ = 1e8
    r = renormalised_posterior(nnft.MLP("linear", depth=2, width=n), x, y, xb, noise=0.0)
    alpha = P / n
    Q = ((1 - alpha) + np.sqrt((1 - alpha) ** 2 + 4 * alpha * 1e8)) / 2
    assert np.log(Q) > 7
    np.testing.assert_allclose(r.q, Q, rtol=1e-10)
    assert r.saddle.converged and r.saddle.method == "brentq"


def test_readout_bias_against_a_dense_minimisation():
    """C_b > 0: K_R = C_b + q (K − C_b); the saddle minimises S written with dense matrices (no pencil)."""
    rng = np.random.default_rng(6)
    x, xb = rng.normal(size=(9, 3)), rng.normal(size=(2, 3))
    y = np.cos(x[:, 0]) + 0.5
    for noise in (0.2, 0.0):
        net = nnft.MLP("erf", depth=2, width=7, C_W=1.7, C_b=0.4)
        r = renormalised_posterior(net, x, y, xb, noise=noise)
        K = net.nngp(np.vstack([x, xb]))
        Kw = K[:9, :9] - 0.4

        def S(v, noise=noise, Kw=Kw):
            A = noise * np.eye(9) + 0.4 + np.exp(v) * Kw
            sign, logdet = np.linalg.slogdet(A)
            return 7 * (np.exp(v) - v) + logdet + y @ np.linalg.solve(A, y)

        v = minimize_scalar(S, bounds=(-5, 5), method="bounded", options={"xatol": 1e-12}).x
        np.testing.assert_allclose(r.q, np.exp(v), rtol=1e-7)
        KR = 0.4 + r.q * (K - 0.4)
        mean = KR[9:, :9] @ np.linalg.solve(KR[:9, :9] + noise * np.eye(9), y)
        np.testing.assert_allclose(r.mean[:, 0], mean, atol=1e-9)
        np.testing.assert_allclose(r.K_R, KR, atol=1e-12)


def test_alpha_to_zero_is_the_nngp_posterior():
    rng = np.random.default_rng(7)
    x, xb = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    y = np.tanh(x[:, 0])
    net = nnft.MLP("tanh", depth=3, width=10 ** 7, C_W=1.5, C_b=0.1)
    r = renormalised_posterior(net, x, y, xb, noise=0.1)
    gp = nnft.posterior(net, x, y, xb, noise=0.1)
    assert abs(r.q - 1) < 1e-5
    np.testing.assert_allclose(r.mean, gp.mean, atol=1e-5)
    np.testing.assert_allclose(r.cov, gp.cov, atol=1e-5)
    assert r.order_parameters["Q_1"].alpha == pytest.approx(6e-7)


# ------------------------------------------------------------------ the exact deep-linear oracle


@pytest.mark.parametrize("hidden", [1, 2])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_saddle_is_exact_up_to_one_over_n_for_deep_linear_networks(alpha, hidden):
    """Fixed α, n = 10 … 160: (q* − E[q|y]) n and the mean's error × n stay flat, while the NNGP's q = 1 is off by O(1).

    Measured (``pytest tests/test_proportional.py -k linear_networks -s``): |q* − E[q|y]| · n = 0.11 … 0.24 and
    max |Δmean| · n = 0.13 … 0.52 over the whole grid; |1 − E[q|y]| = 0.05 … 0.2 does not fall, and at n = 160
    the NNGP mean is 8–25× further from the exact one than the saddle point's.
    """
    widths = (10, 20, 40, 80, 160)
    eq, em, ev, e_gp, q_off = [], [], [], [], []
    for n in widths:
        P = int(alpha * n)
        x, y, xb = smooth_design(P)
        net = nnft.MLP("linear", depth=hidden + 1, width=n, C_W=1.0, C_b=0.0)
        r = renormalised_posterior(net, x, y, xb, noise=NOISE)
        nodes = 120 if hidden == 1 else 60
        m, c, _ = one_output(x, y, xb, C_W=1.0, widths=[n] * hidden, noise=NOISE, nodes=nodes)
        mq, _ = scale_posterior(x, y, C_W=1.0, widths=[n] * hidden, noise=NOISE, nodes=nodes)
        gp = nnft.posterior(net, x, y, xb, noise=NOISE)
        eq.append(abs(r.q - mq) * n)
        em.append(np.abs(r.mean[:, 0] - m).max() * n)
        ev.append(np.abs(np.diag(r.cov[0, :, 0, :]) - np.diag(c)).max() * n)
        e_gp.append(np.abs(gp.mean[:, 0] - m).max())
        q_off.append(abs(1.0 - mq))
    print(f"alpha={alpha} L_h={hidden}: dq*n {np.round(eq, 3)}, dmean*n {np.round(em, 3)}, dvar*n {np.round(ev, 3)}, "
          f"NNGP dmean {np.round(e_gp, 3)}, |1 - E q| {np.round(q_off, 3)}")
    assert max(eq) / min(eq) < 2.5 and max(eq) < 0.4
    assert max(em) / min(em) < 2.5 and max(em) < 0.8
    assert max(ev) < 0.3
    assert q_off[-1] > 0.03 and q_off[-1] > 0.5 * max(q_off)  # the NNGP's q = 1 stays off by O(1)
    assert e_gp[-1] > 5 * em[-1] / widths[-1]  # at n = 160 the theory is > 5× closer than the NNGP


def test_oracle_quadrature_is_converged():
    x, y, xb = smooth_design(80)
    a = scale_posterior(x, y, C_W=1.0, widths=[40, 40], noise=NOISE, nodes=60)
    b = scale_posterior(x, y, C_W=1.0, widths=[40, 40], noise=NOISE, nodes=120, span=20.0)
    np.testing.assert_allclose(a, b, rtol=1e-9)


# ----------------------------------------------------------------------- non-odd σ: (Q̄, Q)


def _dense_pair(Kw, Mw, B, y, n):
    """The non-odd action and its saddle equations written with dense matrices (THEORY §4.2), no pencil."""
    def S(Qb, Q):
        G = B + Qb * (Kw - Mw) + Mw / (1 + Q)
        return n * (-Qb * Q + np.log(1 + Q)) + np.linalg.slogdet(G)[1] + y @ np.linalg.solve(G, y)

    def equations(Qb, Q):
        G = B + Qb * (Kw - Mw) + Mw / (1 + Q)
        Gi = np.linalg.inv(G)
        gy = Gi @ y
        Q_rhs = (np.trace(Gi @ (Kw - Mw)) - gy @ (Kw - Mw) @ gy) / n
        Qb_rhs = 1 / (1 + Q) - (np.trace(Gi @ Mw) - gy @ Mw @ gy) / (n * (1 + Q) ** 2)
        return Q_rhs, Qb_rhs

    return S, equations


@pytest.fixture
def relu_problem():
    rng = np.random.default_rng(12)
    x, xb = rng.normal(size=(30, 4)), rng.normal(size=(3, 4))
    y = np.abs(x[:, 0]) + 0.3 * rng.normal(size=30)
    net = nnft.MLP("relu", depth=2, width=25, C_W=2.0, C_b=0.1)
    return net, x, y, xb


def test_nonodd_forms_agree_and_the_saddle_solves_the_dense_equations(relu_problem):
    from nnft.proportional.posterior import PairProblem, _pencil, activation_mean

    net, x, y, xb = relu_problem
    noise = 0.05
    ks = net.kernels(x, ntk=False, layers="all")
    K1, K2 = np.asarray(ks.K)[0], np.asarray(ks.K)[1]
    mu = np.sqrt(np.diag(K1) / (2 * np.pi))  # ⟨relu(z)⟩ = sqrt(K/2π)
    np.testing.assert_allclose(activation_mean(net.activation, np.diag(K1)), mu, rtol=1e-13)
    mu_w = np.sqrt(2.0) * mu  # K_w = C_W ⟨σσ⟩ ⇒ its mean part is C_W μμᵀ
    Kw, Mw = K2 - 0.1, np.outer(mu_w, mu_w)
    B = noise * np.eye(30) + 0.1
    S_dense, equations = _dense_pair(Kw, Mw, B, y, 25)
    pp = PairProblem(_pencil(Kw, 0.1, noise), y, mu_w, 25)
    for Qb, Q in [(0.5, 0.3), (1.2, -0.4), (0.9, 2.0)]:  # the Sherman–Morrison mode form = the dense form
        np.testing.assert_allclose(pp.S(Qb, Q), S_dense(Qb, Q), rtol=1e-12, atol=1e-12)
        h = 1e-6  # the sympy gradient against a central difference of the dense form
        fd = [(S_dense(Qb + h, Q) - S_dense(Qb - h, Q)) / (2 * h), (S_dense(Qb, Q + h) - S_dense(Qb, Q - h)) / (2 * h)]
        np.testing.assert_allclose(pp.grad(Qb, Q), fd, rtol=1e-6, atol=1e-6)
    r = renormalised_posterior(net, x, y, xb, noise=noise)
    Qb, Q = r.order_parameters["Qbar"].value, r.order_parameters["Q"].value
    Q_rhs, Qb_rhs = equations(Qb, Q)
    np.testing.assert_allclose([Q, Qb], [Q_rhs, Qb_rhs], rtol=1e-9)
    assert abs(Q - (1 / Qb - 1)) > 0.02  # the mean-vector term matters here
    Kall = net.nngp(np.vstack([x, xb]))
    mu_all = np.sqrt(2.0) * np.sqrt(np.diag(np.asarray(net.kernels(np.vstack([x, xb]), ntk=False, layers="all").K)[0])
                           / (2 * np.pi))
    M_all = np.outer(mu_all, mu_all)
    KR = 0.1 + Qb * (Kall - 0.1 - M_all) + M_all / (1 + Q)
    np.testing.assert_allclose(r.K_R, KR, atol=1e-12)
    assert r.saddle.converged and "M" in r.latex()


def test_nonodd_theory_with_zero_mean_is_the_odd_theory(relu_problem):
    from nnft.proportional.posterior import PairProblem, _pencil
    from nnft.proportional.saddle import solve_pair

    net, x, y, xb = relu_problem
    Kw = net.nngp(x) - 0.1
    pp = PairProblem(_pencil(Kw, 0.1, 0.05), y, np.zeros(30), 25)
    sad = solve_pair(25, pp.grad, pp.S, (0.7, 0.2))
    B = 0.05 * np.eye(30) + 0.1

    def S_odd(v):  # the odd action on the same kernel, S(Q) = n(Q − ln Q) + D(Q), dense
        A = B + np.exp(v) * Kw
        return 25 * (np.exp(v) - v) + np.linalg.slogdet(A)[1] + y @ np.linalg.solve(A, y)

    v = minimize_scalar(S_odd, bounds=(-5, 5), method="bounded", options={"xatol": 1e-12}).x
    np.testing.assert_allclose(sad.Qbar, np.exp(v), rtol=1e-7)
    np.testing.assert_allclose(sad.Q, 1 / sad.Qbar - 1, rtol=1e-9)


# ----------------------------------------------------------------------- several outputs: Q is m × m


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_matrix_order_parameter_is_the_wishart_saddle(alpha):
    """Two outputs, one hidden layer, linear: against the exact Wishart mixture (THEORY §2), error × n flat.

    Measured (``-s``): max |Δmean| · n = 0.21–0.49, |Δcov| · n = 0.04–0.13 and the cross-output covariance's
    error × n = 0.02–0.08 over n = 10 … 80, while the cross-output covariance itself is 0.004–0.02 (the
    infinite-width posterior has none).
    """
    em, ec, ex, cross = [], [], [], []
    for n in (10, 20, 40, 80):
        P = int(alpha * n)
        x, y, xb = smooth_design(P, outputs=2)
        net = nnft.MLP("linear", depth=2, width=n, n_out=2)
        r = renormalised_posterior(net, x, y, xb, noise=NOISE)
        m, c, _ = two_outputs(x, y, xb, C_W=1.0, n=n, noise=NOISE)
        em.append(np.abs(r.mean - m).max() * n)
        ec.append(np.abs(r.cov - c).max() * n)
        ex.append(np.abs(r.cov[0, :, 1, :] - c[0, :, 1, :]).max() * n)
        cross.append(np.abs(c[0, :, 1, :]).max())
        Q = r.order_parameters["Q"].value
        assert Q.shape == (2, 2) and abs(Q[0, 1]) > 0.01 and r.saddle.converged
    print(f"alpha={alpha}: dmean*n {np.round(em, 3)}, dcov*n {np.round(ec, 3)}, dcross*n {np.round(ex, 3)}, "
          f"cross {np.round(cross, 4)}")
    assert max(em) / min(em) < 2.5 and max(em) < 0.8
    assert max(ec) < 0.2 and max(ex) < 0.1
    assert ex[-1] / 80 < 0.2 * cross[-1]  # the cross-output covariance is predicted, not just bounded


def test_matrix_gradient_and_isotropic_limit():
    from nnft.proportional.posterior import MatrixProblem, _pencil

    rng = np.random.default_rng(13)
    x = rng.normal(size=(12, 5))
    Y = rng.normal(size=(12, 3))
    Kw = linear_kernel(x, 1.2, 2)
    B = 0.2 * np.eye(12) + 0.3
    mp = MatrixProblem(_pencil(Kw, 0.3, 0.2), Y, 9)

    def S_dense(Q):
        C = np.kron(np.eye(3), B) + np.kron(Q, Kw)
        v = Y.T.ravel()  # vec(Y), output-major
        return 9 * (np.trace(Q) - np.linalg.slogdet(Q)[1]) + np.linalg.slogdet(C)[1] + v @ np.linalg.solve(C, v)

    A = rng.normal(size=(3, 3))
    Q = A @ A.T + np.eye(3)
    np.testing.assert_allclose(mp.S(Q), S_dense(Q), rtol=1e-12)
    S_derived, G_derived = mp.derived(Q)  # sympy's per-mode derivation against the eigenbasis closed form
    np.testing.assert_allclose(S_derived + 3 * mp.pencil.logdet0, S_dense(Q), rtol=1e-12)
    np.testing.assert_allclose(G_derived, mp.grad_closed_form(Q), rtol=1e-10, atol=1e-10)
    h, fd = 1e-6, np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            E = np.zeros((3, 3))
            E[i, j] = E[j, i] = h
            fd[i, j] = (S_dense(Q + E) - S_dense(Q - E)) / (2 * h) / (1 if i == j else 2)
    np.testing.assert_allclose(mp.grad(Q), fd, rtol=1e-6, atol=1e-6)
    # one output copied twice is isotropic: Q = q I with q the scalar saddle of the doubled data
    y = rng.normal(size=12)
    xb = rng.normal(size=(2, 5))
    r2 = renormalised_posterior(nnft.MLP("linear", depth=2, width=9, n_out=2), x, np.stack([y, y], 1), xb,
                                noise=0.2)
    Q2 = r2.order_parameters["Q"].value
    r1 = renormalised_posterior(nnft.MLP("linear", depth=2, width=9, n_out=2), x, np.stack([y, -y], 1), xb,
                                noise=0.2)
    np.testing.assert_allclose(Q2[0, 0], Q2[1, 1], rtol=1e-10)
    # the blocks decouple in Q's eigenbasis: along (1, 1)/√2 the target is √2 y, along (1, −1)/√2 it is 0
    one = renormalised_posterior(nnft.MLP("linear", depth=2, width=9), x, np.sqrt(2) * y, xb, noise=0.2)
    zero = renormalised_posterior(nnft.MLP("linear", depth=2, width=9), x, 0 * y, xb, noise=0.2)
    np.testing.assert_allclose(np.linalg.eigvalsh(Q2), sorted([one.q, zero.q]), rtol=1e-9)
    np.testing.assert_allclose(np.diag(r1.order_parameters["Q"].value), np.diag(Q2), rtol=1e-9)
    np.testing.assert_allclose(r1.order_parameters["Q"].value[0, 1], -Q2[0, 1], rtol=1e-9)


# ----------------------------------------------------------------------------- results and errors


def test_result_object():
    rng = np.random.default_rng(8)
    x, xb = rng.normal(size=(20, 3)), rng.normal(size=(4, 3))
    y = np.sin(x[:, 0])
    net = nnft.MLP("erf", depth=3, width=[15, 30], C_W=1.5, C_b=0.1)
    r = nnft.proportional.renormalised_posterior(net, x, y, xb, noise=0.05)
    assert r.mean.shape == (4, 1) and r.cov.shape == (1, 4, 1, 4) and r.std.shape == (4, 1)
    ops = r.order_parameters
    assert set(ops) == {"Q_1", "Q_2", "q"}
    # n_ℓ (Q_ℓ − 1) is one constant c for both layers, and q their product
    np.testing.assert_allclose(15 * (ops["Q_1"].value - 1), 30 * (ops["Q_2"].value - 1), rtol=1e-10)
    np.testing.assert_allclose(ops["q"].value, ops["Q_1"].value * ops["Q_2"].value, rtol=1e-14)
    assert ops["Q_1"].alpha == pytest.approx(20 / 15) and ops["Q_2"].alpha == pytest.approx(20 / 30)
    yt = np.sin(xb[:, 0])
    g = r.generalisation_error(yt)
    np.testing.assert_allclose(g.bias2, np.mean((r.mean[:, 0] - yt) ** 2))
    np.testing.assert_allclose(g.variance, np.mean(np.diag(r.cov[0, :, 0, :])))
    assert g.total == pytest.approx(g.bias2 + g.variance)
    assert "K_R" in r.latex() and "Q_1" in repr(r)
    with pytest.raises(InputError, match="shape"):
        r.generalisation_error(yt[:2])


def test_bad_input():
    rng = np.random.default_rng(9)
    x, xb = rng.normal(size=(8, 3)), rng.normal(size=(2, 3))
    y = rng.normal(size=8)
    with pytest.raises(InputError, match="not odd"):
        renormalised_posterior(nnft.MLP("relu", depth=3, width=8), x, y, xb, noise=0.1)
    with pytest.raises(InputError, match="outputs"):
        renormalised_posterior(nnft.MLP("tanh", depth=3, width=8, n_out=2), x, rng.normal(size=(8, 2)), xb,
                               noise=0.1)
    with pytest.raises(InputError, match="outputs"):
        renormalised_posterior(nnft.MLP("relu", depth=2, width=8, n_out=2), x, rng.normal(size=(8, 2)), xb,
                               noise=0.1)
    with pytest.raises(InputError, match="hidden layer"):
        renormalised_posterior(nnft.MLP("tanh", depth=1), x, y, xb, noise=0.1)
    with pytest.raises(InputError, match="noise > 0"):  # linear, P = 8 > n_0 = 3, no noise: singular
        renormalised_posterior(nnft.MLP("linear", depth=2, width=8), x, y, xb, noise=0.0)
    with pytest.raises(InputError, match="noise"):
        renormalised_posterior(nnft.MLP("tanh", depth=2, width=8), x, y, xb, noise=-1.0)
    bad = y.copy()
    bad[0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        renormalised_posterior(nnft.MLP("tanh", depth=2, width=8), x, bad, xb, noise=0.1)
    with pytest.raises(ConvergenceError, match="too large"):
        renormalised_posterior(nnft.MLP("tanh", depth=2, width=8), x, 1e40 * y, xb, noise=1e-3)


# --------------------------------------------------- nonlinear networks against the Monte Carlo posterior


def _teacher_task(n: int, alpha: float, seed: int = 0):
    """P = αn inputs in n_0 = P dimensions, a tanh teacher with noise 0.1; 20 test points."""
    rng = np.random.default_rng(seed)
    P = int(alpha * n)
    x, w = rng.normal(size=(P, P)), rng.normal(size=P)
    y = np.tanh(x @ w / np.sqrt(P)) + 0.1 * rng.normal(size=P)
    xb = rng.normal(size=(20, P))
    return x, y, xb, np.tanh(xb @ w / np.sqrt(P))


def _test_error(mean, std, yb):
    return float(np.mean((mean[:, 0] - yb) ** 2) + np.mean(std[:, 0] ** 2))


@pytest.mark.slow
@pytest.mark.parametrize("act,C_W", [("erf", 1.0), ("relu", 2.0)])
def test_nonlinear_test_error_is_closer_to_the_finite_network_posterior_than_the_nngp(act, C_W):
    """One hidden layer, P = n/2, n ∈ {32, 64, 128}, σ_ε² = 0.05: ε_g of the renormalised theory vs Monte Carlo.

    Measured with 1e5 networks (the test runs 5e4; ``-s`` prints its own numbers): erf: theory − MC = +0.0006,
    +0.0038, +0.0016 against NNGP − MC = +0.0016, +0.0105, +0.0148 (MC ± 0.0006 … 0.0014);
    relu: theory − MC = −0.010, −0.010, −0.001 against NNGP − MC = +0.216, +0.239, +0.243
    (the NNGP misses the mean-vector renormalisation).
    """
    for n in (32, 64, 128):
        x, y, xb, yb = _teacher_task(n, 0.5)
        net = nnft.MLP(act, depth=2, width=n, C_W=C_W, C_b=0.0)
        mc = nnft.montecarlo.posterior(net, x, y, xb, noise=0.05, samples=50_000, seed=1)
        theory = renormalised_posterior(net, x, y, xb, noise=0.05)
        gp = nnft.posterior(net, x, y, xb, noise=0.05)
        d = mc.mean[:, 0] - yb
        se = (np.sqrt(np.sum((2 * d * mc.mean_stderr[:, 0]) ** 2))
              + np.sqrt(np.sum(np.diag(mc.cov_stderr[0, :, 0, :]) ** 2))) / len(yb)
        e_mc = _test_error(mc.mean, mc.std, yb)
        gap_theory = _test_error(theory.mean, theory.std, yb) - e_mc
        gap_gp = _test_error(gp.mean, gp.std, yb) - e_mc
        print(f"{act} n={n}: ESS {mc.ess:.0f}, MC {e_mc:.5f} ± {se:.5f}, theory − MC {gap_theory:+.5f}, "
              f"NNGP − MC {gap_gp:+.5f}")
        assert mc.ess > 300
        assert abs(gap_theory) < abs(gap_gp), (act, n)
        if n >= 64:
            assert abs(gap_gp) > 3 * se and abs(gap_theory) < 0.5 * abs(gap_gp), (act, n)


# ------------------------------------------------------------ the predictive as a scale mixture; Student-t


@pytest.mark.parametrize("noise", [0.3, 0.0])
def test_scale_mixture_predictive_is_the_exact_linear_posterior(noise):
    """Integrating Q instead of fixing it: for a linear network this is the exact posterior (the oracle)."""
    rng = np.random.default_rng(2)
    P, n0, n = 12, 20, 8
    x, xb = rng.normal(size=(P, n0)), rng.normal(size=(2, n0))
    y = rng.normal(size=P)
    r = renormalised_posterior(nnft.MLP("linear", depth=2, width=n), x, y, xb, noise=noise)
    m, c, _ = one_output(x, y, xb, C_W=1.0, widths=[n], noise=noise)
    mq, _ = scale_posterior(x, y, C_W=1.0, widths=[n], noise=noise)
    for b in range(2):
        mix = r.predictive(b)
        np.testing.assert_allclose(mix.mean, m[b], rtol=1e-10)
        np.testing.assert_allclose(mix.var, c[b, b], rtol=1e-10)
        np.testing.assert_allclose(mix.Q_mean, mq, rtol=1e-10)
        assert abs(mix.var - r.std[b, 0] ** 2) > 1e-3  # the saddle point alone misses the O(1/n) part
    assert (r.predictive(0).closed_form is None) == (noise > 0)


def test_predictive_grid_widens_where_the_scale_is_broad():
    """α = 1, tiny targets, noise 0: the posterior of ln Q is much wider than the prior's spread suggests."""
    rng = np.random.default_rng(2)
    P = n = 12
    x, xb = rng.normal(size=(P, 20)), rng.normal(size=(1, 20))
    y = 1e-4 * rng.normal(size=P)
    mix = renormalised_posterior(nnft.MLP("linear", depth=2, width=n), x, y, xb, noise=0.0).predictive(0)
    _, c, _ = one_output(x, y, xb, C_W=1.0, widths=[n], noise=0.0, nodes=400, span=60.0)
    np.testing.assert_allclose(mix.var, c[0, 0], rtol=1e-6)
    np.testing.assert_allclose(mix.closed_form.var, c[0, 0], rtol=1e-6)


def test_zero_noise_predictive_is_generalised_hyperbolic_not_student_t():
    from scipy.integrate import quad
    from scipy.stats import t as student_t

    from nnft.proportional.mixture import GeneralisedHyperbolic

    rng = np.random.default_rng(2)
    P, n0, n = 12, 20, 8
    x, xb = rng.normal(size=(P, n0)), rng.normal(size=(1, n0))
    y = rng.normal(size=P)
    mix = renormalised_posterior(nnft.MLP("linear", depth=2, width=n), x, y, xb, noise=0.0).predictive(0)
    gh = mix.closed_form
    assert gh.lam == pytest.approx((n - P) / 2)
    z = mix.mean + np.linspace(-4, 4, 9) * np.sqrt(mix.var)
    np.testing.assert_allclose(gh.pdf(z), mix.pdf(z), rtol=1e-10)
    np.testing.assert_allclose(gh.var, mix.var, rtol=1e-10)
    assert quad(gh.pdf, -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-9)
    # not a Student-t: with the same variance, ν = P − n, its tails are lighter (exponential against power law)
    nu = P - n
    t_scale = np.sqrt(mix.var * (nu - 2) / nu)
    far = mix.mean + 10 * np.sqrt(mix.var)
    assert gh.pdf(far) < 0.1 * student_t.pdf(far, nu, loc=mix.mean, scale=t_scale)
    # … a Student-t only in the ψ → 0 limit (inverse-Gamma mixing), with ν = −2λ and scale² = χ/ν
    lim = GeneralisedHyperbolic(lam=gh.lam, chi=gh.chi, psi=1e-12, loc=gh.loc)
    zz = gh.loc + np.linspace(-5, 5, 11)
    np.testing.assert_allclose(lim.pdf(zz), student_t.pdf(zz, nu, loc=gh.loc, scale=np.sqrt(gh.chi / nu)), rtol=1e-5)
    with pytest.raises(InputError, match="coincides"):
        renormalised_posterior(nnft.MLP("linear", depth=2, width=n), x, y, x[:1], noise=0.0).predictive(0)
    with pytest.raises(InputError, match="one hidden layer"):
        renormalised_posterior(nnft.MLP("linear", depth=3, width=n), x, y, xb, noise=0.1).predictive(0)
    with pytest.raises(InputError, match="test-point index"):
        renormalised_posterior(nnft.MLP("linear", depth=2, width=n), x, y, xb, noise=0.1).predictive(3)
