"""Criticality: critical points, universality classes, ν, depth scales, phase diagrams, bad input.

Independent routes: ``criticality_reference`` (pure mpmath/numpy, hand-written σ and σ', χ_∥ by Gaussian
integration by parts, its own root finding and iteration; shares no code with nnft), the library's own
V recursion (:func:`nnft.finite_width.four_point`) iterated to depth 100–200, the kernel recursion
(``net.kernels``) for the depth scales, and exact values (relu, linear, leaky relu).
"""

from __future__ import annotations

import math

import criticality_reference as ref
import numpy as np
import pytest
import sympy as sp

import nnft
from nnft.criticality import (
    HALF_STABLE,
    K_STAR_ZERO,
    SCALE_INVARIANT,
    criticality,
    depth_scales,
    fixed_points,
    phase_diagram,
    phase_grid,
)
from nnft.criticality.single_input import single_input
from nnft.errors import InputError, NetworkError
from nnft.finite_width import four_point


def _one(act, **kw):
    pts = criticality(act, **kw)
    assert len(pts) == 1, pts
    return pts[0]


# ------------------------------------------------------------------ known critical points
@pytest.mark.parametrize("act, C_W, cls", [("tanh", 1.0, K_STAR_ZERO), ("sin", 1.0, K_STAR_ZERO),
                                           ("erf", math.pi / 4, K_STAR_ZERO), ("linear", 1.0, SCALE_INVARIANT),
                                           ("relu", 2.0, SCALE_INVARIANT)])
def test_known_critical_points(act, C_W, cls):
    cp = _one(act)
    assert cp.universality_class == cls
    assert cp.C_b == 0.0 and cp.C_W == pytest.approx(C_W, rel=1e-14)
    assert cp.K_star == (0.0 if cls == K_STAR_ZERO else None)


@pytest.mark.parametrize("a", ["1/100", "1/5", "1/2", "0.3"])
def test_leaky_relu_critical_point_and_nu_exact(a):
    act = nnft.activation("leaky_relu", a=a)
    cp = _one(act)
    aa = sp.nsimplify(a)
    assert cp.universality_class == SCALE_INVARIANT
    assert sp.simplify(sp.nsimplify(cp.C_W) - 2 / (1 + aa ** 2)) == 0 or cp.C_W == pytest.approx(
        float(2 / (1 + aa ** 2)), rel=1e-15)
    A2, A4 = (1 + aa ** 2) / 2, (1 + aa ** 4) / 2
    assert sp.simplify(cp.nu_exact - (3 * A4 / A2 ** 2 - 1)) == 0
    assert sp.simplify(cp.coefficients["A2"] - A2) == 0 and sp.simplify(cp.coefficients["A4"] - A4) == 0


def test_leaky_relu_fourth_moment_is_exact():
    """Regression: the arc-cosine single-input moment was passed through nsimplify, which rounded 3(1 + a⁴)/2 to 3/2."""
    from nnft.gaussian import Kaa, expect_single

    act = nnft.activation("leaky_relu")
    assert sp.simplify(expect_single(act.expr ** 2, act.expr ** 2) - sp.Rational(3, 2) * (1 + sp.Rational(1, 100) ** 4)
                       * Kaa ** 2) == 0


@pytest.mark.parametrize("act", ["gelu", "swish"])
def test_half_stable_points_against_independent_reference(act):
    cp = _one(act)
    r = ref.critical_point(act, dps=30)
    assert cp.universality_class == HALF_STABLE
    for got, want in ((cp.C_b, r.C_b), (cp.C_W, r.C_W), (cp.K_star, r.K_star)):
        assert got == pytest.approx(float(want), rel=1e-10)
    assert max(abs(v) for v in cp.residuals.values()) < 1e-10
    # the reference's own (independent) residuals at what nnft reports
    res = ref.criticality_residuals(act, cp.C_b, cp.C_W, cp.K_star, dps=30)
    assert max(abs(float(v)) for v in (res.values() if isinstance(res, dict) else res)) < 1e-9


def test_swish_value_is_the_self_consistent_one():
    cp = _one("swish")
    assert cp.C_b == pytest.approx(0.5551, abs=1e-4), "published 0.0555… does not satisfy the fixed-point equations"
    K = np.array([cp.K_star])
    si = single_input("swish")
    assert abs(cp.C_b + cp.C_W * si.at("g", K)[0] - cp.K_star) < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("act", ["gelu", "swish"])
def test_mpmath_path_agrees_with_generated_path_to_ten_digits(act):
    fast = _one(act)
    hi = _one(act, dps=30)
    for name in ("C_b", "C_W", "K_star"):
        assert getattr(hi, name) == pytest.approx(getattr(fast, name), rel=1e-10)
    assert max(abs(v) for v in hi.residuals.values()) < 1e-25
    want = ref.critical_point(act, dps=30)
    assert abs(hi.mp["K_star"] - want.K_star) < 1e-25 * want.K_star
    assert abs(hi.mp["C_b"] - want.C_b) < 1e-24


