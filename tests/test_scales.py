"""Quadrature and kernels at variances from 1e-300 to 1e300, against independent asymptotic references.

The references are computed here with mpmath, not by nnft. At a huge variance K = s² an activation is
its asymptote (a polynomial on each half-line) plus an integrable remainder, so
⟨g(z)⟩ = ⟨g_asym(z)⟩ + φ(0)/s·∫(g − g_asym) dz + O(s⁻³) with ⟨g_asym⟩ in closed form; at a tiny variance
the Taylor series at 0 with Isserlis moments is exact to O(K³). Errors are measured against the natural
scale √(⟨f_a²⟩⟨f_b²⟩) of a two-variable average (Cauchy–Schwarz).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import nnft
from nnft import runtime as rt
from nnft.errors import BudgetError, DivergenceError
from nnft.numeric import correlation_tables as ct
from nnft.numeric import quadrature as q

mp.mp.dps = 40
TOL = 1e-12

# name: (numpy f, numpy f', mpmath f, asymptote of f on z > 0 and z < 0 as polynomial coefficients (a0, a1))
FAMILIES = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2, mp.tanh, (1, 0), (-1, 0)),
    "sigmoid": (lambda z: 0.5 * (1 + np.tanh(z / 2)), lambda z: 0.25 / np.cosh(z / 2) ** 2,
                lambda z: 1 / (1 + mp.exp(-z)), (1, 0), (0, 0)),
    "softplus": (lambda z: np.logaddexp(0, z), lambda z: 0.5 * (1 + np.tanh(z / 2)),
                 lambda z: mp.log1p(mp.exp(z)) if z < 0 else z + mp.log1p(mp.exp(-z)), (0, 1), (0, 0)),
    "swish": (lambda z: z * 0.5 * (1 + np.tanh(z / 2)),
              lambda z: 0.5 * (1 + np.tanh(z / 2)) + z * 0.25 / np.cosh(z / 2) ** 2,
              lambda z: z / (1 + mp.exp(-z)), (0, 1), (0, 0)),
    "ztanh": (lambda z: z * np.tanh(z), lambda z: np.tanh(z) + z / np.cosh(z) ** 2,
              lambda z: z * mp.tanh(z), (0, 1), (0, -1)),
}
_sg = lambda z: 1 / (1 + mp.exp(-z))  # noqa: E731
MP_DERIV = {  # f′ in mpmath, written out (not by numerical differentiation)
    "tanh": lambda z: 1 - mp.tanh(z) ** 2,
    "sigmoid": lambda z: _sg(z) * (1 - _sg(z)),
    "softplus": _sg,
    "swish": lambda z: _sg(z) + z * _sg(z) * (1 - _sg(z)),
    "ztanh": lambda z: mp.tanh(z) + z * (1 - mp.tanh(z) ** 2),
}
HUGE = [1e40, 1e100, 1e200, 1e300]
TINY = [1e-300, 1e-200, 1e-100, 1e-40]


def _poly_mul(p, r):
    out = [mp.mpf(0)] * (len(p) + len(r) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(r):
            out[i + j] += a * b
    return out


def _half_moment(p, s):
    """⟨p(z)·Θ(±z)⟩ for z ~ N(0, s²) and a polynomial p (coefficients in z, z on the chosen half-line)."""
    m = [mp.mpf(1) / 2, s / mp.sqrt(2 * mp.pi), s**2 / 2, 2 * s**3 / mp.sqrt(2 * mp.pi), 3 * s**4 / 2]
    return sum(c * m[k] for k, c in enumerate(p))


def ref_huge(g, p_pos, p_neg, K):
    """⟨g(z)⟩ at a huge variance K for g → p_pos(z) (z → ∞) and p_neg(z) (z → −∞)."""
    s = mp.sqrt(mp.mpf(K))

    def asym(z):
        p = p_pos if z >= 0 else p_neg
        return sum(c * z**k for k, c in enumerate(p))

    rem = mp.quad(lambda z: g(z) - asym(z), [-mp.inf, -40, -10, -2, 0, 2, 10, 40, mp.inf])
    neg = [c * (-1) ** k for k, c in enumerate(p_neg)]  # p_neg(−y) for y > 0
    return _half_moment(p_pos, s) + _half_moment(neg, s) + rem / (s * mp.sqrt(2 * mp.pi))


def _derivs(f, n=4):
    return [mp.diff(f, 0, k) for k in range(n + 1)]


def ref_tiny(fa, fb, Kaa, Kab, Kbb):
    """⟨fa(z_a) fb(z_b)⟩ for tiny variances: Taylor series at 0 to total degree 4 with Isserlis moments."""
    da, db = _derivs(fa), _derivs(fb)
    A, B, C = (mp.mpf(v) for v in (Kaa, Kab, Kbb))
    mom = {(0, 0): 1, (2, 0): A, (0, 2): C, (1, 1): B, (4, 0): 3 * A**2, (0, 4): 3 * C**2, (3, 1): 3 * A * B,
           (1, 3): 3 * C * B, (2, 2): A * C + 2 * B**2}
    return sum(da[j] * db[k] / (mp.factorial(j) * mp.factorial(k)) * m for (j, k), m in mom.items())


def _fam(name):
    f, df, fm, pp, pn = FAMILIES[name]
    return f, df, fm, [mp.mpf(c) for c in pp], [mp.mpf(c) for c in pn]


def _sq(p):
    return _poly_mul(p, p)


# --------------------------------------------------------------------------------------------- 1-D


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gauss1_at_huge_variances(name):
    """⟨f²⟩ at K = 1e40 … 1e300 matches the asymptotic expansion (tanh: 1 − O(1/√K))."""
    f, _, fm, pp, pn = _fam(name)
    for K in HUGE:
        ref = ref_huge(lambda z: fm(z) ** 2, _sq(pp), _sq(pn), K)
        got = q.gauss1(lambda z: f(z) ** 2, K)
        assert np.isfinite(got)
        assert abs(got - float(ref)) <= TOL * abs(float(ref)), (name, K, got, ref)


def test_tanh_derivative_average_at_huge_variance():
    """⟨tanh′(z)²⟩ → (4/3)/√(2πK) (the NTK diagonal integrand), to O(1/K) relative."""
    for K in HUGE:
        got = q.gauss1(lambda z: (1 - np.tanh(z) ** 2) ** 2, K)
        ref = 4.0 / 3.0 / math.sqrt(2 * math.pi * K)
        assert abs(got - ref) <= TOL * ref, (K, got, ref)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gauss1_at_tiny_variances(name):
    """⟨f²⟩ at K = 1e-300 … 1e-40 matches the Taylor series (tanh ≈ linear there)."""
    f, _, fm, _, _ = _fam(name)
    for K in TINY:
        ref = float(ref_tiny(fm, fm, K, K, K))
        got = q.gauss1(lambda z: f(z) ** 2, K)
        assert abs(got - ref) <= TOL * abs(ref) + 1e-320, (name, K, got, ref)


# --------------------------------------------------------------------------------------------- 2-D


def _limit_pair(name, K, c):
    """Large-K limit of ⟨f(z_a) f(z_b)⟩ at equal variances K and correlation c (f → its asymptote)."""
    s2 = mp.mpf(K)
    c = mp.mpf(c)
    if name == "tanh":
        return 2 / mp.pi * mp.asin(c)
    if name == "sigmoid":
        return mp.mpf(1) / 4 + mp.asin(c) / (2 * mp.pi)
    if name in ("softplus", "swish"):  # relu
        return s2 / (2 * mp.pi) * (mp.sqrt(1 - c * c) + (mp.pi - mp.acos(c)) * c)
    return 2 * s2 / mp.pi * (mp.sqrt(1 - c * c) + c * mp.asin(c))  # |z|


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gauss2_diagonal_at_all_scales(name):
    """At c = 1 (the kernel diagonal) the 2-D rule equals ⟨f²⟩ at every scale (was c = 0 for K ≳ 1e154)."""
    f, _, fm, pp, pn = _fam(name)
    for K in HUGE + TINY:
        ref = ref_huge(lambda z: fm(z) ** 2, _sq(pp), _sq(pn), K) if K > 1 else ref_tiny(fm, fm, K, K, K)
        got = q.gauss2_product(f, f, K, K, K)
        assert abs(got - float(ref)) <= TOL * abs(float(ref)) + 1e-320, (name, K, got, ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_gauss2_equal_huge_variances(name):
    """Generic correlations at K = 1e40 match the limit kernel of the asymptote (O(1/√K) corrections)."""
    f, _, fm, pp, pn = _fam(name)
    K = 1e40
    scale = abs(float(ref_huge(lambda z: fm(z) ** 2, _sq(pp), _sq(pn), K)))
    c = np.array([-0.7, 0.3, 0.9])
    got = q.gauss2_product(f, f, K, c * K, K)
    ref = np.array([float(_limit_pair(name, K, v)) for v in c])
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL * scale)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gauss2_tiny_variances(name):
    """Both variances tiny (1e-300 … 1e-40, unequal), generic c: Taylor/Isserlis reference."""
    f, _, fm, _, _ = _fam(name)
    for K in TINY:
        Kaa, Kbb = K, 4 * K
        for c in (-0.8, 0.0, 0.5, 1.0):
            Kab = c * 2 * K
            ref = float(ref_tiny(fm, fm, Kaa, Kab, Kbb))
            scale = float(mp.sqrt(ref_tiny(fm, fm, Kaa, Kaa, Kaa) * ref_tiny(fm, fm, Kbb, Kbb, Kbb)))
            got = q.gauss2_product(f, f, Kaa, Kab, Kbb)
            assert abs(got - ref) <= TOL * scale + 1e-320, (name, K, c, got, ref)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gauss2_huge_times_tiny(name):
    """One variance 1e300, the other 1e-300 (inputs of norms 1e±150), both orders: fb expanded at 0."""
    f, df, fm, pp, pn = _fam(name)
    Ka, Kb = 1e300, 1e-300
    sa, sb = mp.sqrt(mp.mpf(Ka)), mp.sqrt(mp.mpf(Kb))
    d = _derivs(fm, 2)
    mean_a = ref_huge(fm, pp, pn, Ka)
    dfm = MP_DERIV[name]
    dpp = [pp[1]] if len(pp) > 1 else [0]
    dpn = [pn[1]] if len(pn) > 1 else [0]
    mean_da = ref_huge(dfm, dpp, dpn, Ka)
    u2 = ref_huge(lambda z: z * z * fm(z), [0, 0] + pp, [0, 0] + pn, Ka) / sa**2  # ⟨f(s_a u) u²⟩
    scale = float(mp.sqrt(ref_huge(lambda z: fm(z) ** 2, _sq(pp), _sq(pn), Ka) * ref_tiny(fm, fm, Kb, Kb, Kb)))
    for c in (-0.6, 0.4, 1.0):
        cm = mp.mpf(c)
        ref = d[0] * mean_a + d[1] * cm * sa * sb * mean_da + d[2] / 2 * Kb * (cm**2 * u2 + (1 - cm**2) * mean_a)
        Kab = c * 1.0  # c·√(1e300·1e-300)
        got_ab = q.gauss2_product(f, f, Ka, Kab, Kb)
        got_ba = q.gauss2_product(f, f, Kb, Kab, Ka)
        for got in (got_ab, got_ba):
            assert abs(got - float(ref)) <= TOL * scale, (name, c, got, ref, scale)


def test_gauss2_general_integrand_at_scale():
    """gauss2 (a non-product integrand) at c = 1 and K = 1e300 is the 1-D average, not the c = 0 one."""
    got = q.gauss2(lambda a, b: np.tanh(a) * np.tanh(b), 1e300, 1e300, 1e300)
    assert abs(got - 1.0) <= TOL


def test_correlation_is_scale_safe_and_exact_on_the_diagonal():
    """c = K_ab/√(K_aa K_bb) with K_aa·K_bb out of the float64 range; exactly 1 for K_ab = K_aa = K_bb."""
    for K in (1e-320, 1e-300, 1.0, 3.7, 1e200, 1e308):
        assert q.correlation(K, K, K) == 1.0
    np.testing.assert_allclose(q.correlation(1e300, 0.5e300, 1e300), 0.5, rtol=1e-15)
    np.testing.assert_allclose(q.correlation(1e-300, 0.25, 1e300), 0.25, rtol=1e-15)
    np.testing.assert_allclose(q.correlation(1e-300, -0.5e-300, 1e-300), -0.5, rtol=1e-15)
    assert q.correlation(0.0, 0.0, 1e300) == 0.0
    x = np.array([0.3, 2.0, 7.5])
    np.testing.assert_array_equal(q.correlation(x[:, None], 0.4, x[None, :]),
                                  np.clip(0.4 / np.sqrt(x[:, None] * x[None, :]), -1, 1))


def test_correlation_tables_at_scale():
    """Tables (many entries, one variance pair) at K = 1e-300 and direct fallback at K = 1e300 are right."""
    f = np.tanh
    c = np.linspace(-1, 1, 600)
    old = ct.MIN_ENTRIES_PER_TABLE
    ct.MIN_ENTRIES_PER_TABLE = 1
    try:
        tiny = ct.gauss2_product(f, f, 1e-300, c * 1e-300, 1e-300)
        np.testing.assert_allclose(tiny, c * 1e-300, rtol=1e-12, atol=0)  # tanh ≈ z: ⟨z_a z_b⟩ = K_ab
        assert ct.table(f, f, 1e-300, 1e-300) is not None
        diag = ct.gauss2_product(f, f, np.full((1, 1), 1e300), np.full((1, 3), 1e300), np.full((1, 3), 1e300))
        np.testing.assert_allclose(diag, 1.0, rtol=1e-12)
    finally:
        ct.MIN_ENTRIES_PER_TABLE = old


# --------------------------------------------------------------------------------------------- budget


def test_budget_stops_a_nonconverging_integrand():
    """tan(z) (poles on the real line) stops with a BudgetError naming the knob, instead of running for minutes."""
    with pytest.raises(BudgetError, match="NNFT_QUAD_BUDGET") as info:
        q.gauss1(lambda z: np.tan(z) ** 2, 2.0)
    assert "tan" in str(info.value) and "singular" in str(info.value)
    with pytest.raises(BudgetError, match="NNFT_QUAD_BUDGET"):
        q.gauss2_product(np.tan, np.tan, 2.0, 0.5, 2.0)
    with pytest.raises(BudgetError, match="NNFT_QUAD_BUDGET"):
        q.gauss2(lambda a, b: 1.0 / (a - b - 0.3), 1.0, 0.2, 1.0)


def test_budget_env_var_limits_work(monkeypatch):
    """A legitimate but costly request (sin at K = 1e4) is refused under a small budget, runs under the default."""
    f = np.sin
    monkeypatch.setenv(q.BUDGET_ENV, "1000")
    with pytest.raises(BudgetError, match="NNFT_QUAD_BUDGET"):
        q.gauss1(lambda z: f(z) ** 2, 1e4)
    monkeypatch.setenv(q.BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match="NNFT_QUAD_BUDGET"):
        q.gauss1(f, 1.0)
    monkeypatch.delenv(q.BUDGET_ENV)
    got = q.gauss1(lambda z: f(z) ** 2, 1e4)
    assert abs(got - 0.5 * (1 - math.exp(-2e4))) <= 1e-10


def test_long_quadrature_shows_progress(monkeypatch):
    """A quadrature call above the work threshold drives a tqdm bar over its entries."""
    import tqdm.auto

    seen = []

    class Bar:
        def __init__(self, total, **kw):
            self.total, self.n = total, 0
            seen.append(self)

        def update(self, k=1):
            self.n += k

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(q, "_PROGRESS_EVALS", 1.0)
    q.gauss2_product(np.tanh, np.tanh, np.array([1e300, 1.0, 1e-300]), 0.3, 1.0)
    assert len(seen) == 1 and seen[0].total == 3 and seen[0].n == 3


# --------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("act", ["relu", "swish"])
def test_kernels_psd_across_scales_fast(act, rng):
    """A fast subset of the slow test below: a closed form, and swish (issue 12: 242 s at P = 3, now seconds)."""
    _kernels_check(act, rng)


def _psd_normalised(K):
    d = np.sqrt(np.diag(K))
    return np.linalg.eigvalsh(K / d[:, None] / d[None, :]).min()


_CLOSED_NAN = pytest.mark.xfail(reason="closed-form erf Θ and gelu K overflow inside the arcsine form at K ≳ 1e140 "
                                 "(refused with a DivergenceError although finite): open, needs a cancellation-free "
                                 "arcsine argument (see docs/refusals.md)", strict=False)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "relu", pytest.param("erf", marks=_CLOSED_NAN),
                                 pytest.param("gelu", marks=_CLOSED_NAN), "monomial(2)", "sigmoid", "softplus",
                                 "swish", "z*tanh(z)"])
def test_kernels_finite_symmetric_psd_across_scales(act, rng):
    """Inputs of norms 1e±150 mixed with unit ones: finite, symmetric, PSD, or a DivergenceError that says why."""
    _kernels_check(act, rng)


def _kernels_check(act, rng):
    a, b = rng.standard_normal(4), rng.standard_normal(4)
    x = np.array([a / 1e150, b * 1e150, a])
    try:
        r = nnft.MLP(act, depth=3).kernels(x)
    except DivergenceError as exc:  # monomial(2): ⟨z⁴⟩ = 3K² overflows at K ~ 1e300; z·tanh z: K² underflows
        assert act in ("monomial(2)", "z*tanh(z)")
        assert ("overflows float64" in str(exc) or "underflows float64" in str(exc)) and "rescale" in str(exc)
        return
    for arr in (r.K, r.Theta):
        assert np.all(np.isfinite(arr))
        np.testing.assert_array_equal(arr, np.swapaxes(arr, 1, 2))
        for k in arr:
            assert _psd_normalised(k) >= -1e-12


def test_tanh_kernel_diagonal_at_huge_input():
    """Issue 12 item 3: K^(2) = ⟨tanh²⟩ ≈ 1 and Θ^(2) = ⟨tanh²⟩ + ⟨tanh′²⟩K at K^(1) = 1e155 (was −2.4e-33 and 1.05)."""
    x = np.array([[math.sqrt(1e155)]])
    for cb in (0.0, 0.1):
        r = nnft.MLP("tanh", depth=2, C_b=cb).kernels(x)
        K1 = float(x[0, 0] ** 2)
        t2 = 1.0 - 2.0 / math.sqrt(2 * math.pi * K1)
        assert abs(r.K[1, 0, 0] - (cb + t2)) <= 1e-12
        theta = t2 + 4.0 / 3.0 / math.sqrt(2 * math.pi * K1) * K1
        assert abs(r.Theta[1, 0, 0] - theta) <= 1e-12 * theta


def test_tanh_kernel_mixed_scales_is_psd_and_matches_reference(rng):
    """Issue 12 item 3: batch [a/1e150, b·1e150, a] (K had eigenvalue −0.14); layer 2 entries against asymptotics."""
    a, b = rng.standard_normal(4), rng.standard_normal(4)
    x = np.array([a / 1e150, b * 1e150, a])
    r = nnft.MLP("tanh", depth=2).kernels(x)
    K1 = x @ x.T / 4
    assert _psd_normalised(r.K[1]) >= -1e-12
    # entry (0, 1): z_a tiny, so ⟨tanh z_a tanh z_b⟩ = K_ab⟨tanh′(z_b)⟩ = K_ab·2/√(2π K_bb) to O(K_aa)
    ref01 = K1[0, 1] * 2 / math.sqrt(2 * math.pi * K1[1, 1])
    assert abs(r.K[1, 0, 1] - ref01) <= 1e-12 * math.sqrt(r.K[1, 0, 0] * r.K[1, 1, 1])
    # entry (1, 2): z_b = N(0, |a|²/4), z_a huge: ⟨sign(z_a) tanh(z_b)⟩ = E[tanh(z_b) erf-type], checked by mpmath
    c = K1[1, 2] / math.sqrt(K1[1, 1] * K1[2, 2])
    s_b = mp.sqrt(K1[2, 2])
    # sign(z_a) with z_a = s_a(c' v + ε' w) given z_b = s_b v: E[sign | v] = erf(c v/(ε √2))
    eps = math.sqrt(1 - c * c)
    ref12 = mp.quad(lambda v: mp.tanh(s_b * v) * mp.erf(c * v / (eps * mp.sqrt(2))) * mp.npdf(v), [-mp.inf, 0, mp.inf])
    assert abs(r.K[1, 1, 2] - float(ref12)) <= 1e-12


def test_huge_inputs_blame_the_input_scale_not_depth():
    """Issue 12 item 10: |x|² ~ 1e310 names the input scale and layer 1, and says to rescale."""
    with pytest.raises(DivergenceError, match="layer 1") as info:
        nnft.MLP("relu", depth=3).kernels(np.array([[1e155, 1.0]]))
    msg = str(info.value)
    assert "input scale" in msg and "rescale" in msg and "depth" in msg and "not the depth" in msg


def test_growth_overflow_names_the_layer():
    """An overflow that appears only after a few layers names that layer."""
    with pytest.raises(DivergenceError, match=r"K\^\(2\) is not finite: it overflows float64 .* at layer 2"):
        nnft.MLP("monomial(3)", depth=4).kernels(np.array([[1e100, 1.0]]))


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_tiny_inputs_are_not_a_silent_zero_kernel(act):
    """Issue 12 item 10: inputs at 1e-200 (|x|² underflows) raise instead of returning K = 0; with C_b > 0 K = C_b."""
    x = np.array([[1e-200, 0.0], [0.0, 0.0]])
    with pytest.raises(DivergenceError, match="underflows float64") as info:
        nnft.MLP(act, depth=2).kernels(x)
    assert "rescale" in str(info.value)
    r = nnft.MLP(act, depth=2, C_b=0.1).kernels(x)
    assert r.K[0, 0, 0] == 0.1  # C_b + C_W·1e-400 is C_b to rounding: right, not silent
    r = nnft.MLP(act, depth=2).kernels(np.array([[1e-150, 0.0], [0.0, 0.0]]))  # |x|² = 5e-301: normal, fine
    assert r.K[0, 0, 0] == pytest.approx(0.5e-300, rel=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_kinked_ntk_diagonal_exact_at_1e300(backend):
    """|z| with C_b = 1e300: Θ^{(3)} = 2e300 + 3e300 exactly (found by the property test: it was 6e-9 low).

    The correlation on the diagonal must be exactly 1 at any scale, so the geometric mean √(K·K) of the
    overflowing product has to return K exactly (scaled by powers of two, not √K·√K).
    """
    net = nnft.MLP("abs", depth=3, C_b=[1e300, 1e300, 0.0], C_W=1.0)
    k = net.kernels(np.array([[0.0], [1.0]]), backend=backend)
    np.testing.assert_allclose(k.Theta[-1], np.full((2, 2), 5e300), rtol=1e-15)
    a = np.array([2e300, 3e-300, 7.7e200, 1e-160])
    assert np.array_equal(rt.geomean(a, a), a)
