"""Exact Gaussian moments of relu / piecewise-linear activations (nnft.numeric.orthant_moments) vs independent routes.

References share no code with the module: closed forms (k ≤ 2, Cho & Saul 2009 arc-cosine kernels, Isserlis),
polar-angle quadrature (k = 2), the cone integral over the simplex after doing the radial integral by hand
(k = 3 by scipy dblquad, k = 4 by a Duffy-mapped Gauss–Legendre product rule and, slow, by scipy nquad) and a
seeded Monte Carlo (k = 4).

Cone integral: with z = r w, r = Σ z_i, w on the simplex, dz = r^{k−1} dr dw and
``∫_0^∞ r^{n+k−1} e^{−r² q/2} dr = ½ Γ((n+k)/2) (2/q)^{(n+k)/2}``, ``q = wᵀ Σ⁻¹ w``, so
``E[Π z_i^{p_i}; z > 0] = (2π)^{−k/2} det(Σ)^{−1/2} ½ Γ((n+k)/2) 2^{(n+k)/2} ∫_simplex Π w_i^{p_i} q^{−(n+k)/2} dw``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from nnft.errors import InputError
from nnft.numeric.orthant_moments import piecewise_linear_moments, relu_moments

TOL = 1e-12  # relative to the scale Π Σ_ii^{p_i/2}
PI = math.pi


def scale(S, p):
    """The natural scale Π_i Σ_ii^{p_i/2} of a moment."""
    return float(np.prod(np.diag(S) ** (np.asarray(p) / 2.0)))


def rand_cov(rng, k, extra=3):
    """A random well-conditioned covariance (Wishart with k + extra degrees of freedom, random scales)."""
    A = rng.standard_normal((k, k + extra)) * rng.uniform(0.3, 3.0, size=(k, 1))
    return A @ A.T


def compositions(k, max_sum=4):
    """All k-tuples of positive integers with sum ≤ max_sum."""
    return [p for p in itertools.product(range(1, max_sum + 1), repeat=k) if sum(p) <= max_sum]


# --------------------------------------------------------------------------------------------- references
def relu_1d(s, n):
    """E relu(z)^n, z ~ N(0, s): ½ E|z|^n = ½ s^{n/2} 2^{n/2} Γ((n+1)/2)/√π (n ≥ 1); 1 for n = 0."""
    if n == 0:
        return 1.0
    return 0.5 * s ** (n / 2) * 2 ** (n / 2) * math.gamma((n + 1) / 2) / math.sqrt(PI)


def arccos_kernel(S, n):
    """Cho & Saul arc-cosine kernels: E[relu(x)^n relu(y)^n] for n = 1, 2 (J1, J2)."""
    a, b, c = S[0, 0], S[1, 1], S[0, 1]
    th = math.acos(max(-1.0, min(1.0, c / math.sqrt(a * b))))
    if n == 1:
        return math.sqrt(a * b) / (2 * PI) * (math.sin(th) + (PI - th) * math.cos(th))
    return a * b / (2 * PI) * (3 * math.sin(th) * math.cos(th) + (PI - th) * (1 + 2 * math.cos(th) ** 2))


def polar_2d(S, f_of_z, n):
    """E[f(z)] for f homogeneous of degree n and z ~ N(0, S) in 2-D: E|u|^n (1/2π) ∮ f(Lω) dφ.

    E|u|^n = 2^{n/2} Γ(1 + n/2) for a standard 2-D normal u; the angle integral is split at the kinks.
    """
    L = np.linalg.cholesky(S)
    kinks = sorted({(math.atan2(-L[i, 0], L[i, 1]) + sh) % (2 * PI) for i in range(2) for sh in (0.0, PI)})
    pts = [0.0, *kinks, 2 * PI]

    def g(phi):
        return f_of_z(L @ np.array([math.cos(phi), math.sin(phi)]))

    tot = sum(integrate.quad(g, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
              for lo, hi in itertools.pairwise(pts) if hi > lo)
    return 2 ** (n / 2) * math.gamma(1 + n / 2) * tot / (2 * PI)


def cone_prefactor(S, p):
    """(2π)^{−k/2} det(S)^{−1/2} ½ Γ((n+k)/2) 2^{(n+k)/2} (see the module docstring)."""
    k, n = len(p), sum(p)
    return (2 * PI) ** (-k / 2) / math.sqrt(np.linalg.det(S)) * 0.5 * math.gamma((n + k) / 2) * 2 ** ((n + k) / 2)


def cone_3d(S, p):
    """E[Π z_i^{p_i}; z > 0] for k = 3 by dblquad over the 2-simplex (smooth integrand, no kinks inside)."""
    Si = np.linalg.inv(S)
    e = -(sum(p) + 3) / 2

    def f(y, x):
        w = np.array([x, y, 1.0 - x - y])
        return float(np.prod(w ** np.asarray(p)) * (w @ Si @ w) ** e)

    val = integrate.dblquad(f, 0, 1, 0, lambda x: 1 - x, epsabs=1e-15, epsrel=1e-13)[0]
    return cone_prefactor(S, p) * val


def cone_4d_gl(S, p, n=60):
    """The k = 4 cone integral by a Duffy map of the 3-simplex to the cube and an n³ Gauss–Legendre rule."""
    Si = np.linalg.inv(S)
    x, w = np.polynomial.legendre.leggauss(n)
    x, w = (x + 1) / 2, w / 2
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    W = w[:, None, None] * w[None, :, None] * w[None, None, :] * (1 - X) ** 2 * (1 - Y)
    w1, w2, w3 = X, (1 - X) * Y, (1 - X) * (1 - Y) * Z
    ww = np.stack([w1, w2, w3, 1 - w1 - w2 - w3], -1)
    q = np.einsum("...i,ij,...j->...", ww, Si, ww)
    return cone_prefactor(S, p) * float(np.sum(W * np.prod(ww ** np.asarray(p), -1) * q ** (-(sum(p) + 4) / 2)))


def cone_4d_nquad(S, p):
    """The k = 4 cone integral by nested adaptive quadrature (scipy nquad) over the 3-simplex."""
    Si = np.linalg.inv(S)
    e = -(sum(p) + 4) / 2

    def f(z, y, x):
        w = np.array([x, y, z, 1.0 - x - y - z])
        return float(np.prod(w ** np.asarray(p)) * (w @ Si @ w) ** e)

    opts = {"epsabs": 1e-13, "epsrel": 1e-11}
    val = integrate.nquad(f, [lambda y, x: (0, 1 - x - y), lambda x: (0, 1 - x), (0, 1)], opts=[opts] * 3)[0]
    return cone_prefactor(S, p) * val


def isserlis(S, idx):
    """E[Π z_{idx}] for z ~ N(0, S) by Isserlis' theorem (sum over perfect matchings)."""
    if len(idx) == 0:
        return 1.0
    if len(idx) % 2:
        return 0.0
    first, rest = idx[0], idx[1:]
    return sum(S[first, rest[m]] * isserlis(S, rest[:m] + rest[m + 1:]) for m in range(len(rest)))


