"""Kinked arc-cosine kernels for nearly parallel inputs (issue 12, item 4): Θ exact to eps, PSD, Cholesky works.

K_αβ fixes the angle θ = arccos(K_αβ/√(K_αα K_ββ)) only to √eps near c = ±1, and the degree-0 kernel
``(π − θ)/(2π)`` of σ′ (relu, leaky relu, |z|) depends on θ with slope 1, so Θ was wrong in its 9th digit for
inputs 1e-9 apart and had negative eigenvalues. The driver now carries θ for such pairs
(:mod:`nnft.numeric.angles`). The reference is an independent 50-digit recursion of the Cho & Saul closed
forms, themselves checked here against a 30-digit one-dimensional quadrature.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import nnft
from nnft import runtime as rt
from nnft import runtime_numba as rtn

# σ(z) = c₊ z (z > 0), c₋ (−z) (z < 0)
FAMILY = {"relu": (1.0, 0.0), "abs": (1.0, 1.0), "leaky_relu(0.1)": (1.0, -0.1), "Max(z, 0)": (1.0, 0.0)}


def _J(n: int, t):
    return mp.pi - t if n == 0 else mp.sin(t) + (mp.pi - t) * mp.cos(t)


def _pair(n, same, cross, kaa, kab, kbb):
    """⟨f(z_a) g(z_b)⟩ of degree-n piecewise monomials (Cho & Saul 2009), in mpmath."""
    g = mp.sqrt(kaa * kbb)
    t = mp.acos(max(-1, min(1, kab / g)))
    return g**n / (2 * mp.pi) * (same * _J(n, t) + cross * _J(n, mp.pi - t))


def reference(x, depth, cp, cm, C_b=0.0, C_W=1.0, ntk=True, degree=1):
    """Output-layer (K, Θ) in 50-digit arithmetic from the exact float inputs; Θ is None for ``ntk=False``."""
    with mp.workdps(50):
        cp, cm = mp.mpf(str(cp)), mp.mpf(str(cm))
        X = [[mp.mpf(float(v)) for v in row] for row in x]
        P, n0 = len(X), len(X[0])
        cb, cw = mp.mpf(C_b), mp.mpf(C_W)
        G = [[mp.fsum(X[a][i] * X[b][i] for i in range(n0)) / n0 for b in range(P)] for a in range(P)]
        K = [[cb + cw * G[a][b] for b in range(P)] for a in range(P)]
        T = [row[:] for row in K]
        same, cross = cp * cp + cm * cm, 2 * cp * cm
        for _ in range(depth - 1):
            E = [[_pair(degree, same, cross, K[a][a], K[a][b], K[b][b]) for b in range(P)] for a in range(P)]
            if ntk:  # σ′ = c₊ (z > 0), −c₋ (z < 0): degree 0 with cross term −2c₊c₋
                D = [[_pair(0, same, -cross, K[a][a], K[a][b], K[b][b]) for b in range(P)] for a in range(P)]
                T = [[cb + cw * E[a][b] + cw * D[a][b] * T[a][b] for b in range(P)] for a in range(P)]
            K = [[cb + cw * E[a][b] for b in range(P)] for a in range(P)]
        Km = np.array([[float(v) for v in row] for row in K])
        if not ntk:
            return Km, None, None
        return Km, np.array([[float(v) for v in row] for row in T]), mp.matrix(T)


def _quad_pair(cp, cm, deriv, kaa, kab, kbb):
    """⟨σ(z_a)σ(z_b)⟩ (or ⟨σ′σ′⟩) by conditioning on z_a and a 1-D 20-digit quadrature: independent of J_n."""
    with mp.workdps(20):
        kaa, kab, kbb = mp.mpf(kaa), mp.mpf(kab), mp.mpf(kbb)
        s = mp.sqrt(kbb - kab**2 / kaa)

        def f(y):
            return (cp if y > 0 else -cm) if deriv else (cp * y if y > 0 else -cm * y)

        def cond(m):  # E[σ(m + s v)] over v ~ N(0, 1)
            r = m / s
            if deriv:
                return cp * mp.ncdf(r) - cm * mp.ncdf(-r)
            phi = mp.npdf(r)
            return cp * (m * mp.ncdf(r) + s * phi) + cm * (-m * mp.ncdf(-r) + s * phi)

        def integrand(u):
            za = mp.sqrt(kaa) * u
            return f(za) * cond(kab / kaa * za) * mp.npdf(u)

        return mp.quad(integrand, [-mp.inf, 0, mp.inf])


@pytest.mark.parametrize("cp, cm", [(1.0, 0.0), (1.0, 1.0), (1.0, -0.1)])
def test_reference_closed_forms_match_quadrature(cp, cm):
    """The reference's arc-cosine forms agree with an independent quadrature, also at c = 1 − 1e-12."""
    with mp.workdps(20):
        cp, cm = mp.mpf(str(cp)), mp.mpf(str(cm))
        same, cross = cp * cp + cm * cm, 2 * cp * cm
        for kaa, kbb, c in ((1.3, 0.7, mp.mpf("0.3")), (1.0, 2.0, mp.mpf("-0.8")), (1.0, 1.0, 1 - mp.mpf("1e-12"))):
            kab = c * mp.sqrt(mp.mpf(kaa) * kbb)
            e1 = _pair(1, same, cross, mp.mpf(kaa), kab, mp.mpf(kbb))
            e0 = _pair(0, same, -cross, mp.mpf(kaa), kab, mp.mpf(kbb))
            assert abs(e1 / _quad_pair(cp, cm, False, kaa, kab, kbb) - 1) < 1e-17
            assert abs(e0 / _quad_pair(cp, cm, True, kaa, kab, kbb) - 1) < 1e-17


