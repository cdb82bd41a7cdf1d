"""The NTK at order 1/n (Θ1, A, B, D, F): exact two-layer results, exact zeros, symbolic ↔ numeric, bad input.

Independent routes (none shares code with the engine's evaluator):
- two layers: the first-layer NTK is deterministic, so at L = 2 the statistics are exactly single-neuron
  averages under K^{(1)} (derived in docs/ntk_finite_width.md): ``A = Cov(h_ab, h_cd)``,
  ``B_abcd = C_W²Θ_acΘ_bd⟨σ'_aσ'_bσ'_cσ'_d⟩``, ``D = Cov(h_ab, C_Wσ_cσ_d)``, ``F_abcd = C_W²Θ_ac⟨σ'_aσ_bσ'_cσ_d⟩``,
  ``Θ1 = 0``, with ``h_ab = λ_Wσ_aσ_b + C_WΘ_abσ'_aσ'_b``; the averages are computed here by a 2-D Gauss–Hermite
  product rule (smooth σ) or exactly in polar coordinates with adaptive angular quadrature (relu);
- linear σ: ``E[Θ̂] = Θ`` at every depth; relu/leaky relu: ``Θ1_aa = 0`` on the diagonal (scale invariance);
- the symbolic pattern equations (``net.recursion("ntk_var")`` …) evaluated for one input against the stencils.
The Monte Carlo checks live in tests/test_ntk_finite_width_mc.py.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import sympy as sp
from scipy import integrate

import nnft
from nnft.errors import NTKUndefinedError
from nnft.finite_width import GaussianLayerWarning

X2 = np.array([[1.0, 0.3, -0.2], [0.2, -0.9, 0.5]])


def _funcs(name):
    from scipy.special import erf

    if name == "tanh":
        return np.tanh, lambda t: 1.0 / np.cosh(t) ** 2
    if name == "erf":
        return erf, lambda t: 2.0 / math.sqrt(math.pi) * np.exp(-t * t)
    if name == "gelu":
        from scipy.stats import norm

        return (lambda t: t * norm.cdf(t)), (lambda t: norm.cdf(t) + t * norm.pdf(t))
    if name == "relu":
        return (lambda t: np.maximum(t, 0.0)), (lambda t: (t > 0).astype(float))
    raise KeyError(name)


def _average(name, K, slots):
    """E[Π_s f_s(z_{i_s})] over z ~ N(0, K) (2 × 2): slots (sample, 0 = σ | 1 = σ')."""
    sig, dsig = _funcs(name)
    fs = (sig, dsig)
    Lc = np.linalg.cholesky(K)
    if name == "relu":  # homogeneous of degree k: E = E[r^k] · (1/2π)∮ f(L u(φ)) dφ
        k = sum(1 for _, kind in slots if kind == 0)
        radial = 2.0 ** (k / 2) * math.gamma(1 + k / 2)

        def ang(phi):
            u = Lc @ np.array([math.cos(phi), math.sin(phi)])
            return float(np.prod([fs[kind](np.array(u[i])) for i, kind in slots]))

        kinks = sorted({(math.atan2(-Lc[i, 0], Lc[i, 1]) + s * math.pi) % (2 * math.pi) for i in (0, 1)
                        for s in (0, 1)})
        val, _ = integrate.quad(ang, 0.0, 2 * math.pi, points=kinks, epsabs=1e-14, epsrel=1e-13, limit=200)
        return radial * val / (2 * math.pi)
    x, w = np.polynomial.hermite_e.hermegauss(160)
    w = w / w.sum()
    X, Y = np.meshgrid(x, x, indexing="ij")
    W = np.outer(w, w)
    z = (Lc[0, 0] * X, Lc[1, 0] * X + Lc[1, 1] * Y)
    f = np.ones_like(X)
    for i, kind in slots:
        f = f * fs[kind](z[i])
    return float(np.sum(W * f))


def _two_layer_reference(name, net, x):
    K1 = net.C_b[0] + net.C_W[0] * x @ x.T / x.shape[1]
    T1 = net.lambda_b[0] + net.lambda_W[0] * x @ x.T / x.shape[1]
    cw, lw = net.C_W[1], net.lambda_W[1]
    P = x.shape[0]
    A, B, D, F = (np.empty((P,) * 4) for _ in range(4))

    def m(*slots):
        return _average(name, K1, slots)

    for a, b, c, d in itertools.product(range(P), repeat=4):
        h_ab = {(0, 0): lw, (1, 1): cw * T1[a, b]}
        h_cd = {(0, 0): lw, (1, 1): cw * T1[c, d]}

        def cov(left, right, a=a, b=b, c=c, d=d):
            out = 0.0
            for (k1, k2), c1 in left.items():
                for (k3, k4), c2 in right.items():
                    out += c1 * c2 * (m((a, k1), (b, k2), (c, k3), (d, k4)) - m((a, k1), (b, k2)) * m((c, k3), (d, k4)))
            return out

        A[a, b, c, d] = cov(h_ab, h_cd)
        D[a, b, c, d] = cov(h_ab, {(0, 0): cw})
        B[a, b, c, d] = cw * cw * T1[a, c] * T1[b, d] * m((a, 1), (b, 1), (c, 1), (d, 1))
        F[a, b, c, d] = cw * cw * T1[a, c] * m((a, 1), (b, 0), (c, 1), (d, 0))
    return A, B, D, F


@pytest.mark.parametrize("name", ["tanh", "erf", "gelu", "relu"])
def test_two_layers_equal_single_neuron_averages(name):
    """L = 2: A, B, D, F equal their exact two-variable averages under K^{(1)} to 1e-10; Θ1 = 0."""
    net = nnft.MLP(name, depth=2, width=50, C_b=0.2, C_W=1.7, lambda_b=0.3, lambda_W=1.1)
    s = net.ntk_statistics(X2)
    ref = _two_layer_reference(name, net, X2)
    for got, want, label in zip((s.A, s.B, s.D, s.F), ref, "ABDF", strict=True):
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * scale, err_msg=label)
    assert np.max(np.abs(s.Theta1)) == 0.0