# --------------------------------------------------------------------------------------------- (a) k ≤ 2
@pytest.mark.parametrize("n", range(5))
def test_one_variable_closed_form(n):
    """E relu(z)^n = ½ Σ^{n/2} E|g|^n: 1/√(2π), 1/2, √(2/π), 3/2 times Σ^{n/2} for n = 1..4."""
    s = np.array([0.37, 1.0, 2.5, 1e-6, 1e6])
    got = relu_moments(s[:, None, None], (n,))
    want = np.array([relu_1d(x, n) for x in s])
    np.testing.assert_allclose(got, want, rtol=TOL, atol=0)


def test_arccos_kernels(rng):
    """(1,1) and (2,2) against Cho & Saul's J1 and J2 over the whole range of angles."""
    for c in [-0.999999, -0.9, -0.3, 0.0, 0.2, 0.7, 0.95, 0.999999]:
        a, b = rng.uniform(0.2, 4.0, size=2)
        S = np.array([[a, c * math.sqrt(a * b)], [c * math.sqrt(a * b), b]])
        for n in (1, 2):
            got = relu_moments(S[None], (n, n))[0]
            assert abs(got - arccos_kernel(S, n)) <= TOL * scale(S, (n, n)), (c, n)


@pytest.mark.parametrize("p", compositions(2))
def test_two_variables_vs_polar_quadrature(rng, p):
    """Every composition with two positive powers against the kink-split polar-angle integral."""
    for _ in range(3):
        S = rand_cov(rng, 2, extra=1)
        want = polar_2d(S, lambda z, p=p: float(np.prod(np.maximum(z, 0.0) ** np.asarray(p))), sum(p))
        got = relu_moments(S[None], p)[0]
        assert abs(got - want) <= TOL * scale(S, p), (p, got, want)


