"""Fixed points of the one-input kernel map and the critical initialisations of an activation.

Fixed points: ``K* = C_b + C_W g(K*)`` with ``g(K) = ⟨σ²⟩_K``, stable when ``χ_∥(K*) = C_W g'(K*) < 1``.
Criticality: ``χ_∥(K*) = χ_⊥(K*) = 1`` (CONVENTIONS.md; PDLT ch. 5). Since ``χ_∥/C_W = g'`` and
``χ_⊥/C_W = ⟨σ'²⟩``, a critical point with ``K* > 0`` is a root of ``h(K) = g'(K) − ⟨σ'²⟩_K`` (one equation
in one unknown), after which ``C_W = 1/⟨σ'²⟩_{K*}`` and ``C_b = K* − C_W g(K*)``, valid when ``C_b ≥ 0``.
The K* = 0 and scale-invariant classes are found from the expansions of :mod:`.universality`. Every
function comes from the engine's symbolic ``g(K)`` and its derivatives (:mod:`.single_input`), never from
a table; roots are found on the generated float64 path (grid + Brent) and, with ``dps=``, refined by
mpmath root finding on the mpmath path. Each reported point carries the residuals of the three equations
evaluated at what is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp
from scipy.optimize import brentq

from nnft.activations import Activation, activation
from nnft.codegen.printers import latex as nnft_latex
from nnft.criticality.single_input import SingleInput, single_input
from nnft.criticality.universality import (
    DepthBehaviour,
    derive_depth_behaviour,
    k_star_zero_data,
    scale_invariant_data,
)
from nnft.errors import InputError

#: Universality-class labels.
SCALE_INVARIANT, K_STAR_ZERO, HALF_STABLE = "scale-invariant", "K*=0", "half-stable"


def _param(name: str, v, *, positive: bool) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a real number, got {v!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{name} must be finite, got {v!r}")
    if positive and x <= 0:
        raise InputError(f"{name} must be > 0 (the weight variance), got {x}: there is no network with {name} ≤ 0")
    if x < 0:
        raise InputError(f"{name} must be >= 0 (it is a variance), got {x}")
    return x


def _K_range(K_range) -> tuple[float, float]:
    try:
        lo, hi = (float(k) for k in K_range)
    except (TypeError, ValueError):
        raise InputError(f"K_range must be a pair (K_min, K_max), got {K_range!r}") from None
    if not (0 < lo < hi < math.inf):
        raise InputError(f"K_range must satisfy 0 < K_min < K_max < inf, got {K_range!r}")
    return lo, hi


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point ``K*`` of ``K ↦ C_b + C_W⟨σ²⟩_K`` with its susceptibilities; ``stable`` when ``χ_∥ < 1``."""

    activation: Activation
    C_b: float
    C_W: float
    K_star: float
    chi_par: float
    chi_perp: float

    @property
    def stable(self) -> bool:
        """Attracting under the one-input recursion (``χ_∥(K*) < 1``; ``χ_∥ = 1`` is marginal, reported False)."""
        return self.chi_par < 1 - 1e-12

    def latex(self) -> str:
        """``K^* = …,\\ χ_∥ = …,\\ χ_⊥ = …`` for this fixed point."""
        return (rf"K^* = {self.K_star:.10g},\quad \chi_\parallel = {self.chi_par:.10g},\quad "
                rf"\chi_\perp = {self.chi_perp:.10g}\quad (C_b = {self.C_b:.6g},\ C_W = {self.C_W:.6g})")

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __repr__(self) -> str:
        kind = "stable" if self.stable else "unstable"
        return (f"FixedPoint(K*={self.K_star:.10g}, chi_par={self.chi_par:.6g}, chi_perp={self.chi_perp:.6g}, {kind}; "
                f"σ = {self.activation.name}, C_b={self.C_b:g}, C_W={self.C_W:g})")


class Results(list):
    """A list of results with an ``explanation`` (why it is empty, or what was excluded)."""

    def __init__(self, items=(), explanation: str = "") -> None:
        super().__init__(items)
        self.explanation = explanation

    def __repr__(self) -> str:
        body = super().__repr__()
        return f"{body}  # {self.explanation}" if self.explanation else body


def _chi_perp(si: SingleInput, C_W: float, K: float) -> float:
    if si.activation.has_distributional_derivative:
        return math.inf  # σ jumps: σ' has a Dirac delta and ⟨σ'²⟩ diverges
    return float(C_W * si.at("perp", np.array([K]))[0])


