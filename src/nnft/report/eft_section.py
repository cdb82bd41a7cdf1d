"""The report's effective-action section: the diagrams, the matched couplings γ2, γ4 and their flow with depth.

Everything comes from :mod:`nnft.eft` (diagrams enumerated and merged by graph isomorphism, couplings matched
by sympy from the diagram sums; docs/eft.md) and :meth:`nnft.MLP.eft` (the couplings of every layer from the
network's K, K1 and V).
"""

from __future__ import annotations

import numpy as np

from nnft.errors import BudgetError, DivergenceError, InputError, ResourceError
from nnft.report import figures
from nnft.report.document import Figure, Math, Section, Table, Text

#: Inputs used for the couplings (V costs P⁴).
MAX_INPUTS = 2


def _diagram_figure(two, four):
    """The first-order (one γ4 vertex) diagrams of the two- and the connected four-point function."""
    plt = figures._pyplot()
    ds = [*two, *four]
    fig, axes = plt.subplots(1, len(ds), figsize=(2.6 * len(ds), 2.8))
    for ax, d, lab in zip(np.atleast_1d(axes), ds, [*(["⟨zz⟩"] * len(two)), *(["⟨zzzz⟩_c"] * len(four))],
                          strict=True):
        d.draw(ax)
        ax.set_title(f"{lab}: weight {d.weight}", fontsize=9)
    fig.tight_layout()
    return fig


def _inputs(x: np.ndarray) -> np.ndarray:
    """Up to MAX_INPUTS inputs whose metric is invertible (the built-in set has a duplicate)."""
    chosen = [x[0]]
    for row in x[1:]:
        if len(chosen) == MAX_INPUTS:
            break
        trial = np.vstack([*chosen, row])
        if np.linalg.matrix_rank(trial, tol=1e-6 * np.abs(trial).max()) == len(trial):
            chosen.append(row)
    return np.vstack(chosen)


def eft_section(ctx) -> Section:
    """The diagrams, the derived matching formulas and the couplings of every layer for the first inputs."""
    from nnft.eft import diagrams, match

    net = ctx.net
    key, title = "eft", "Effective action"
    m1 = match(order=1)
    two, four = diagrams(2, (2,)), diagrams(4, (2,))
    figures.save(_diagram_figure(two, four), ctx.figdir, "eft_diagrams")
    blocks = [
        Math(r"p(z) \propto e^{-S[z]},\quad S[z] = \tfrac12 \gamma_2^{\alpha_1\alpha_2} z_{\alpha_1}\cdot z_{\alpha_2}"
             r" - \tfrac18 \gamma_4^{(\alpha_1\alpha_2)(\alpha_3\alpha_4)} (z_{\alpha_1}\cdot z_{\alpha_2})"
             r"(z_{\alpha_3}\cdot z_{\alpha_4})", "the action of one layer at order 1/n (CONVENTIONS.md)"),
        Figure("eft_diagrams", "the first-order diagrams (one quartic vertex, dashed) of the two-point and the "
               "connected four-point function, enumerated and merged by graph isomorphism"),
        Math(" + ".join(d.latex() for d in two), "the two-point function at first order in γ4 (diagram terms)"),
        Math(m1.latex(), "couplings matched to G = K + K1/n and V (sympy solves the diagram equations; "
             "one sample, then the index form for several)"),
    ]
    res: dict = {"matching": {"gamma2": str(m1.gamma2), "gamma4": str(m1.gamma4)},
                 "diagrams": {"two_point": len(two), "four_point": len(four)}}
    if net.depth < 2:
        blocks.append(Text("A depth-1 network's outputs are Gaussian: γ4 = 0 and γ2 = K⁻¹."))
        return Section(key, title, blocks, results=res)
    xs = _inputs(ctx.x)
    try:
        flow = net.eft(xs, layers="all")
        flow1 = net.eft(xs[:1], layers="all")  # one input: γ4 K⁴ n = V, the dimensionless coupling V/K²
        K = np.asarray(net.kernels(xs, ntk=False).K)
    except (InputError, DivergenceError, BudgetError, ResourceError) as exc:
        blocks.append(Text(f"The couplings could not be evaluated for this network: {exc}"))
        return Section(key, title, blocks, results=res, status="skipped")
    from nnft import plot

    entries = [(0, 0)] + ([(0, 1)] if xs.shape[0] > 1 else [])
    figures.save(plot.coupling_flow(net, xs, entries=entries), ctx.figdir, "eft_flow")
    L = K.shape[0]
    q4 = flow1.gamma4_1[:, 0, 0, 0, 0] * K[:, 0, 0] ** 2
    q2 = flow1.gamma2_1[:, 0, 0] * K[:, 0, 0]
    def width(v) -> str:
        return "– (Gaussian)" if v is None or not np.isfinite(v) else str(int(v))

    rows = tuple((str(ell + 1), width(flow.n[ell]), f"{K[ell, 0, 0]:.6g}", f"{flow1.gamma2[ell, 0, 0]:.6g}",
                  f"{q2[ell]:.6g}", f"{flow1.gamma4[ell, 0, 0, 0, 0]:.6g}", f"{q4[ell]:.6g}") for ell in range(L))
    blocks += [
        Figure("eft_flow", "the couplings' flow with depth: n γ4 K² (the dimensionless quartic coupling, = V/K² "
               "for one input) and n γ2¹ K, entries (11)(11) and (11)(22) of the joint couplings of inputs 1 and 2"),
        Table(("ℓ", "n(ℓ−1)", "K₁₁", "γ2¹¹", "n γ2¹ K", "γ4⁽¹¹⁾⁽¹¹⁾", "n γ4 K²"), rows,
              f"input 1 alone, every layer (m = the number of neurons of the layer, n_out = {net.n_out} at the output; "
              f"the couplings of {xs.shape[0]} inputs jointly in results.json)"),
    ]
    widths = [None if v is None or not np.isfinite(v) else float(v) for v in flow.n]
    res["flow"] = {"inputs": xs.tolist(), "n": widths, "m": float(flow.m),
                   "gamma2": flow.gamma2.tolist(), "gamma4": flow.gamma4.tolist(),
                   "n_gamma4_K2_input1": q4.tolist(), "n_gamma2_1_K_input1": q2.tolist()}
    return Section(key, title, blocks, results=res)


__all__ = ["eft_section"]