# --------------------------------------------------------------------------------------------- (b) k = 3, 4
@pytest.mark.parametrize("p", compositions(3))
def test_three_variables_vs_cone_quadrature(rng, p):
    """Every composition with three positive powers against dblquad of the cone integral."""
    for _ in range(2):
        S = rand_cov(rng, 3)
        got = relu_moments(S[None], p)[0]
        assert abs(got - cone_3d(S, p)) <= TOL * scale(S, p), p


def test_four_variables_vs_product_gauss_rule(rng):
    """(1,1,1,1) against the Duffy-mapped Gauss–Legendre cone integral (converged to ~1e-15 for these Σ)."""
    for _ in range(3):
        S = rand_cov(rng, 4, extra=4)
        got = relu_moments(S[None], (1, 1, 1, 1))[0]
        want = cone_4d_gl(S, (1, 1, 1, 1))
        assert abs(got - want) <= TOL * scale(S, (1, 1, 1, 1)), (got, want)


@pytest.mark.slow
def test_four_variables_vs_nested_adaptive_quadrature():
    """(1,1,1,1) at two covariances against scipy nquad of the cone integral, to 1e-9."""
    rng = np.random.default_rng(2024)
    for _ in range(2):
        S = rand_cov(rng, 4, extra=4)
        got = relu_moments(S[None], (1, 1, 1, 1))[0]
        assert abs(got - cone_4d_nquad(S, (1, 1, 1, 1))) <= 1e-9 * scale(S, (1, 1, 1, 1))


def test_four_variables_vs_monte_carlo():
    """(1,1,1,1) and a leaky-relu (1,1,1,1) against 1e7 seeded samples: |z-score| < 4."""
    rng = np.random.default_rng(99)
    S = np.array([[1.0, 0.6, -0.3, 0.2], [0.6, 2.0, 0.4, -0.5], [-0.3, 0.4, 1.5, 0.5], [0.2, -0.5, 0.5, 0.8]])
    L = np.linalg.cholesky(S)
    n_tot, sums = 0, np.zeros((2, 2))
    for _ in range(10):
        z = L @ rng.standard_normal((4, 1_000_000))
        for r, f in enumerate((np.maximum(z, 0.0), np.where(z > 0, z, 0.1 * z))):
            v = np.prod(f, axis=0)
            sums[r] += v.sum(), (v * v).sum()
        n_tot += z.shape[1]
    exact = [relu_moments(S[None], (1, 1, 1, 1))[0], piecewise_linear_moments(S[None], 0.1, 1.0, (1, 1, 1, 1))[0]]
    for r in range(2):
        mean = sums[r, 0] / n_tot
        se = math.sqrt((sums[r, 1] / n_tot - mean ** 2) / n_tot)
        assert abs(exact[r] - mean) / se < 4.0, (r, exact[r], mean, se)