def _g0(act: Activation) -> float:
    """``g(0) = σ(0)²`` (the K → 0 limit of ⟨σ²⟩_K)."""
    return float(act(np.array([0.0]))[0]) ** 2


def fixed_points(act: Activation | str, C_b: float, C_W: float, *, K_range=(1e-8, 1e4), grid: int = 600) -> Results:
    """All fixed points ``K* = C_b + C_W g(K*)`` in ``K_range`` (and ``K* = 0`` when ``C_b = 0 = σ(0)``), ascending.

    Found as sign changes of ``C_b + C_W g(K) − K`` on a log grid, refined by Brent's method; the result
    is an empty :class:`Results` with an explanation when there is none (K then grows without bound or
    the map has no fixed point in range).
    """
    act = activation(act)
    C_b, C_W = _param("C_b", C_b, positive=False), _param("C_W", C_W, positive=True)
    lo, hi = _K_range(K_range)
    si = single_input(act)
    out = []
    if C_b == 0 and _g0(act) == 0:
        K = lo * 1e-3  # χ's at K → 0: their limits, through the smallest K of the grid
        out.append(FixedPoint(act, C_b, C_W, 0.0, float(C_W * si.at("dg", np.array([K]))[0]), _chi_perp(si, C_W, K)))
    Ks = np.geomspace(lo, hi, grid)
    with np.errstate(all="ignore"):
        r = C_b + C_W * si.at("g", Ks) - Ks
    if not np.all(np.isfinite(r)):
        bad = Ks[~np.isfinite(r)][0]
        hi = float(bad)
        Ks, r = Ks[np.isfinite(r)], r[np.isfinite(r)]

    def resid(K: float) -> float:
        return float(C_b + C_W * si.at("g", np.array([K]))[0] - K)

    for i in np.nonzero(np.sign(r[:-1]) * np.sign(r[1:]) <= 0)[0]:
        if r[i] == 0 and i > 0 and r[i - 1] == 0:
            continue
        a, b = float(Ks[i]), float(Ks[i + 1])
        K = a if r[i] == 0 else (b if r[i + 1] == 0 else brentq(resid, a, b, xtol=1e-15, rtol=1e-15))
        if out and abs(K - out[-1].K_star) <= 1e-12 * max(1.0, K):
            continue
        out.append(FixedPoint(act, C_b, C_W, K, float(C_W * si.at("dg", np.array([K]))[0]), _chi_perp(si, C_W, K)))
    why = "" if out else (
        f"no fixed point of K ↦ {C_b:g} + {C_W:g}⟨σ²⟩_K for K in [{lo:g}, {hi:g}]: "
        + ("K grows without bound with depth" if r.size and r[-1] > 0 else "K decreases towards the lower end"))
    return Results(out, why)


@dataclass(frozen=True)
class CriticalPoint:
    """A critical initialisation ``(C_b, C_W, K*)`` with ``χ_∥(K*) = χ_⊥(K*) = 1`` and its universality class.

    ``K_star`` is ``None`` for the scale-invariant class, where every K is a fixed point at criticality.
    ``nu`` is the coefficient of ``V/(nK²) ≈ ν ℓ/n`` at large depth (:mod:`.universality`), ``nu_exact``
    its sympy value when the engine derived it exactly; ``coefficients`` the expansion data of the class
    (``a1, b1`` for K* = 0; ``A2, A4`` for scale-invariant; ``f2 = C_W g''(K*)/2`` for half-stable);
    ``residuals`` the three equations ``C_b + C_W g(K*) − K*``, ``χ_∥ − 1``, ``χ_⊥ − 1`` at the reported point.
    """

    activation: Activation
    C_b: float
    C_W: float
    K_star: float | None
    universality_class: str
    nu: float
    nu_exact: sp.Expr | None
    coefficients: dict = field(default_factory=dict)
    residuals: dict = field(default_factory=dict)
    depth: DepthBehaviour | None = None
    dps: int | None = None
    mp: dict = field(default_factory=dict, repr=False)

    def latex(self) -> str:
        """The critical point, its class and ν as LaTeX."""
        K = r"\text{any}" if self.K_star is None else f"{self.K_star:.12g}"
        nu = nnft_latex(self.nu_exact) if self.nu_exact is not None else f"{self.nu:.10g}"
        coef = ",\\ ".join(f"{_tex_name(k)} = {nnft_latex(v) if isinstance(v, sp.Basic) else f'{v:.10g}'}"
                           for k, v in self.coefficients.items())
        return (rf"C_b = {self.C_b:.12g},\ C_W = {self.C_W:.12g},\ K^* = {K}\quad"
                rf"\text{{({self.universality_class}; }}{coef}\text{{)}},\quad \nu = {nu}")

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __repr__(self) -> str:
        K = "any" if self.K_star is None else f"{self.K_star:.12g}"
        return (f"CriticalPoint({self.activation.name}: C_b={self.C_b:.12g}, C_W={self.C_W:.12g}, K*={K}, "
                f"class={self.universality_class!r}, nu={self.nu:.10g})")