def test_gelu_critical_K_star_is_three_plus_root_17_over_2():
    """An observation the two routes share: gelu's χ_∥ = χ_⊥ root is (3 + √17)/2 to all digits."""
    assert _one("gelu").K_star == pytest.approx((3 + math.sqrt(17)) / 2, rel=1e-13)


# ------------------------------------------------------------------ universality and ν
@pytest.mark.parametrize("act, nu", [("tanh", sp.Rational(2, 3)), ("sin", sp.Rational(2, 3)),
                                     ("erf", sp.Rational(2, 3)), ("relu", sp.Integer(5)), ("linear", sp.Integer(2)),
                                     ("abs", sp.Integer(2))])
def test_nu_is_derived_exactly(act, nu):
    cp = _one(act)
    assert cp.nu_exact == nu and cp.nu == float(nu)


def test_k_star_zero_expansion_coefficients():
    cp = _one("tanh")
    assert cp.coefficients["a1"] == -2 and cp.coefficients["b1"] == -2 and cp.coefficients["p_perp"] == 1
    s = _one("sin")
    assert s.coefficients["a1"] == -1 and s.coefficients["b1"] == -1
    assert sp.simplify(cp.depth.c - sp.Rational(1, 2)) == 0  # K ≈ 1/(2ℓ)


@pytest.mark.parametrize("act, C_W", [("tanh", 1.0), ("sin", 1.0), ("relu", 2.0), ("linear", 1.0)])
def test_nu_visible_in_the_V_recursion_at_depth_100(act, C_W):
    """V/K² of the library's V recursion grows as ν ℓ; the slope over ℓ = 50..100 and the reference's iteration."""
    net = nnft.MLP(act, depth=100, width=100, C_b=0.0, C_W=C_W)
    x = np.ones((1, 1))
    V = four_point(net, x, layers="all")[:, 0, 0, 0, 0]
    K = np.array([float(k) for k in net.kernels(x, ntk=False).K[:, 0, 0]])
    R = V / K ** 2
    slope = (R[99] - R[49]) / 50
    nu = _one(act).nu
    assert slope == pytest.approx(nu, rel=0.01)
    _, _, nus = ref.nu_by_iteration(act, 0.0, C_W, 1.0, 100)
    assert R[99] / 100 == pytest.approx(nus[99], rel=1e-9)


def test_half_stable_depth_behaviour_matches_iteration():
    """Half-stable (gelu): below the crossover depth V/K² grows with the marginal slope ν_pre, as iterated."""
    cp = _one("gelu")
    assert cp.coefficients["approach_from"] == "above" and cp.coefficients["crossover_depth"] > 100
    K0 = cp.K_star * 1.001
    Ks, Vs, _ = ref.nu_by_iteration("gelu", cp.C_b, cp.C_W, K0, 60)
    slope = (Vs[59] / Ks[59] ** 2 - Vs[29] / Ks[29] ** 2) / 30
    assert slope == pytest.approx(cp.coefficients["nu_preasymptotic"], rel=0.01)
    assert cp.nu == pytest.approx(cp.coefficients["nu_preasymptotic"] / 5, rel=1e-12)  # ν = C_W²F/(5K*²)


def test_k_star_zero_approach_one_over_two_ell():
    """Iterating the generated g(K) at criticality: ℓ K_ℓ → −1/a₁ = 1/2 for tanh (log corrections: 3 % at 3000)."""
    si = single_input("tanh")
    K = 1.0
    for _ in range(3000):
        K = float(si.at("g", np.array([K]))[0])
    assert 3000 * K == pytest.approx(0.5, rel=0.03)


# ------------------------------------------------------------------ fixed points and depth scales
@pytest.mark.parametrize("C_b, C_W, phase", [(0.05, 0.8, "ordered"), (0.05, 2.0, "chaotic")])
def test_depth_scales_against_reference(C_b, C_W, phase):
    ds = depth_scales("tanh", C_b, C_W)
    r = ref.depth_scale_reference("tanh", C_b, C_W)
    assert ds.phase == phase == r["phase"]
    assert ds.K_star == pytest.approx(r["K_star"], rel=1e-11)
    assert ds.xi_K == pytest.approx(r["xi_par"], rel=1e-9)
    assert ds.rho_star == pytest.approx(r["rho_star"], rel=1e-9, abs=1e-12)
    assert ds.xi_c == pytest.approx(r["xi_c"], rel=1e-8)


@pytest.mark.parametrize("act, C_b, C_W", [("tanh", 0.05, 0.8), ("tanh", 0.05, 2.0), ("erf", 0.1, 3.0),
                                           ("gelu", 0.1, 1.5), ("relu", 0.1, 1.5)])