# --------------------------------------------------------------------------------------------- (c) linear, abs
@pytest.mark.parametrize("p", [p for k in (1, 2, 3, 4) for p in compositions(k)])
def test_linear_is_isserlis(rng, p):
    """left = right = 1 is the identity: E[Π z_i^{p_i}] by Isserlis, e.g. Σ12Σ34 + Σ13Σ24 + Σ14Σ23."""
    S = rand_cov(rng, len(p))
    idx = tuple(i for i, x in enumerate(p) for _ in range(x))
    got = piecewise_linear_moments(S[None], 1.0, 1.0, p)[0]
    assert abs(got - isserlis(S, idx)) <= TOL * scale(S, p)


def test_abs_two_variables_closed_form_and_quadrature(rng):
    """E|x||y| = (2/π)√(Σ11Σ22)(√(1−ρ²) + ρ asin ρ); (2,1), (3,1) of |z| against polar quadrature."""
    for _ in range(4):
        S = rand_cov(rng, 2, extra=1)
        rho = S[0, 1] / math.sqrt(S[0, 0] * S[1, 1])
        want = 2 / PI * math.sqrt(S[0, 0] * S[1, 1]) * (math.sqrt(1 - rho ** 2) + rho * math.asin(rho))
        assert abs(piecewise_linear_moments(S[None], -1.0, 1.0, (1, 1))[0] - want) <= TOL * scale(S, (1, 1))
        for p in [(2, 1), (3, 1), (1, 2)]:
            want = polar_2d(S, lambda z, p=p: float(np.prod(np.abs(z) ** np.asarray(p))), sum(p))
            assert abs(piecewise_linear_moments(S[None], -1.0, 1.0, p)[0] - want) <= TOL * scale(S, p)


def test_abs_and_leaky_three_variables_vs_cone_quadrature(rng):
    """|z| and leaky relu (α = 0.2) for (1,1,1), (2,1,1): sum of the cone integral over the eight orthants."""
    S = rand_cov(rng, 3)
    for left, right in [(-1.0, 1.0), (0.2, 1.0), (0.5, -2.0)]:
        for p in [(1, 1, 1), (2, 1, 1)]:
            want = 0.0
            for s in itertools.product((1.0, -1.0), repeat=3):
                D = np.diag(s)
                slope = np.array([right if x > 0 else -left for x in s])  # σ(s·y) = slope·y for y > 0
                want += float(np.prod(slope ** np.asarray(p))) * cone_3d(D @ S @ D, p)
            got = piecewise_linear_moments(S[None], left, right, p)[0]
            assert abs(got - want) <= TOL * scale(S, p) * max(1.0, abs(left), abs(right)) ** sum(p)


# --------------------------------------------------------------------------------------------- (d) limits, inputs
def test_duplicate_and_opposite_inputs():
    """ρ = ±1 exactly: E[relu(z)relu(z)] = Σ/2, E[relu(z)relu(−z)] = 0, and duplicates merge powers."""
    one = np.ones((1, 2, 2))
    assert relu_moments(2.5 * one, (1, 1))[0] == pytest.approx(1.25, rel=TOL)
    assert relu_moments(np.array([[[2.5, -2.5], [-2.5, 2.5]]]), (1, 1))[0] == 0.0
    v = np.array([1.0, 2.0, -0.5, 3.0])  # four parallel/antiparallel copies of one variable
    S = np.outer(v, v)[None]
    assert relu_moments(S, (1, 1, 1, 1))[0] == 0.0  # one is antiparallel
    S = np.outer(np.abs(v), np.abs(v))[None]
    assert relu_moments(S, (1, 1, 1, 1))[0] == pytest.approx(3.0 / 2.0 * np.prod(np.abs(v)), rel=TOL)
    # two duplicate pairs: (1,1,1,1) → (2,2)
    rng = np.random.default_rng(3)
    T = rand_cov(rng, 2)
    idx = [0, 0, 1, 1]
    S4 = T[np.ix_(idx, idx)]
    assert abs(relu_moments(S4[None], (1, 1, 1, 1))[0] - arccos_kernel(T, 2)) <= TOL * scale(S4, (1, 1, 1, 1))
    # a duplicate pair among three: (1,1,1) on (a, a, b) equals (2,1) on (a, b)
    T3 = rand_cov(rng, 3)
    S3 = T3[np.ix_([0, 0, 1], [0, 0, 1])]
    want = polar_2d(T3[:2, :2], lambda z: max(z[0], 0.0) ** 2 * max(z[1], 0.0), 3)
    assert abs(relu_moments(S3[None], (1, 1, 1))[0] - want) <= TOL * scale(S3, (1, 1, 1))