def _issue_inputs(n0: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n0), rng.standard_normal(n0)
    e0 = np.eye(n0)[0]
    return np.array([a, a + 1e-9 * e0, a + 2e-9 * e0, b])


def _rel(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.max(np.abs(A - B)) / np.max(np.abs(B)))


@pytest.mark.parametrize("act, backend", [(a, "numpy") for a in FAMILY] + [("relu", "numba")])
def test_issue_case_depth_4_is_exact_and_positive_definite(act, backend):
    """a, a + 1e-9 e₀, a + 2e-9 e₀, b at depth 4: Θ to 1e-13, all eigenvalues of the exact sign, Cholesky works.

    Before the fix Θ was 2e-9 off and its smallest eigenvalue −5.5e-10 (relative) against an exact +4.8e-11.
    """
    x = _issue_inputs()
    cp, cm = FAMILY[act]
    res = nnft.MLP(act, depth=4).kernels(x, layers="last", backend=backend)
    K, T = res.nngp, res.ntk
    Kx, Tx, Tm = reference(x, 4, cp, cm)
    assert _rel(K, Kx) < 1e-14
    assert _rel(T, Tx) < 1e-13
    exact = sorted(float(e) for e in mp.eigsy(Tm, eigvals_only=True))
    got = np.linalg.eigvalsh(T)
    assert min(exact) > 0 and np.all(got > 0)
    # the two small eigenvalues (~1e-11 relative) to the accuracy an eps-accurate matrix allows
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-14 * max(exact))
    np.linalg.cholesky(T)


SEPARATIONS = [10.0**-k for k in range(3, 16)]


@pytest.mark.parametrize("act", ["relu", "leaky_relu(0.1)", "abs"])
@pytest.mark.parametrize("C_b", [0.0, 0.2])
def test_sweep_of_separations(act, C_b):
    """Pairs a, a ± δ e₀ (parallel) and a, −a + δ e₀ (antiparallel), δ = 1e-3 … 1e-15: Θ to 1e-13 at depth 4.

    Its eigenvalues to 1e-14 of the largest, and Cholesky works wherever the exact smallest eigenvalue is above
    1e-13 of the largest (before the fix the eigenvalues were off by ~1e-9 and Cholesky failed from δ ≈ 1e-7).
    """
    cp, cm = FAMILY[act]
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(6), rng.standard_normal(6)
    e0 = np.eye(6)[0]
    worst = 0.0
    for d in SEPARATIONS:
        x = np.array([a, a + d * e0, -a + d * e0, b, 1.5 * a - d * e0])
        res = nnft.MLP(act, depth=4, C_b=C_b, C_W=1.5).kernels(x, layers="last")
        Kx, Tx, Tm = reference(x, 4, cp, cm, C_b=C_b, C_W=1.5)
        assert _rel(res.nngp, Kx) < 1e-14, d
        err = float(np.max(np.abs(res.ntk - Tx) / np.abs(Tx)))  # entrywise: antiparallel entries are small
        worst = max(worst, err)
        assert err < 1e-13, (d, err)
        exact = np.array(sorted(float(e) for e in mp.eigsy(Tm, eigvals_only=True)))
        got = np.linalg.eigvalsh(res.ntk)
        np.testing.assert_allclose(got, exact, rtol=0, atol=1e-14 * exact[-1])
        if exact[0] > 1e-13 * exact[-1]:  # smaller eigenvalues are below what any float64 matrix resolves
            assert np.all(got > 0), d
            np.linalg.cholesky(res.ntk)
    assert worst > 0  # the comparison is not vacuous