def test_depth_scales_agree_with_the_iterated_kernel_recursion(act, C_b, C_W):
    """Fit the approach to the fixed points in net.kernels: |K_ℓ − K*| ∝ e^{−ℓ/ξ_K}, |ρ_ℓ − ρ*| ∝ e^{−ℓ/ξ_c}."""
    ds = depth_scales(act, C_b, C_W)
    L = 100
    net = nnft.MLP(act, depth=L, width=10, C_b=C_b, C_W=C_W)
    # two inputs, each with K^(1) = 1.05 K* (single-input flow), correlated near ρ* (the linear regime of the flow)
    q = (ds.K_star * 1.05 - C_b) / C_W
    c0 = ds.rho_star - 0.02 if ds.phase == "chaotic" else 0.95
    x = np.sqrt(q) * np.array([[1.0, 0.0], [c0, np.sqrt(1 - c0 ** 2)]]) * np.sqrt(2)
    K = net.kernels(x, ntk=False).K
    dK = np.abs(np.array([float(k) for k in K[:, 0, 0]]) - ds.K_star)
    ell = np.arange(1, L + 1)
    ok = (dK > 1e-12 * ds.K_star) & (ell > 3)
    rate = -np.polyfit(ell[ok][:8], np.log(dK[ok][:8]), 1)[0]
    assert 1 / rate == pytest.approx(ds.xi_K, rel=0.03)
    rho = np.array([float(K[i, 0, 1] / np.sqrt(K[i, 0, 0] * K[i, 1, 1])) for i in range(L)])
    d = np.abs(rho - ds.rho_star)
    sel = np.flatnonzero((ell > 10) & (d > 1e-9))[:40]
    rate = -np.polyfit(ell[sel], np.log(d[sel]), 1)[0]
    assert 1 / rate == pytest.approx(ds.xi_c, rel=0.05)


def test_fixed_points_and_stability():
    fps = fixed_points("tanh", 0.05, 0.8)
    assert len(fps) == 1 and fps[0].stable
    r = ref.depth_scale_reference("tanh", 0.05, 0.8)
    assert fps[0].chi_perp == pytest.approx(r["chi_perp"], rel=1e-10)
    both = fixed_points("tanh", 0.0, 1.5)  # K* = 0 (unstable, χ_∥ = 1.5) and a stable K* > 0
    assert [fp.K_star == 0 for fp in both] == [True, False]
    assert not both[0].stable and both[1].stable


def test_scale_invariant_at_criticality_is_marginal():
    ds = depth_scales("relu", 0.0, 2.0, K0=3.0)
    assert ds.K_star == 3.0 and ds.phase == "critical" and math.isinf(ds.xi_K) and math.isinf(ds.xi_c)


def test_network_methods():
    net = nnft.MLP("tanh", depth=10, width=50, C_b=0.05, C_W=2.0)
    assert net.depth_scales().phase == "chaotic"
    assert net.criticality()[0].universality_class == K_STAR_ZERO
    with pytest.raises(NetworkError, match="same"):
        nnft.MLP("tanh", depth=3, width=5, C_W=[1.0, 1.0, 2.0]).depth_scales()
    g = nnft.MLP("tanh", depth=20, width=100, C_b=0.0, C_W=1.0).depth_to_width_guidance(tolerance=0.1)
    assert g.nu == pytest.approx(2 / 3) and g.max_depth == 15 and g.min_width == 134
    assert g.vertex_ratio == pytest.approx(g.nu * 19 / 100, rel=0.15)
    relu = nnft.MLP("relu", depth=21, width=100, C_b=0.0, C_W=2.0).depth_to_width_guidance()
    assert relu.vertex_ratio == pytest.approx(5 * 20 / 100, rel=1e-12)  # exact: V/K² = 5(L − 1)


def test_callable_package_and_display():
    pts = nnft.criticality("tanh")
    assert pts == nnft.criticality.criticality("tanh")
    cp = pts[0]
    assert r"\nu = \frac{2}{3}" in cp.latex() and cp._repr_latex_().startswith("$")
    assert "K*=0" in repr(cp)
    assert "chaotic" in depth_scales("tanh", 0.05, 2.0).latex()


# ------------------------------------------------------------------ phase diagram
def test_phase_lines_are_where_chi_equals_one_by_iteration():
    """Points on the parametric χ_⊥ = 1 line: iterating the recursion there (phase_grid) lands on χ_⊥ = 1."""
    pd = phase_diagram("tanh", K_range=(0.05, 3.0), n=12)
    line = pd.chi_perp_line
    assert line.valid.all()
    for cw, cb, K in zip(line.C_W[::3], line.C_b[::3], line.K_star[::3], strict=True):
        g = phase_grid("tanh", [cw], [cb], K0=K * 1.3)
        assert g["converged"][0, 0]
        assert g["K_star"][0, 0] == pytest.approx(K, rel=1e-8)
        assert g["chi_perp"][0, 0] == pytest.approx(1.0, abs=1e-8)
    d = pd.as_dict()
    assert d["critical_points"][0]["class"] == K_STAR_ZERO


