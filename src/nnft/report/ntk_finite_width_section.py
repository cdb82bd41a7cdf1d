"""The report's NTK-at-finite-width section: the derived recursions of Θ1, A, B, D, F and their flow with depth.

Layouts of :mod:`nnft.ntk_finite_width` (PDLT ch. 8, ``n = n_{ℓ-1}``): ``E[Θ̂_{ii}] = Θ + Θ1/n``; A, B the NTK
covariances (same-pair / cross-neuron), D, F its correlation with two preactivations.
"""

from __future__ import annotations

import numpy as np

from nnft.errors import BudgetError, DivergenceError, NTKUndefinedError, ResourceError
from nnft.report import figures
from nnft.report.document import Figure, Math, Section, Table, Text

#: Inputs used for the multi-input statistics (their cost grows like P⁴).
MAX_INPUTS = 2


def _flow(s) -> object:
    """Left: A, B, D, F of input 1 (divided by Θ², Θ², ΘK, ΘK) against ℓ; right: Θ1/Θ of input 1."""
    plt = figures._pyplot()
    L = s.Theta.shape[0]
    ell = np.arange(1, L + 1)
    th, k = s.Theta[:, 0, 0], s.K[:, 0, 0]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for arr, norm, lab in ((s.A, th * th, "A/Θ²"), (s.B, th * th, "B/Θ²"), (s.D, th * k, "D/(ΘK)"),
                           (s.F, th * k, "F/(ΘK)")):
        a.plot(ell, arr[:, 0, 0, 0, 0] / norm, "o-", label=lab)
    a.set_xlabel(r"layer $\ell$")
    a.legend(fontsize=8)
    b.plot(ell, s.Theta1[:, 0, 0] / th, "s-")
    b.set_xlabel(r"layer $\ell$")
    b.set_ylabel(r"$\Theta^{\{1\}(\ell)}_{11} / \Theta^{(\ell)}_{11}$")
    fig.tight_layout()
    return fig


def ntk_finite_width(ctx) -> Section:
    """Θ1, A, B, D, F: the derived recursions (by pattern), input 1 across depth, and the first inputs' values."""
    net, x = ctx.net, ctx.x
    title = "The NTK at finite width"
    key = "ntk_finite_width"
    try:
        recs = {name: net.recursion(name) for name in ("ntk_var", "ntk_preact", "ntk_mean_correction")}
    except NTKUndefinedError as exc:
        return Section(key, title, [Text(f"Not defined for this activation: {exc}")], status="skipped")
    if net.depth < 2:
        return Section(key, title, [Text("The first-layer NTK is deterministic: Θ1 = A = B = D = F = 0.")],
                       status="skipped")
    try:
        s1 = net.ntk_statistics(x[:1], layers="all")
    except (DivergenceError, BudgetError, ResourceError) as exc:
        return Section(key, title, [Text(f"Could not be evaluated for this network: {exc}")], status="skipped")
    figures.save(_flow(s1), ctx.figdir, "ntk_finite_width_depth")
    L = s1.Theta.shape[0]
    rows = tuple((str(ell + 1), f"{s1.Theta[ell, 0, 0]:.6g}", f"{s1.Theta1[ell, 0, 0]:.6g}",
                  f"{s1.A[ell, 0, 0, 0, 0]:.6g}", f"{s1.B[ell, 0, 0, 0, 0]:.6g}", f"{s1.D[ell, 0, 0, 0, 0]:.6g}",
                  f"{s1.F[ell, 0, 0, 0, 0]:.6g}") for ell in range(L))
    blocks = [
        Text("E[Θ̂_ii;ab] = Θ_ab + Θ1_ab/n; E[ΔΘ̂ ΔΘ̂] = (1/n)[δδ A + δδ B + δδ B] and E[ΔΘ̂ z z] = (1/n)[δδ D + δδ F + "
             "δδ F] in the layouts of docs/ntk_finite_width.md (PDLT ch. 8, n = n_{L−1})."),
        Math(recs["ntk_mean_correction"].latex(), "NTK mean correction (derived from the joint (K′, Θ′) map, "
             "Stein's lemma on the weights and Price's theorem)"),
        Math(recs["ntk_var"].latex(), "NTK fluctuations A, B by coincidence pattern"),
        Math(recs["ntk_preact"].latex(), "NTK–preactivation correlations D, F by coincidence pattern"),
        Figure("ntk_finite_width_depth", "input 1: A, B, D, F (normalised) and Θ1/Θ against depth"),
        Table(("ℓ", "Θ₁₁", "Θ1₁₁", "A₁₁₁₁", "B₁₁₁₁", "D₁₁₁₁", "F₁₁₁₁"), rows, "one input (input 1), every layer"),
    ]
    res = {"input1": {k: getattr(s1, k).reshape(L, -1)[:, 0].tolist() for k in ("Theta", "Theta1", "A", "B", "D", "F")}}
    P = min(x.shape[0], MAX_INPUTS)
    if P > 1:
        try:
            s = net.ntk_statistics(x[:P])
        except (DivergenceError, BudgetError, ResourceError) as exc:
            blocks.append(Text(f"The statistics of inputs 1–{P} could not be computed here: {exc}"))
        else:
            res["first_inputs"] = {"P": P, **{k: getattr(s, k).tolist() for k in ("Theta1", "A", "B", "D", "F")}}
            blocks.append(Table(("entry", "value"), (
                ("Θ1₁₂", f"{s.Theta1[0, 1]:.6g}"), ("A₁₂₁₂", f"{s.A[0, 1, 0, 1]:.6g}"),
                ("B₁₁₂₂", f"{s.B[0, 0, 1, 1]:.6g}"), ("D₁₂₁₂", f"{s.D[0, 1, 0, 1]:.6g}"),
                ("F₁₁₂₂", f"{s.F[0, 0, 1, 1]:.6g}")), f"output layer, inputs 1–{P} (full tensors in results.json)"))
    return Section(key, title, blocks, results=res)


__all__ = ["ntk_finite_width"]