def test_near_parallel_tends_to_the_limit():
    """ρ → 1 continuously: the (1,1,1,1) moment approaches the merged (2,1,1) value linearly in the angle."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((4, 5))
    n = rng.standard_normal(5)
    n -= (n @ X[0]) / (X[0] @ X[0]) * X[0]
    n *= np.linalg.norm(X[0]) / np.linalg.norm(n)
    base = X[[0, 2, 3]]
    limit = relu_moments((base @ base.T)[None], (2, 1, 1))[0]
    vals = []
    for e in [1e-3, 1e-5, 1e-7, 1e-9, 1e-12, 0.0]:
        Y = X.copy()
        Y[1] = X[0] + e * n
        S = Y @ Y.T
        vals.append(relu_moments(S[None], (1, 1, 1, 1))[0])
        assert abs(vals[-1] - limit) <= 10 * max(e, 1e-15) * scale(S, (1, 1, 1, 1)), e
    assert vals[-1] == pytest.approx(limit, rel=1e-14)


def test_rank_deficient_is_continuous():
    """Four inputs in a 2-D input space with a bias (rank 3, no parallel pair): Σ + εI → Σ linearly in ε."""
    x = np.array([[1.0, 0.2], [0.3, 1.1], [-0.7, 0.5], [0.4, -0.9]])
    S = 0.1 + x @ x.T
    assert np.linalg.matrix_rank(S) == 3
    m0 = relu_moments(S[None], (1, 1, 1, 1))[0]
    for e in [1e-6, 1e-8, 1e-10]:
        me = relu_moments((S + e * np.eye(4))[None], (1, 1, 1, 1))[0]
        assert abs(me - m0) <= 2.0 * e
    S2 = x[:3] @ x[:3].T  # three inputs in 2-D, no bias: rank 2
    got = relu_moments(S2[None], (1, 1, 1))[0]
    assert abs(got - relu_moments((S2 + 1e-9 * np.eye(3))[None], (1, 1, 1))[0]) <= 2e-9


def test_zero_variance():
    """z_i ≡ 0: the moment is 0 if its power is positive, and that of the others if its power is 0."""
    rng = np.random.default_rng(5)
    T = rand_cov(rng, 3)
    S = np.zeros((4, 4))
    S[:3, :3] = T
    assert relu_moments(S[None], (1, 1, 1, 1))[0] == 0.0
    assert relu_moments(S[None], (1, 2, 1, 0))[0] == pytest.approx(relu_moments(T[None], (1, 2, 1))[0], rel=1e-15)
    assert relu_moments(np.zeros((1, 1, 1)), (2,))[0] == 0.0
    assert piecewise_linear_moments(np.zeros((1, 2, 2)), -1.0, 1.0, (1, 1))[0] == 0.0


def test_batch_shapes_and_trivial_powers(rng):
    """A batch is evaluated entry by entry; B = 0 gives an empty result; all-zero powers give ones."""
    S = np.stack([rand_cov(rng, 3) for _ in range(5)])
    whole = relu_moments(S, (2, 1, 1))
    single = np.array([relu_moments(S[b:b + 1], (2, 1, 1))[0] for b in range(5)])
    np.testing.assert_allclose(whole, single, rtol=1e-15)
    assert relu_moments(np.zeros((0, 3, 3)), (1, 1, 1)).shape == (0,)
    np.testing.assert_array_equal(relu_moments(S, (0, 0, 0)), np.ones(5))


@pytest.mark.parametrize(
    ("Sigma", "powers", "match"),
    [
        (np.eye(3), (1, 1, 1), "shape"),
        (np.eye(3)[None], (1, 1), "shape"),
        (np.full((1, 2, 2), np.nan), (1, 1), "NaN"),
        (np.array([[[1.0, 2.0], [2.0, 1.0]]]), (1, 1), "positive semi-definite"),
        (np.array([[[-1.0]]]), (2,), "positive semi-definite"),
        (np.array([[[1.0, 0.5], [0.2, 1.0]]]), (1, 1), "symmetric"),
        (np.eye(2)[None], (3, 2), "sum"),
        (np.eye(2)[None], (1, -1), "nonnegative"),
        (np.eye(5)[None], (1, 1, 1, 1, 0), "1 to 4"),
        (np.eye(1)[None], (1.5,), "integers"),
        (np.eye(1)[None], "ab", "integers"),
    ],
)
def test_bad_inputs(Sigma, powers, match):
    """Wrong shapes, NaN, non-PSD, asymmetric Σ and bad powers are InputErrors that say what to fix."""
    with pytest.raises(InputError, match=match):
        relu_moments(Sigma, powers)


def test_bad_slopes():
    """Non-finite or non-numeric slopes are InputErrors."""
    with pytest.raises(InputError, match="finite"):
        piecewise_linear_moments(np.eye(2)[None], float("nan"), 1.0, (1, 1))
    with pytest.raises(InputError, match="slopes"):
        piecewise_linear_moments(np.eye(2)[None], "x", 1.0, (1, 1))


# --------------------------------------------------------------------------------------------- (e) properties
@st.composite
def psd4(draw):
    """A random 4×4 PSD matrix A Aᵀ (rank 1 to 4, entries of mixed scale)."""
    r = draw(st.integers(1, 4))
    entries = draw(st.lists(st.floats(-3, 3, allow_nan=False, allow_infinity=False), min_size=4 * r, max_size=4 * r))
    A = np.array(entries).reshape(4, r)
    scales = draw(st.lists(st.floats(0.1, 10.0), min_size=4, max_size=4))
    A = A * np.array(scales)[:, None]
    return A @ A.T


@settings(max_examples=40, deadline=None)
@given(S=psd4(), perm=st.permutations(range(4)), t=st.floats(0.01, 100.0))
def test_permutation_invariance_and_homogeneity(S, perm, t):
    """(1,1,1,1) is invariant under permutations; Σ → tΣ multiplies every moment by t^{Σp/2}."""
    sc = float(np.prod(np.sqrt(np.diag(S))))
    if sc == 0.0:
        assert relu_moments(S[None], (1, 1, 1, 1))[0] == 0.0
        return
    m = relu_moments(S[None], (1, 1, 1, 1))[0]
    assert m >= -1e-11 * sc  # rank-2 draws with a true value ~0 come out at ~-1e-12
    P = S[np.ix_(perm, perm)]
    # 1e-8: random floats draw pairs within the merge threshold (θ ≈ 3e-8) of parallel, see the module docstring
    assert abs(relu_moments(P[None], (1, 1, 1, 1))[0] - m) <= 1e-8 * sc
    assert abs(relu_moments((t * S)[None], (1, 1, 1, 1))[0] - t ** 2 * m) <= 1e-8 * t ** 2 * sc
    p = (2, 0, 1, 1)
    pp = tuple(p[i] for i in perm)
    sp = scale(S, p)
    assert abs(relu_moments(P[None], pp)[0] - relu_moments(S[None], p)[0]) <= 1e-8 * max(sp, 1e-300)
