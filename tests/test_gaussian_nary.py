"""n-variable Gaussian averages: the Expectation node for k ≥ 3, Isserlis, Price's theorem, n-D quadrature, lowering.

Numerical claims are checked against a reference written here with no shared code: a tensor trapezoid
rule in standard normal variables through the *Cholesky* factor, contracted variable by variable (the
integrand is a product f_1(z_1)⋯f_k(z_k), and z_m depends on x_1..x_m only), while
:mod:`nnft.numeric.quadrature_nd` uses the eigendecomposition and a joint anisotropic rule.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import nnft
from nnft.codegen.module import compile_function
from nnft.errors import BudgetError, DivergenceError, InputError
from nnft.gaussian import Expectation, Kaa, Kab, Kbb, covariance_matrix, expect, expect_pair, isserlis, za, zb
from nnft.numeric.quadrature_nd import gauss_nd

ZS = sp.symbols("z_a z_b z_c z_d", real=True)
KS = covariance_matrix(ZS)


def _random_cov(seed: int, k: int = 4) -> np.ndarray:
    """A well-conditioned k × k covariance with variances in [0.5, 1.5] and O(1) correlations."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, k + 2))
    c = a @ a.T
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)
    v = rng.uniform(0.5, 1.5, k)
    return c * np.sqrt(np.outer(v, v))


def _reference(factors, K: np.ndarray, h: float, L: float = 7.5) -> float:
    """⟨Π_a f_a(z_a)⟩ over N(0, K) by a Cholesky-ordered trapezoid rule (independent of nnft)."""
    C = np.linalg.cholesky(K)
    m = int(L / h)
    x = h * np.arange(-m, m + 1)
    w = np.exp(-x * x / 2)
    w = w / w.sum()
    k = K.shape[0]
    grids = np.meshgrid(*([x] * k), indexing="ij", sparse=True)
    # innermost first: I_k = f_k(z_k); I_{a} = f_a(z_a) · Σ_{x_{a+1}} w I_{a+1}
    acc = None
    for a in range(k - 1, -1, -1):
        z_a = sum(C[a, j] * grids[j] for j in range(a + 1))  # depends on x_0..x_a only
        val = factors[a](z_a.reshape((x.size,) * (a + 1)))
        acc = val if acc is None else val * (acc @ w)
    return float(acc @ w)


@pytest.fixture(scope="module")
def tanh4_case():
    K = _random_cov(2026)
    ref = _reference([np.tanh] * 4, K, 0.3)
    coarse = _reference([np.tanh] * 4, K, 0.4)
    assert abs(ref - coarse) < 1e-9  # the reference converges (its error falls like exp(-c/h))
    return K, ref


def test_old_forms_are_the_same_nodes_and_the_matrix_form_is_canonical():
    """(K,) and (K_aa, K_ab, K_bb) keep their stored form; a k × k matrix stores its upper triangle."""
    f = sp.tanh(za) * sp.tanh(zb)
    old = Expectation(f, (za, zb), (Kaa, Kab, Kbb))
    assert old.args == (f, sp.Tuple(za, zb), sp.Tuple(Kaa, Kab, Kbb))
    assert Expectation(f, (za, zb), sp.Matrix([[Kaa, Kab], [Kab, Kbb]])) == old
    assert hash(Expectation(f, (za, zb), [[Kaa, Kab], [Kab, Kbb]])) == hash(old)
    assert Expectation(sp.tanh(za), (za,), (Kaa,)).cov == (Kaa,)
    g = sp.Mul(*[sp.tanh(v) for v in ZS])
    e = Expectation(g, ZS, KS)
    assert len(e.cov) == 10 and e.cov[:4] == tuple(KS[0, :]) and e.cov_matrix == KS
    assert Expectation(g, ZS, e.cov) == e
    with pytest.raises(ValueError):
        Expectation(f, (za, zb), (Kaa, Kab))
    bad = KS.copy()
    bad[0, 1] = 2 * KS[0, 1]
    with pytest.raises(InputError, match="symmetric"):
        Expectation(g, ZS, bad)


def test_latex_of_a_four_variable_average():
    """⟨…⟩_K with the standard covariance symbols, the matrix otherwise."""
    g = sp.Mul(*[sp.tanh(v) for v in ZS])
    text = sp.latex(Expectation(g, ZS, KS))
    assert text.startswith(r"\left\langle") and text.endswith(r"\right\rangle_{K}")
    assert r"\left[\begin{matrix}" in sp.latex(Expectation(g, ZS, sp.eye(4)))