def test_pairs_that_become_parallel_with_depth():
    """Ordered phase (C_W = 1, C_b = 1): correlations go to 1 geometrically; Θ still agrees to 1e-13 at depth 12."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5))
    x[1] = x[0] + 0.05 * rng.standard_normal(5)
    res = nnft.MLP("relu", depth=12, C_b=1.0, C_W=1.0).kernels(x, layers="last")
    Kx, Tx, _ = reference(x, 12, 1.0, 0.0, C_b=1.0, C_W=1.0)
    assert _rel(res.nngp, Kx) < 1e-14
    assert float(np.max(np.abs(res.ntk - Tx) / np.abs(Tx))) < 1e-13


@pytest.mark.parametrize("act, cp, cm", [("step", 1.0, 0.0), ("sign", 1.0, -1.0)])
def test_step_and_sign_nngp_near_parallel(act, cp, cm):
    """The degree-0 NNGP (step, sign) carries the angle too: K to 1e-13 for inputs 1e-10 apart."""
    x = _issue_inputs()
    x[2] = x[0] + 1e-10 * np.eye(8)[1]
    K = nnft.MLP(act, depth=4, C_b=0.1).nngp(x)
    Kx, _, _ = reference(x, 4, cp, cm, C_b=0.1, ntk=False, degree=0)
    assert _rel(K, Kx) < 1e-13


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_exact_duplicates_and_opposites_stay_exact(backend):
    """x_b = x_a reproduces the diagonal bit for bit; x_b = −x_a matches 50 digits to 1e-14 (both unchanged paths)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    x[3] = x[1]
    x[4] = -x[2]
    x[5] = x[0] + 1e-9 * np.eye(4)[2]
    for act in ("relu", "abs") if backend == "numpy" else ("relu",):
        res = nnft.MLP(act, depth=5, C_W=2.0).kernels(x, backend=backend)
        for ell in range(5):
            K, T = res.K[ell], res.Theta[ell]
            assert K[1, 3] == K[1, 1] == K[3, 3] and T[1, 3] == T[1, 1] == T[3, 3]
        Kx, Tx, _ = reference(x, 5, *FAMILY[act], C_W=2.0)
        assert abs(res.ntk[2, 4] / Tx[2, 4] - 1) < 1e-14
        assert float(np.max(np.abs(res.ntk - Tx) / np.abs(Tx))) < 1e-13


def test_every_path_carries_the_angle():
    """layers='all', the lazy dask kernel, tiles smaller than P and nngp-only calls give the same accurate Θ."""
    x = _issue_inputs()
    net = nnft.MLP("relu", depth=4, C_b=0.1)
    _, Tx, _ = reference(x, 4, 1.0, 0.0, C_b=0.1)
    full = net.kernels(x, layers="all")
    assert _rel(full.ntk, Tx) < 1e-13
    assert _rel(net.ntk(x, chunks=2).compute(), Tx) < 1e-13
    from nnft.numeric.kernels import layer_kernels

    assert _rel(layer_kernels(net, x, tile=1).ntk, Tx) < 1e-13


