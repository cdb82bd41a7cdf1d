"""Depth scales off criticality: how fast the kernel and two-input correlations reach their fixed points.

One input: near a stable fixed point ``K_ℓ − K* ∝ χ_∥(K*)^ℓ = e^{−ℓ/ξ_K}``, ``ξ_K = −1/ln χ_∥(K*)``.
Two inputs with both diagonals at ``K*``: the correlation ``ρ = K_12/K*`` follows
``ρ ↦ (C_b + C_W⟨σ(z_1)σ(z_2)⟩_{K*, ρK*})/K*``, whose slope is ``C_W⟨σ'(z_1)σ'(z_2)⟩`` (Price's theorem).
At ``ρ = 1`` the slope is ``χ_⊥(K*)``: for ``χ_⊥ < 1`` (ordered phase) ρ → 1, for ``χ_⊥ > 1`` (chaotic phase)
ρ → ρ* < 1, with depth scale ``ξ_c = −1/ln(slope at the attracting ρ*)``; ``χ_⊥ = 1`` is the
order–chaos boundary, where ξ_c diverges (Poole et al. 2016, arXiv:1606.05340; Schoenholz et al. 2017,
arXiv:1611.01232; PDLT §5.1 in these conventions, CONVENTIONS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq

from nnft.activations import Activation, activation
from nnft.criticality.points import FixedPoint, _param, fixed_points
from nnft.criticality.single_input import single_input
from nnft.errors import InputError

ORDERED, CHAOTIC, CRITICAL = "ordered", "chaotic", "critical"


@lru_cache(maxsize=64)
def _pair_maps(act: Activation):
    """``⟨σ_aσ_b⟩`` and ``⟨σ'_aσ'_b⟩`` compiled over (K_aa, K_ab, K_bb) through the generated-code path."""
    from nnft.codegen.module import compile_function
    from nnft.gaussian import Kaa, Kab, Kbb, expect_pair

    return compile_function({"ss": expect_pair(act.expr, act.expr), "dd": expect_pair(act.derivative, act.derivative)},
                            (Kaa, Kab, Kbb), name=f"correlation_{act.name}")


def correlation_map(act: Activation | str, C_b: float, C_W: float, K_star: float, rho):
    """``(ρ', slope)`` of the two-input correlation map at diagonal ``K*``: ρ' = (C_b + C_W⟨σσ⟩)/K*, slope C_W⟨σ'σ'⟩."""
    act = activation(act)
    rho = np.clip(np.asarray(rho, dtype=np.float64), -1.0, 1.0)
    m = _pair_maps(act)
    K = np.full(rho.shape, float(K_star))
    return (C_b + C_W * m.ss(K, rho * K, K)) / K_star, C_W * m.dd(K, rho * K, K)


def _xi(slope: float) -> float:
    """``−1/ln|slope|`` (inf at |slope| = 1; 0 at slope 0)."""
    a = abs(slope)
    if a == 0:
        return 0.0
    if abs(a - 1) < 1e-10:
        return math.inf
    return -1.0 / math.log(a)


@dataclass(frozen=True)
class DepthScales:
    """Fixed point reached from ``K0``, its susceptibilities, phase, and depth scales ``xi_K`` and ``xi_c``.

    ``rho_star`` is the attracting correlation of two inputs (1 in the ordered phase), ``chi_c`` the slope
    of the correlation map there; ``xi_K = −1/ln χ_∥``, ``xi_c = −1/ln χ_c`` (``inf`` at a marginal point).
    """

    activation: Activation
    C_b: float
    C_W: float
    fixed_point: FixedPoint
    phase: str
    rho_star: float
    chi_c: float
    xi_K: float
    xi_c: float

    @property
    def K_star(self) -> float:
        return self.fixed_point.K_star

    def latex(self) -> str:
        """The fixed point, phase and depth scales as LaTeX."""
        def f(x):
            return r"\infty" if math.isinf(x) else f"{x:.6g}"
        return (rf"K^* = {self.K_star:.8g},\ \chi_\parallel = {self.fixed_point.chi_par:.6g},\ "
                rf"\chi_\perp = {self.fixed_point.chi_perp:.6g}\ (\text{{{self.phase}}}),\ "
                rf"\xi_K = {f(self.xi_K)},\ \rho^* = {self.rho_star:.6g},\ \xi_c = {f(self.xi_c)}")

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"


def attracting_fixed_point(act: Activation | str, C_b: float, C_W: float, K0: float, **kw) -> FixedPoint:
    """The fixed point the one-input recursion reaches from ``K0`` (the map ``K ↦ C_b + C_W g(K)`` is increasing)."""
    act = activation(act)
    si = single_input(act)
    g0 = float(si.at("g", np.array([K0]))[0])
    if abs(C_b + C_W * g0 - K0) <= 1e-13 * K0:  # K0 is a fixed point (every K is: scale-invariant σ, C_b = 0)
        a = np.array([K0])
        return FixedPoint(act, C_b, C_W, K0, float(C_W * si.at("dg", a)[0]), float(C_W * si.at("perp", a)[0]))
    fps = fixed_points(act, C_b, C_W, **kw)
    if not fps:
        raise InputError(f"the kernel of {act.name} at C_b={C_b:g}, C_W={C_W:g} has no fixed point: {fps.explanation}. "
                         "Depth scales exist only where K converges; lower C_W")
    up = C_b + C_W * g0 >= K0
    for fp in (fps if up else reversed(fps)):
        if (fp.K_star >= K0 * (1 - 1e-12)) if up else (fp.K_star <= K0 * (1 + 1e-12)):
            return fp
    raise InputError(f"from K0 = {K0:g} the kernel of {act.name} at C_b={C_b:g}, C_W={C_W:g} "
                     f"{'grows without bound' if up else 'has no fixed point below'}: no depth scale; lower C_W")


def depth_scales(act: Activation | str, C_b: float, C_W: float, *, K0: float | None = None, grid: int = 400,
                 **kw) -> DepthScales:
    """Phase and depth scales of ``act`` at ``(C_b, C_W)``, for inputs whose first-layer kernel is ``K0``.

    ``K0`` defaults to ``C_b + C_W`` (inputs with ``x·x/n_0 = 1``). Scale-invariant σ at criticality have
    a line of fixed points: then ``K* = K0`` and both scales are infinite.
    """
    act = activation(act)
    C_b, C_W = _param("C_b", C_b, positive=False), _param("C_W", C_W, positive=True)
    K0 = C_b + C_W if K0 is None else _param("K0", K0, positive=True)
    fp = attracting_fixed_point(act, C_b, C_W, K0, **kw)
    if fp.K_star == 0.0:
        raise InputError(f"{act.name} at C_b = 0, C_W = {C_W:g} flows to K* = 0: two-input correlations are then "
                         "set by the K* = 0 expansion (criticality(...)), not by a finite depth scale")
    K = fp.K_star
    if math.isinf(fp.chi_perp):
        raise InputError(f"χ_⊥ is infinite for {act.name} (σ jumps): the correlation map is not differentiable")
    if abs(fp.chi_perp - 1) < 1e-9:
        phase, rho, slope = CRITICAL, 1.0, fp.chi_perp
    elif fp.chi_perp < 1:
        phase, rho, slope = ORDERED, 1.0, fp.chi_perp
    else:
        phase = CHAOTIC
        rs = np.linspace(-1.0, 1.0 - 1e-6, grid)
        r, _ = correlation_map(act, C_b, C_W, K, rs)
        d = r - rs
        roots = []
        for i in np.nonzero(np.sign(d[:-1]) * np.sign(d[1:]) <= 0)[0]:
            a, b = float(rs[i]), float(rs[i + 1])

            def fr(x: float) -> float:
                return float(correlation_map(act, C_b, C_W, K, np.array([x]))[0][0] - x)

            x = a if d[i] == 0 else brentq(fr, a, b, xtol=1e-15)
            s = float(correlation_map(act, C_b, C_W, K, np.array([x]))[1][0])
            if abs(s) < 1:
                roots.append((x, s))
        if not roots:
            raise InputError(f"{act.name} at C_b={C_b:g}, C_W={C_W:g}: chaotic (χ_⊥ = {fp.chi_perp:.4g}) but no "
                             "attracting correlation fixed point in [−1, 1) was found")
        rho, slope = max(roots)  # the one reached from nearly parallel inputs
    return DepthScales(act, C_b, C_W, fp, phase, rho, slope, _xi(fp.chi_par), _xi(slope))


__all__ = ["CHAOTIC", "CRITICAL", "ORDERED", "DepthScales", "attracting_fixed_point", "correlation_map",
           "depth_scales"]