def test_gelu_lines_meet_at_its_critical_point():
    pd = phase_diagram("gelu", K_range=(0.5, 20.0), n=800)
    cp = pd.critical_points[0]
    gap = np.hypot(pd.chi_perp_line.C_W - pd.chi_par_line.C_W, pd.chi_perp_line.C_b - pd.chi_par_line.C_b)
    i = int(np.argmin(gap))
    assert pd.chi_perp_line.K_star[i] == pytest.approx(cp.K_star, rel=0.01)
    assert pd.chi_perp_line.C_W[i] == pytest.approx(cp.C_W, rel=1e-4)


def test_plots_return_figures(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from nnft import plot

    fig = plot.phase_diagram("erf", resolution=24)
    fig.savefig(tmp_path / "pd.png")
    fig2 = plot.depth_profile(nnft.MLP("tanh", depth=8, width=20))
    fig2.savefig(tmp_path / "dp.png")
    assert (tmp_path / "pd.png").stat().st_size > 5000 and len(fig2.axes) == 3


# ------------------------------------------------------------------ bad input
def test_step_has_no_critical_point_with_reason():
    pts = criticality("step")
    assert pts == [] and "Dirac" in pts.explanation
    assert math.isinf(fixed_points("step", 0.1, 1.0)[0].chi_perp)


@pytest.mark.parametrize("act", ["sigmoid", "softplus", "monomial"])
def test_no_criticality_is_an_explained_empty_list(act):
    pts = criticality(act)
    assert pts == [] and "no critical initialisation" in pts.explanation


def test_no_fixed_point():
    fps = fixed_points("exp", 0.1, 1.0)
    assert fps == [] and "grows without bound" in fps.explanation
    with pytest.raises(InputError, match="no fixed point"):
        depth_scales("exp", 0.1, 1.0)


@pytest.mark.parametrize("C_W", [0.0, -1.0, float("nan"), float("inf"), "x"])
def test_bad_C_W(C_W):
    with pytest.raises(InputError, match="C_W"):
        fixed_points("tanh", 0.0, C_W)
    with pytest.raises(InputError, match="C_W"):
        depth_scales("tanh", 0.0, C_W)


def test_bad_arguments():
    with pytest.raises(InputError, match="C_b"):
        fixed_points("tanh", -0.1, 1.0)
    with pytest.raises(InputError, match="K_range"):
        criticality("tanh", K_range=(1.0, 0.5))
    with pytest.raises(InputError, match="dps"):
        criticality("gelu", dps=5)
    with pytest.raises(InputError, match="C_W and C_b"):
        phase_grid("tanh", [1.0, -1.0], [0.0])
    with pytest.raises(InputError, match="jumps"):
        phase_diagram("sign")


@pytest.mark.slow
def test_half_stable_asymptotics_by_iteration_to_depth_200000():
    """gelu far beyond its crossover depth: ℓ(K_ℓ − K*) → c = −1/f₂ and d(V/K²)/dℓ → ν = C_W²F/(5K*²) (slowly, ~1/ℓ)."""
    cp = _one("gelu")
    L = 200_000
    Ks, Vs, _ = ref.nu_by_iteration("gelu", cp.C_b, cp.C_W, cp.K_star * 1.2, L)
    assert L * (Ks[-1] - cp.K_star) == pytest.approx(float(cp.depth.c), rel=0.2)
    slope = (Vs[-1] / Ks[-1] ** 2 - Vs[L // 2 - 1] / Ks[L // 2 - 1] ** 2) / (L - L // 2)
    assert slope == pytest.approx(cp.nu, rel=0.06)
    assert abs(slope - cp.nu) < abs(slope - cp.coefficients["nu_preasymptotic"]) / 20


def test_user_sympy_expression():
    """A user's σ = 2 tanh(z/2) (sympy): K* = 0 class with a₁ = 3·2σ₁σ₃/σ₁² = −1/2 (σ₃ = −1/12), C_W = 1, ν = 2/3."""
    from nnft.activations import z

    cp = _one(nnft.activation(2 * sp.tanh(z / 2)))
    assert cp.universality_class == K_STAR_ZERO and cp.C_W == 1.0
    assert cp.coefficients["a1"] == sp.Rational(-1, 2) and cp.nu_exact == sp.Rational(2, 3)
    text = _one("2*tanh(z/2)")
    assert text.coefficients["a1"] == sp.Rational(-1, 2)