def test_runtime_helpers_match_mpmath():
    """sin θ − θ cos θ, the degree-1 gap and the angle from a gap, numpy and numba, to a few ulp for θ ∈ (0, π]."""
    th = np.array([1e-30, 1e-12, 1e-9, 3e-5, 0.1, 0.4999, 0.5, 0.7, 1.5, np.pi / 2, 2.0, 3.0, np.pi - 1e-6])
    with mp.workdps(120):  # sin θ − θ cos θ ~ θ³/3 cancels 2 log10(1/θ) digits
        for t in th:
            T = mp.mpf(float(t))
            smt = mp.sin(T) - T * mp.cos(T)
            assert abs(rt.sin_minus_tcos(t) / smt - 1) < 4e-16
            assert abs(rtn.sin_minus_tcos_s(float(t)) / smt - 1) < 4e-16
            for same, cross in ((1.0, 0.0), (2.0, 2.0), (1.01, -0.2)):
                ex = same * (mp.pi - _J(1, T)) - cross * _J(1, mp.pi - T)
                # plus the rounding of π itself in φ = π − θ (float π is 1.2e-16 short), which matters near θ = π
                tol = 2e-15 * abs(ex) + (1e-15 * (abs(same) + abs(cross)) * (mp.pi - T) if T > mp.pi / 2 else 0)
                assert abs(rt.arc1_gap(t, same, cross) - ex) < tol
                assert abs(rtn.arc1_gap_s(float(t), same, cross) - ex) < tol
                ex = same * _J(1, T) + cross * _J(1, mp.pi - T)  # a signed sum for cross < 0: to eps of its terms
                scale = (abs(same) + abs(cross)) * _J(1, min(T, mp.pi - T))
                assert abs(rt.arc1(t, same, cross) - ex) < 4e-16 * scale
                assert abs(rtn.arc1_s(float(t), same, cross) - ex) < 4e-16 * scale
            den = mp.mpf(1.7)
            gap = 2 * den * mp.sin(T / 2) ** 2
            # relative eps up to π/2; above, θ = arccos(1 − u) is as good as the gap allows (eps/sin θ)
            tol = 4e-16 * T if T <= mp.pi / 2 else 4e-16 / mp.sin(T)
            for f in (rt.angle_from_gap, rtn.angle_from_gap_s):
                assert abs(f(float(gap), float(den)) - T) < tol
    assert rt.angle_from_gap(1.0, 0.0) == np.pi / 2 == rtn.angle_from_gap_s(1.0, 0.0)


def test_maps_outside_the_family_carry_no_angle():
    """Smooth activations and degree-2 pieces keep the one-function map; the kinked family gains offdiag_angle."""
    from nnft.recursions import one_layer_map

    for act in ("tanh", "erf", "linear", "monomial(2)", "Max(z, 0)**2"):
        assert not one_layer_map("ntk", nnft.activation(act)).carries_angle, act
    for act in ("relu", "abs", "leaky_relu(0.1)", "Max(z, 0)"):
        m = one_layer_map("ntk", nnft.activation(act))
        assert m.carries_angle and hasattr(m.compile("numpy"), "offdiag_angle"), act


def test_pairs_becoming_parallel_at_huge_scale():
    """A pair that becomes parallel only at layer 2, at K ≈ 1e300: the angle starts at θ ≈ 0, not π/2.

    Found by the property test: the new pair's correlation was formed with √(K_aa K_bb), which overflowed.
    With C_b^{(2)} = 1e300 the layer-2 kernel is 1e300 in every entry (c = 1), so the relu layer 3 is
    C_W K/2 = 5e299 everywhere (θ = 0).
    """
    net = nnft.MLP("relu", depth=3, C_b=[0.0, 1e300, 0.0], C_W=1.0)
    k = net.kernels(np.array([[0.0], [1.0]]))
    np.testing.assert_allclose(k.K[2], np.full((2, 2), 5e299), rtol=1e-14)


@pytest.mark.parametrize(
    ("x", "entry", "expected"),
    [
        # parallel inputs of very different norms (found by the property test: θ came out π/2)
        (np.array([[1.0, 1.0], [1e-150, 1e-150], [1.0, 1.0]]), (0, 1), 0.5e-150),
        (np.array([[0.0], [1e-9], [0.0], [4e63], [1e-98]]), (3, 4), 0.5 * 4e63 * 1e-98),
    ],
)
def test_parallel_inputs_of_very_different_norms(x, entry, expected):
    """relu, C_W = 1: parallel inputs keep θ = 0, so K^{(2)}_ab = K^{(1)}_ab / 2 whatever their norms."""
    k = nnft.MLP("relu", depth=2, C_W=1.0).kernels(x)
    assert k.K[1][entry] == pytest.approx(expected, rel=1e-14)
    assert k.Theta[1][entry] == pytest.approx(2 * expected, rel=1e-14)