def test_depth_one_is_deterministic():
    net = nnft.MLP("tanh", depth=1, width=10)
    with pytest.warns(GaussianLayerWarning):
        s = net.ntk_statistics(X2)
    for arr in (s.Theta1, s.A, s.B, s.D, s.F):
        assert np.all(arr == 0.0)


def test_linear_mean_is_exact():
    """σ(z) = z: E[Θ̂] = Θ at any depth (Θ1 = 0), while the NTK fluctuates (A, B > 0)."""
    net = nnft.MLP("linear", depth=5, width=[7, 13, 5, 9], C_b=0.1, C_W=0.9, lambda_W=1.3)
    s = net.ntk_statistics(X2)
    assert np.max(np.abs(s.Theta1)) <= 1e-14 * np.max(s.Theta)
    assert s.A[0, 0, 0, 0] > 0 and s.B[0, 0, 0, 0] > 0


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_scale_invariant_diagonal_mean(name):
    """relu, leaky relu: no 1/n shift of the NTK diagonal mean (Θ1_aa = 0 at every layer), off-diagonal shifts."""
    net = nnft.MLP(name, depth=6, width=[20, 30, 25, 40, 50], C_b=0.0, C_W=2.0 if name == "relu" else 1.9)
    s = net.ntk_statistics(X2, layers="all")
    diag = np.diagonal(s.Theta1, axis1=1, axis2=2)
    assert np.max(np.abs(diag)) <= 1e-12 * np.max(s.Theta)
    assert np.all(np.abs(s.Theta1[2:, 0, 1]) > 1e-3 * np.abs(s.Theta[2:, 0, 1]))


def test_smooth_activation_diagonal_shifts():
    """tanh is not scale invariant: the diagonal mean does shift (a test of the previous one's specificity)."""
    s = nnft.MLP("tanh", depth=4, width=30).ntk_statistics(X2)
    assert np.min(np.abs(np.diag(s.Theta1))) > 1e-3


def _num(expr, subs):
    """Evaluate with one-variable Gaussian averages left by sympy done by adaptive quadrature (scipy)."""
    from nnft.functions import unsafe
    from nnft.gaussian import Expectation

    expr = expr.xreplace(subs)
    repl = {}
    for node in expr.atoms(Expectation):
        (v,), (var,) = node.variables, node.args[2]
        f = sp.lambdify(v, unsafe(node.integrand), modules=["scipy", "numpy"])
        sd = math.sqrt(float(var))
        def g(t, f=f, sd=sd):
            return f(sd * t) * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)

        val, _ = integrate.quad(g, -np.inf, np.inf, epsabs=1e-15, epsrel=1e-13, limit=200)
        repl[node] = val
    return float(sp.N(expr.xreplace(repl), 30))