def _tex_name(k: str) -> str:
    return {"a1": "a_1", "b1": "b_1", "A2": "A_2", "A4": "A_4", "f2": "f_2", "p_perp": "p_\\perp"}.get(k, k)


def _scale_invariant(act: Activation) -> CriticalPoint | None:
    d = scale_invariant_data(act)
    if d is None:
        return None
    Ks = sp.Symbol("K_star", positive=True)
    beh = derive_depth_behaviour(0, (d.F.subs(next(iter(d.F.free_symbols)), Ks),), Ks)
    nu = sp.simplify(beh.nu)
    C_W = sp.simplify(1 / d.A2)
    res = {"fixed_point": 0.0, "chi_par": 0.0, "chi_perp": float(C_W * d.A2 - 1)}
    return CriticalPoint(act, 0.0, float(C_W), None, SCALE_INVARIANT, float(nu), nu,
                         {"A2": d.A2, "A4": d.A4}, res, beh)


def _k_star_zero(act: Activation, notes: list[str]) -> CriticalPoint | None:
    d = k_star_zero_data(act)
    if d is None:
        return None
    a1 = float(d.a1)
    if not a1 < 0:
        notes.append(f"K* = 0 is a fixed point at C_b = 0, C_W = 1/σ'(0)² = {float(d.C_W):.6g}, but it repels from "
                     f"above (a1 = {a1:.6g} ≥ 0), so it is not a critical initialisation")
        return None
    beh = derive_depth_behaviour(d.a1, (0, 0, d.F2), 0)
    coef = {"a1": d.a1, "b1": d.b1, "p_perp": sp.simplify(d.b1 / d.a1)}  # χ_⊥ ≈ 1 − p_⊥/ℓ
    res = {"fixed_point": 0.0, "chi_par": 0.0, "chi_perp": 0.0}  # exact at K = 0: f(0) = 0, χ = C_W σ'(0)² = 1
    return CriticalPoint(act, 0.0, float(d.C_W), 0.0, K_STAR_ZERO, float(beh.nu), sp.simplify(beh.nu), coef, res,
                         beh)


def _residuals_float(si: SingleInput, C_b: float, C_W: float, K: float) -> dict:
    a = np.array([K])
    return {"fixed_point": float(C_b + C_W * si.at("g", a)[0] - K), "chi_par": float(C_W * si.at("dg", a)[0] - 1),
            "chi_perp": float(C_W * si.at("perp", a)[0] - 1)}


def _half_stable(si: SingleInput, K: float, dps: int | None) -> tuple[CriticalPoint | None, str]:
    act = si.activation
    mp = {}
    if dps is None:
        a = np.array([K])
        C_W = 1.0 / float(si.at("perp", a)[0])
        C_b = K - C_W * float(si.at("g", a)[0])
        f2 = C_W * float(si.at("d2g", a)[0]) / 2
        F0 = C_W ** 2 * float(si.at("F", a)[0])
        res = _residuals_float(si, C_b, C_W, K)
    else:
        with mpmath.workdps(dps + 10):
            Km = mpmath.findroot(lambda k: si.mp("h", k, dps + 5), mpmath.mpf(K), tol=mpmath.mpf(10) ** (-dps - 3))
            C_Wm = 1 / si.mp("perp", Km, dps + 5)
            C_bm = Km - C_Wm * si.mp("g", Km, dps + 5)
            res = {"fixed_point": float(C_bm + C_Wm * si.mp("g", Km, dps + 5) - Km),
                   "chi_par": float(C_Wm * si.mp("dg", Km, dps + 5) - 1),
                   "chi_perp": float(C_Wm * si.mp("perp", Km, dps + 5) - 1)}
            f2 = float(C_Wm * si.mp("d2g", Km, dps) / 2)
            F0 = float(C_Wm ** 2 * si.mp("F", Km, dps))
            mp = {"K_star": Km, "C_W": C_Wm, "C_b": C_bm}
            K, C_W, C_b = float(Km), float(C_Wm), float(C_bm)
    if C_b < -1e-12 * max(1.0, K):
        return None, f"χ_∥ = χ_⊥ at K* = {K:.10g}, but the fixed point needs C_b = {C_b:.6g} < 0"
    C_b = max(C_b, 0.0)
    beh = derive_depth_behaviour(sp.Float(f2, 17), (sp.Float(F0, 17),), sp.Float(K, 17))
    side = "below" if float(beh.c) < 0 else "above"
    # δ_ℓ = δ₀/(1 − f₂δ₀ℓ): for ℓ ≪ 1/|f₂K*| (δ₀ ~ K*) the map is ≈ marginal (χ_∥ ≈ 1) and
    # V/(nK²) ≈ (C_W²F(K*)/K*²) ℓ/n, the scale-invariant law; the 1/ℓ asymptotics (ν) set in beyond
    coef = {"f2": f2, "approach_from": side, "crossover_depth": 1 / abs(f2 * K), "nu_preasymptotic": F0 / K ** 2}
    cp = CriticalPoint(act, C_b, C_W, K, HALF_STABLE, float(beh.nu), None, coef, res, beh, dps, mp)
    return cp, ""