def _wick_pairings(indices: list[int]) -> Counter:
    """All perfect matchings of a list of variable indices, as a Counter of sorted pair tuples."""
    if not indices:
        return Counter({(): 1})
    first, rest = indices[0], indices[1:]
    out: Counter = Counter()
    for p in range(len(rest)):
        pair = tuple(sorted((first, rest[p])))
        for sub, n in _wick_pairings(rest[:p] + rest[p + 1:]).items():
            out[tuple(sorted((pair, *sub)))] += n
    return out


def _wick(poly: sp.Expr, K: sp.Matrix) -> sp.Expr:
    """E[poly(z)] over N(0, K) by explicit enumeration of pairings (independent of nnft.isserlis)."""
    total = sp.S.Zero
    for monom, coeff in sp.Poly(sp.expand(poly), *ZS).terms():
        idx = [i for i, e in enumerate(monom) for _ in range(e)]
        if len(idx) % 2:
            continue
        for pairs, n in _wick_pairings(idx).items():
            total += coeff * n * sp.Mul(*[K[i, j] for i, j in pairs])
    return sp.expand(total)


@pytest.mark.parametrize("sigma", [lambda t: t**3, lambda t: t**2 + t], ids=["z^3", "z^2+z"])
def test_polynomial_four_point_average_is_isserlis_exactly(sigma):
    """⟨σ_aσ_bσ_cσ_d⟩_K for polynomial σ: exactly the sum over pairings, and the quadrature agrees."""
    f = sp.Mul(*[sigma(v) for v in ZS])
    closed = expect(f, ZS, KS)
    assert not closed.has(Expectation)
    assert sp.expand(closed - _wick(f, KS)) == 0
    K = _random_cov(7)
    value = float(closed.subs({KS[i, j]: K[i, j] for i in range(4) for j in range(4)}))
    fn = sp.lambdify(ZS, f, "numpy")
    num = float(gauss_nd(fn, K))
    assert num == pytest.approx(value, rel=1e-8)


def test_four_point_isserlis_by_hand():
    """⟨z_a z_b z_c z_d⟩ = K_ab K_cd + K_ac K_bd + K_ad K_bc and ⟨z_a³ z_b⟩ = 3 K_aa K_ab."""
    a, b, c, d = ZS
    K = KS
    assert expect(a * b * c * d, ZS, K) == K[0, 1] * K[2, 3] + K[0, 2] * K[1, 3] + K[0, 3] * K[1, 2]
    assert expect(a**3 * b, ZS, K) == 3 * K[0, 0] * K[0, 1]
    assert expect(a**3 * b, ZS, K) == isserlis(a**3 * b, ZS[:2], K[:2, :2])


def test_tanh_four_point_average_against_an_independent_quadrature(tanh4_case):
    """⟨tanh(z_a)tanh(z_b)tanh(z_c)tanh(z_d)⟩_K for a random 4 × 4 K: n-D quadrature vs the reference, 1e-8."""
    K, ref = tanh4_case
    val = float(gauss_nd(lambda a, b, c, d: np.tanh(a) * np.tanh(b) * np.tanh(c) * np.tanh(d), K))
    assert abs(val - ref) < 1e-8
    assert abs(ref) > 1e-3  # the test can fail: the average is not tiny


def test_tanh_four_point_average_through_generated_code(tanh4_case):
    """The Expectation node lowers to a generated numpy function of the 10 covariance entries (no sympy)."""
    K, ref = tanh4_case
    node = expect(sp.Mul(*[sp.tanh(v) for v in ZS]), ZS, KS)
    assert isinstance(node, Expectation)
    args = tuple(node.cov)
    mod = compile_function({"E4": node}, args, name="nary_tanh4_test")
    src = Path(mod.module.__file__).read_text()
    assert "gauss_nd_upper" in src and "sympy" not in src.split('"""', 2)[2]
    flat = [K[i, j] for i in range(4) for j in range(i, 4)]
    batch = [np.array([x, 0.0 * x + (1.0 if i == j else 0.0)]) for x, (i, j) in
             zip(flat, [(i, j) for i in range(4) for j in range(i, 4)], strict=True)]
    out = mod.E4(*batch)
    assert out.shape == (2,)
    assert abs(out[0] - ref) < 1e-8
    assert out[1] == pytest.approx(0.0, abs=1e-15)  # identity covariance: ⟨tanh⟩⁴ = 0 by symmetry


