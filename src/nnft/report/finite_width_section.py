"""The report's finite-width section: the derived V and K1 recursions and their values across depth.

V^{(ℓ)} is the four-point vertex and K1^{(ℓ)} the NLO metric of CONVENTIONS.md (PDLT eqs. 4.90 and 4.115
in this repo's normalisation): the connected four-point function of the preactivations is V/n and
G = K + K1/n + O(1/n²) at equal widths n.
"""

from __future__ import annotations

import numpy as np

from nnft.errors import ActivationError, BudgetError, ResourceError
from nnft.finite_width import four_point, nlo_metric
from nnft.network import MLP
from nnft.report import figures
from nnft.report.document import Figure, Math, Section, Table, Text

#: Inputs used for the multi-input vertex (its cost grows like P⁴: see docs/performance.md).
MAX_INPUTS = 3


def _across_depth(V1: np.ndarray, K1: np.ndarray, K: np.ndarray):
    """Left: V^{(ℓ)}/(K^{(ℓ)})² of input 1 against ℓ; right: K1^{(ℓ)}/K^{(ℓ)} of input 1."""
    plt = figures._pyplot()
    ell = np.arange(1, len(K) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(ell, V1 / K**2, "o-")
    a.set_xlabel(r"layer $\ell$")
    a.set_ylabel(r"$V^{(\ell)}_{(11)(11)} / (K^{(\ell)}_{11})^2$")
    b.plot(ell, K1 / K, "s-")
    b.set_xlabel(r"layer $\ell$")
    b.set_ylabel(r"$K^{\{1\}(\ell)}_{11} / K^{(\ell)}_{11}$")
    fig.tight_layout()
    return fig


def finite_width(ctx) -> Section:
    """V and K1: the derived recursions by coincidence pattern, their one-input flow, and V for a few inputs."""
    net, x = ctx.net, ctx.x
    title = "Finite-width corrections"
    try:
        Vrec, Krec = net.recursion("V"), net.recursion("K1")
    except ActivationError as exc:
        return Section("finite_width", title, [Text(f"Not defined for this activation: {exc}")], status="skipped")
    if net.depth < 2:
        return Section("finite_width", title, [Text("A single layer is exactly Gaussian: V = 0 and K1 = 0.")],
                       status="skipped")
    x1 = x[:1]
    V1 = four_point(net, x1, layers="all")[:, 0, 0, 0, 0]
    K1 = nlo_metric(net, x1, layers="all")[:, 0, 0]
    K = np.array([float(k) for k in net.kernels(x1, ntk=False).K[:, 0, 0]])
    figures.save(_across_depth(V1, K1, K), ctx.figdir, "finite_width_depth")
    rows = tuple((str(ell + 1), f"{K[ell]:.6g}", f"{V1[ell]:.6g}", f"{V1[ell] / K[ell] ** 2:.6g}", f"{K1[ell]:.6g}")
                 for ell in range(len(K)))
    blocks = [
        Math(_generic_vertex(Vrec), "four-point vertex, one equation per coincidence pattern of the sample indices "
             "(derived: the covariance ⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩ of the next metric plus the mixing through ∂K′/∂K, "
             "Price's theorem; the activation's explicit forms are in formulas.tex and generated/finite_width)"),
        Math(Krec.latex(), "NLO metric (first and second derivatives of the two-point map)"),
        Math(f"{Vrec.lhs[Vrec.patterns[0]]} = {_tex(Vrec.single)}", "one input, derived"),
        Figure("finite_width_depth", "input 1: V/K² (left) and K1/K (right) against depth"),
        Table(("ℓ", "K₁₁", "V₍₁₁₎₍₁₁₎", "V/K²", "K1₁₁"), rows, "one input (input 1), every layer"),
    ]
    res = {"input1": {"K": K.tolist(), "V": V1.tolist(), "K1": K1.tolist()}}
    P = min(x.shape[0], MAX_INPUTS)
    if P > 1:
        try:
            V = four_point(net, x[:P])
            K1P = nlo_metric(net, x[:P])
        except (BudgetError, ResourceError) as exc:
            blocks.append(Text(f"The multi-input vertex for inputs 1–{P} could not be computed here: {exc}"))
        else:
            res["first_inputs"] = {"P": P, "V": V.tolist(), "K1": K1P.tolist()}
            entries = [(0, 0, 1, 1), (0, 1, 0, 1), (0, 0, 0, 1)] + ([(0, 1, 0, 2), (0, 0, 1, 2)] if P > 2 else [])
            blocks.append(Table(("entry", "V"), tuple(
                (f"V₍{a + 1}{b + 1}₎₍{c + 1}{d + 1}₎", f"{V[a, b, c, d]:.6g}") for a, b, c, d in entries),
                f"output-layer vertex for inputs 1–{P} (the full (P, P, P, P) tensor is in results.json)"))
    ctx.shared["K1_input1"] = float(K1[-1])
    ctx.shared["V_input1"] = float(V1[-1])
    equal = MLP(net.activation, depth=net.depth, width=64, C_b=list(net.C_b), C_W=list(net.C_W))
    ctx.shared["K1_equal_widths"] = float(nlo_metric(equal, x1)[0, 0])
    return Section("finite_width", title, blocks, results=res)


_GREEK = {"a": r"\alpha", "b": r"\beta", "c": r"\gamma", "d": r"\delta"}


def _generic_vertex(Vrec) -> str:
    """The V recursion with its fresh term written as ⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩ (any σ) and the mixing as derived."""
    from nnft.recursions.fluctuation import induced_covariance, n_ratio, pair

    rows = []
    for p in Vrec.patterns:
        lab = p.replace("(", "").replace(")", "")
        s = [rf"\sigma_{{{_GREEK[ch]}}}" for ch in lab]
        fresh = (rf"C_W^{{2}}\left(\langle {s[0]}{s[1]}{s[2]}{s[3]} \rangle_K - \langle {s[0]}{s[1]} \rangle_K"
                 rf"\langle {s[2]}{s[3]} \rangle_K\right)")
        mix = _tex(n_ratio * induced_covariance(None, pair(*lab[:2]), pair(*lab[2:])))
        rows.append(rf"{Vrec.lhs[p]} &= {fresh} + {mix} \\")
    return "\\begin{aligned}\n" + "\n".join(rows) + "\n&" + Vrec.where + "\n\\end{aligned}"


def _tex(expr) -> str:
    from nnft.codegen.printers import latex

    return latex(expr)


__all__ = ["finite_width"]
