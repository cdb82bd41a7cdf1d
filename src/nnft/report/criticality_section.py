"""The report's criticality section: the activation's critical points, where the network sits, its depth scales.

Conditions of CONVENTIONS.md (PDLT ch. 5): ``K* = C_b + C_W g(K*)``, ``χ_∥ = C_W g'(K*)``,
``χ_⊥ = C_W⟨σ'²⟩_{K*}``, criticality ``χ_∥ = χ_⊥ = 1``; the numbers come from :mod:`nnft.criticality`.
"""

from __future__ import annotations

import math

import sympy as sp

from nnft.codegen.printers import latex as nnft_latex
from nnft.criticality import criticality, depth_scales
from nnft.criticality.single_input import single_input
from nnft.errors import InputError
from nnft.gaussian import Kaa
from nnft.report import figures
from nnft.report.document import Figure, Math, Section, Table, Text

CONDITIONS = (r"K^* = C_b + C_W\, g(K^*),\quad g(K) = \langle \sigma(z)^2 \rangle_K,\quad "
              r"\chi_\parallel = C_W\, g'(K^*),\quad \chi_\perp = C_W \langle \sigma'(z)^2 \rangle_{K^*},\quad "
              r"\text{critical: } \chi_\parallel = \chi_\perp = 1")


def _num(v: float | None) -> str:
    return "any" if v is None else ("∞" if math.isinf(v) else f"{v:.10g}")


def _figure(act, C_b: float, C_W: float, points):
    from nnft import plot

    cw_hi = max(3.0, 1.25 * C_W, *(1.25 * p.C_W for p in points))
    cb_hi = max(0.6, 1.25 * C_b, *(1.25 * p.C_b for p in points))
    fig = plot.phase_diagram(act, C_W=(0.25, cw_hi), C_b=(0.0, cb_hi), resolution=61)
    ax = fig.axes[0]
    ax.plot([C_W], [C_b], "*", ms=14, mfc="white", mec="k", label="this network")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    return fig


def criticality_section(ctx) -> Section:
    """Critical initialisations of σ (class, ν), the network's fixed point, phase and depth scales, phase diagram."""
    net = ctx.net
    title = "Criticality"
    act = net.activation
    points = criticality(act)
    si = single_input(act)
    g = si.expressions["g"]
    blocks = [Math(CONDITIONS, "fixed point, susceptibilities and criticality (PDLT ch. 5)")]
    if si.closed:
        blocks.append(Math(r"g(K) = " + nnft_latex(g.xreplace({Kaa: sp.Symbol("K", positive=True)})),
                           "derived for this activation"))
    rows = tuple((p.universality_class, _num(p.C_b), _num(p.C_W), _num(p.K_star), f"{p.nu:.6g}") for p in points)
    if rows:
        blocks.append(Table(("class", "C_b", "C_W", "K*", "ν"), rows,
                            "critical initialisations (V/(nK²) ≈ ν ℓ/n at large depth)"))
        blocks += [Math(p.latex(), f"critical point {i + 1}") for i, p in enumerate(points)]
    if points.explanation:
        blocks.append(Text(points.explanation))
    res = {"critical_points": [{"class": p.universality_class, "C_b": p.C_b, "C_W": p.C_W, "K_star": p.K_star,
                                "nu": p.nu, "residuals": p.residuals} for p in points]}
    C_b, C_W = net.C_b[-1], net.C_W[-1]
    try:
        ds = depth_scales(act, C_b, C_W, K0=float(net.kernels(ctx.x[:1], ntk=False).K[0, 0, 0]))
    except InputError as exc:
        blocks.append(Text(f"This network (C_b = {C_b:g}, C_W = {C_W:g}): {exc}"))
    else:
        fp = ds.fixed_point
        blocks.append(Table(("K*", "χ∥", "χ⊥", "phase", "ξ_K", "ρ*", "ξ_c"), (
            (_num(fp.K_star), f"{fp.chi_par:.6g}", f"{fp.chi_perp:.6g}", ds.phase, _num(ds.xi_K),
             f"{ds.rho_star:.6g}", _num(ds.xi_c)),), f"this network's layers (C_b = {C_b:g}, C_W = {C_W:g})"))
        res["network"] = {"K_star": fp.K_star, "chi_par": fp.chi_par, "chi_perp": fp.chi_perp, "phase": ds.phase,
                          "xi_K": None if math.isinf(ds.xi_K) else ds.xi_K, "rho_star": ds.rho_star,
                          "xi_c": None if math.isinf(ds.xi_c) else ds.xi_c}
    if net.depth >= 2:
        try:
            guide = net.depth_to_width_guidance(ctx.x[:1])
        except InputError as exc:
            blocks.append(Text(f"Depth-to-width guidance not available: {exc}"))
        else:
            blocks.append(Text(guide.advice))
            res["guidance"] = {"aspect_ratio": guide.aspect_ratio, "vertex_ratio": guide.vertex_ratio,
                               "nu": guide.nu, "max_depth": guide.max_depth, "min_width": guide.min_width}
    if not act.has_distributional_derivative:
        figures.save(_figure(act, C_b, C_W, points), ctx.figdir, "phase_diagram")
        blocks.append(Figure("phase_diagram", "phase diagram: ln χ⊥ at the fixed point, the χ = 1 lines, the "
                             "critical points and this network (star)"))
    return Section("criticality", title, blocks, results=res)


__all__ = ["criticality_section"]