def test_price_theorem_for_the_nary_node_against_finite_differences():
    """∂⟨f⟩/∂K_ab = ⟨∂_a∂_b f⟩ (K_ab = K_ba one variable) and ∂⟨f⟩/∂K_cc = ½⟨∂_c² f⟩, k = 3."""
    v = ZS[:3]
    Ks = covariance_matrix(v)
    f = sp.tanh(v[0]) * sp.tanh(v[1]) * sp.sin(v[2] + sp.Rational(1, 3))
    node = Expectation(f, v, Ks)
    K = _random_cov(11, 3)
    fn = sp.lambdify(v, f, "numpy")
    for (i, j) in [(0, 1), (1, 2), (2, 2)]:
        d = sp.diff(node, Ks[i, j])
        assert isinstance(d, Expectation)
        want = sp.diff(f, v[i], v[j]) if i != j else sp.diff(f, v[i], 2) / 2
        assert sp.simplify(d.integrand - want) == 0
        exact = float(gauss_nd(sp.lambdify(v, d.integrand, "numpy"), K, tol=1e-11))
        h = 1e-3
        E = np.zeros((3, 3))
        E[i, j] = E[j, i] = h
        fd = (float(gauss_nd(fn, K + E, tol=1e-12)) - float(gauss_nd(fn, K - E, tol=1e-12))) / (2 * h)
        assert fd == pytest.approx(exact, abs=2e-7), (i, j)
        assert abs(exact) > 1e-3


def test_singular_covariance_with_two_equal_variables():
    """z_b = z_a exactly (duplicate inputs): the 4-D average equals the 3-D average of tanh(z_a)² tanh tanh."""
    K3 = _random_cov(5, 3)
    emb = [0, 0, 1, 2]
    K4 = K3[np.ix_(emb, emb)]
    assert np.linalg.matrix_rank(K4) == 3
    val = float(gauss_nd(lambda a, b, c, d: np.tanh(a) * np.tanh(b) * np.tanh(c) * np.tanh(d), K4))
    ref = _reference([lambda t: np.tanh(t) ** 2, np.tanh, np.tanh], K3, 0.3)
    assert abs(val - ref) < 1e-9
    # the symbolic side at the same point: Isserlis with K_ab = K_aa = K_bb
    a, b, c, d = ZS
    closed = expect(a * b * c * d + a**2 * b**2, ZS, sp.Matrix(K4.tolist()))
    num = float(gauss_nd(lambda a, b, c, d: a * b * c * d + a * a * b * b, K4))
    assert num == pytest.approx(float(closed), rel=1e-10)


def test_block_diagonal_covariance_factorises_into_closed_forms():
    """Independent blocks of a relu four-point average give the product of two arc-cosine kernels."""
    relu = nnft.activation("relu").expr
    z = nnft.activations.z
    K1 = sp.Matrix([[Kaa, Kab], [Kab, Kbb]])
    Kc, Kd, Kcd = sp.Symbol("K_cc", positive=True), sp.Symbol("K_dd", positive=True), sp.Symbol("K_cd", real=True)
    K2 = sp.Matrix([[Kc, Kcd], [Kcd, Kd]])
    out = expect(sp.Mul(*[relu.subs(z, v) for v in ZS]), ZS, sp.diag(K1, K2))
    assert not out.has(Expectation)
    pair = expect_pair(relu, relu)
    assert sp.simplify(out - pair * pair.subs({Kaa: Kc, Kbb: Kd, Kab: Kcd}, simultaneous=True)) == 0
    # variables the integrand does not involve are marginalised
    assert expect(sp.tanh(ZS[0]) ** 2, ZS, KS) == Expectation(sp.tanh(za) ** 2, (za,), (Kaa,))


def test_quadrature_refuses_bad_covariances_and_reports_non_convergence():
    """Non-PSD or asymmetric K: InputError; kinked integrand at a tight tol: BudgetError; inf: DivergenceError."""
    f = lambda a, b, c: a * b * c  # noqa: E731
    with pytest.raises(InputError, match="positive semidefinite"):
        gauss_nd(f, np.diag([1.0, -1.0, 1.0]))
    with pytest.raises(InputError, match="symmetric"):
        gauss_nd(f, np.array([[1.0, 0.5, 0], [0.1, 1, 0], [0, 0, 1]]))
    with pytest.raises(BudgetError, match="max_points"):
        gauss_nd(lambda a, b, c: np.abs(a) * np.abs(b) * np.abs(c), _random_cov(3, 3), tol=1e-12,
                 max_points=200_000)
    with pytest.raises(DivergenceError):
        gauss_nd(lambda a, b, c: np.exp(a * a * 1e3), np.eye(3))
    assert gauss_nd(lambda a, b, c: a + 2.0, np.zeros((3, 3))) == 2.0  # K = 0: f(0)


def test_quadrature_is_batched_and_exact_for_low_degree_polynomials():
    """Shape (..., k, k) → (...); ⟨z_a² z_b² z_c²⟩ for a batch of diagonal K."""
    Ks = np.stack([np.diag(d) for d in itertools.product([0.5, 2.0], repeat=3)]).reshape(2, 4, 3, 3)
    out = gauss_nd(lambda a, b, c: a * a * b * b * c * c, Ks)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, np.prod(np.diagonal(Ks, axis1=-2, axis2=-1), axis=-1), rtol=1e-12)