def criticality(act: Activation | str, *, K_range=(1e-6, 1e3), grid: int = 800, dps: int | None = None) -> Results:
    """All critical initialisations of ``act``: ``(C_b, C_W, K*)`` with ``χ_∥(K*) = χ_⊥(K*) = 1``, ``C_b ≥ 0``.

    Scale-invariant σ give one point (``K_star=None``: every K is then a fixed point); σ with σ(0) = 0,
    σ'(0) ≠ 0 and ``a₁ < 0`` give the K* = 0 point; every root ``K* ∈ K_range`` of ``χ_∥ = χ_⊥`` with
    ``C_b ≥ 0`` gives a half-stable point. ``dps``: refine the K* > 0 points with mpmath at that many
    digits (then ``.mp`` holds the mpf values). Returns a list (:class:`Results`) whose ``explanation``
    says why it is empty or what was left out. Source: PDLT ch. 5; conventions CONVENTIONS.md.
    """
    act = activation(act)
    lo, hi = _K_range(K_range)
    if dps is not None and (not isinstance(dps, int) or dps < 15):
        raise InputError(f"dps must be an integer >= 15 (mpmath digits), got {dps!r}")
    if act.has_distributional_derivative:
        return Results([], f"σ = {act.name} jumps (at z = {act.jumps[0]:g}): σ' contains a Dirac delta, so "
                           "χ_⊥ = C_W⟨σ'²⟩ is infinite and no initialisation is critical")
    si = single_input(act)
    scale = _scale_invariant(act)
    if scale is not None:
        return Results([scale], "scale-invariant σ: C_b = 0, C_W = 1/A2, and every K is a fixed point")
    notes: list[str] = []
    out = []
    kz = _k_star_zero(act, notes)
    if kz is not None:
        out.append(kz)
    Ks = np.geomspace(lo, hi, grid)
    with np.errstate(all="ignore"):
        h = si.at("h", Ks)
    ok = np.isfinite(h)
    if not ok.all():
        notes.append(f"χ_∥ − χ_⊥ is not finite for K ≥ {Ks[~ok][0]:.3g}: searched below")
        cut = int(np.argmin(ok))
        Ks, h = Ks[:cut], h[:cut]

    def hf(K: float) -> float:
        return float(si.at("h", np.array([K]))[0])

    scale_h = float(np.max(np.abs(h))) if h.size else 0.0
    for i in np.nonzero(np.sign(h[:-1]) * np.sign(h[1:]) < 0)[0]:
        K = brentq(hf, float(Ks[i]), float(Ks[i + 1]), xtol=1e-15, rtol=1e-15)
        cp, why = _half_stable(si, K, dps)
        if cp is None:
            notes.append(why)
        else:
            out.append(cp)
    if scale_h == 0.0 and not out:
        notes.append("χ_∥ = χ_⊥ holds identically in K: no isolated critical point")
    if not out:
        notes.insert(0, f"no critical initialisation: χ_∥ ≠ χ_⊥ for every K in [{lo:g}, {hi:g}] with C_b ≥ 0, and σ "
                        "is neither scale-invariant nor in the K* = 0 class")
    return Results(out, "; ".join(notes))


__all__ = ["HALF_STABLE", "K_STAR_ZERO", "SCALE_INVARIANT", "CriticalPoint", "FixedPoint", "Results", "criticality",
           "fixed_points"]