@pytest.mark.parametrize("name", ["erf", "tanh"])
def test_symbolic_single_input_equations_match_stencils(name):
    """The explicit pattern equations at one input, iterated layer by layer, reproduce the numeric recursion."""
    from nnft.recursions.base import C_W, C_b, lambda_b, lambda_W
    from nnft.recursions.fluctuation import K1, K, V, n_ratio
    from nnft.recursions.ntk_fluctuation import A, B, D, F, Theta, Theta1

    widths = [11, 17, 13]
    cb, cw, lb, lw = 0.1, 1.3, 0.2, 0.8
    net = nnft.MLP(name, depth=4, width=widths, C_b=cb, C_W=cw, lambda_b=lb, lambda_W=lw)
    x = X2[:1]
    s = net.ntk_statistics(x, layers="all")
    rec = {nm: net.recursion(nm) for nm in ("ntk_var", "ntk_preact", "ntk_mean_correction")}
    vrec, krec = net.recursion("V"), net.recursion("K1")
    state = {"V": 0.0, "K1": 0.0, "A": 0.0, "B": 0.0, "D": 0.0, "F": 0.0, "Theta1": 0.0}
    for ell in range(1, 4):
        subs = {K(("a", "a")): s.K[ell - 1, 0, 0], Theta(("a", "a")): s.Theta[ell - 1, 0, 0],
                V(("a", "a"), ("a", "a")): state["V"], K1(("a", "a")): state["K1"],
                A(("a", "a"), ("a", "a")): state["A"], B("a", "a", "a", "a"): state["B"],
                D(("a", "a"), ("a", "a")): state["D"], F("a", "a", "a", "a"): state["F"],
                Theta1(("a", "a")): state["Theta1"], C_b: cb, C_W: cw, lambda_b: lb, lambda_W: lw,
                n_ratio: 1.0 if ell == 1 else widths[ell - 1] / widths[ell - 2]}
        state = {"V": _num(vrec["(aa)(aa)"], subs), "K1": _num(krec["aa"], subs),
                 "A": _num(rec["ntk_var"]["A:aaaa"], subs), "B": _num(rec["ntk_var"]["B:aaaa"], subs),
                 "D": _num(rec["ntk_preact"]["D:aaaa"], subs), "F": _num(rec["ntk_preact"]["F:aaaa"], subs),
                 "Theta1": _num(rec["ntk_mean_correction"]["Theta1:aa"], subs)}
        for key, val in state.items():
            got = getattr(s, key)[ell].reshape(-1)[0]
            assert got == pytest.approx(val, rel=1e-9, abs=1e-12), (key, ell)


def test_recursions_render():
    net = nnft.MLP("relu", depth=3, width=10)
    for name in ("ntk_var", "ntk_preact", "ntk_mean_correction"):
        r = net.recursion(name)
        tex = r.latex()
        assert tex.startswith("\\begin{aligned}") and "\\ell+1" in tex
        assert r._repr_latex_().startswith("$$")
    assert "A:aabb" in net.recursion("ntk_var").patterns
    assert "F:abcd" in net.recursion("ntk_preact").patterns


def test_duplicates_and_layers_all():
    x = np.vstack([X2, X2[:1]])
    net = nnft.MLP("erf", depth=3, width=12)
    s3 = net.ntk_statistics(x)
    s2 = net.ntk_statistics(X2)
    np.testing.assert_allclose(s3.A[:2, :2, :2, :2], s2.A, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(s3.F[2, 0, 1, 2], s2.F[0, 0, 1, 0], rtol=1e-13)
    sa = net.ntk_statistics(X2, layers="all")
    assert sa.A.shape == (3, 2, 2, 2, 2) and sa.Theta1.shape == (3, 2, 2)
    np.testing.assert_allclose(sa.B[-1], s2.B, rtol=1e-13)


def test_layout_and_mc_predictions():
    """The O(m) identities of the predictions, and ntk_offdiag in the estimator's layout (B_acbd/n)."""
    net = nnft.MLP("tanh", depth=3, width=16)
    s = net.ntk_statistics(X2)
    np.testing.assert_allclose(s.ntk_var, s.ntk_cov_cross + s.ntk_offdiag + np.transpose(s.ntk_offdiag, (0, 1, 3, 2)))
    assert s.ntk_offdiag[0, 1, 0, 1] == pytest.approx(s.B[0, 0, 1, 1] / 16)
    assert s.ntk_preact_offdiag[0, 1, 0, 1] == pytest.approx(s.F[0, 0, 1, 1] / 16)
    np.testing.assert_allclose(s.ntk_mean, s.Theta + s.Theta1 / 16)
    assert "NTKStatistics" in repr(s) and "<table>" in s._repr_html_()


def test_undefined_ntk_is_refused():
    net = nnft.MLP("step", depth=3, width=10)
    with pytest.raises(NTKUndefinedError, match="undefined"):
        net.ntk_statistics(X2)


def test_cumulants_carry_ntk_entries():
    net = nnft.MLP("erf", depth=3, width=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = net.cumulants(X2)
        np.testing.assert_allclose(c.ntk_mean, net.ntk_statistics(X2).ntk_mean)
        np.testing.assert_allclose(c.ntk.D, net.ntk_statistics(X2).D)
