"""The report's sections: each builder takes the run context and returns a :class:`Section`.

``SECTIONS`` lists the builders in report order. A capability that lands later gets a builder in a file
of its own (as criticality_, finite_width_, ntk_finite_width_ and eft_section.py did) and an entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnft.errors import NTKUndefinedError
from nnft.network import MLP
from nnft.report import figures
from nnft.report.config import ReportConfig
from nnft.report.criticality_section import criticality_section
from nnft.report.document import Figure, Math, Section, Table, Text
from nnft.report.eft_section import eft_section
from nnft.report.finite_width_section import finite_width
from nnft.report.ntk_finite_width_section import ntk_finite_width


@dataclass
class Context:
    """What every section builder sees: the config, the network, its inputs and where figures go."""

    config: ReportConfig
    net: MLP
    x: np.ndarray
    figdir: Path
    modules: dict[str, str] = field(default_factory=dict)
    shared: dict = field(default_factory=dict)


def _g(v: float) -> str:
    return f"{v:.6g}"


def network(ctx: Context) -> Section:
    """The network's description: σ, the layers with their variances, and the inputs."""
    net, x = ctx.net, ctx.x
    rows = tuple(
        (str(ly.index), str(ly.n_in) if ly.n_in else f"n₀ = {x.shape[1]}", str(ly.n_out), _g(ly.C_b), _g(ly.C_W),
         _g(ly.lambda_b), _g(ly.lambda_W))
        for ly in net.layers
    )
    norms = np.linalg.norm(x, axis=1)
    src = ctx.config.inputs or "the built-in input set (seeded Gaussian points on the sphere |x|² = n₀, one duplicate)"
    return Section(
        "network", "The network",
        [
            Math(r"\sigma(z) = " + net.activation.latex(), "activation"),
            Math(r"z^{(1)}_{i;\alpha} = b^{(1)}_i + \sum_j W^{(1)}_{ij} x_{j;\alpha},\quad "
                 r"z^{(\ell+1)}_{i;\alpha} = b^{(\ell+1)}_i "
                 r"+ \sum_j W^{(\ell+1)}_{ij}\,\sigma(z^{(\ell)}_{j;\alpha}),\quad "
                 r"b \sim \mathcal{N}(0, C_b),\ W \sim \mathcal{N}(0, C_W/n_{\ell-1})", "the prior (PDLT §2)"),
            Table(("ℓ", "fan-in n(ℓ−1)", "width n(ℓ)", "C_b", "C_W", "λ_b", "λ_W"), rows, "layers"),
            Text(f"Inputs: P = {x.shape[0]} points in n₀ = {x.shape[1]} dimensions from {src}; "
                 f"norms |x_α| from {norms.min():.4g} to {norms.max():.4g}."),
        ],
        results={"network": repr(net), "activation": str(net.activation.expr), "depth": net.depth,
                 "widths": list(net.widths), "C_b": list(net.C_b), "C_W": list(net.C_W),
                 "lambda_b": list(net.lambda_b), "lambda_W": list(net.lambda_W), "inputs": x.tolist()},
    )


def maps(ctx: Context) -> Section:
    """The symbolic one-layer maps of K and Θ derived by the engine, with the generated modules."""
    net = ctx.net
    blocks: list = []
    names = ["ntk"]
    try:
        m = net.recursion("ntk")
    except NTKUndefinedError as exc:
        blocks.append(Text(f"The NTK map does not exist for this activation: {exc}"))
        m = net.recursion("nngp")
        names = ["nngp"]
    kind = "closed form" if m.closed else "Gaussian quadrature (no closed form in the rule table)"
    blocks.append(Math(m.latex(), f"one-layer map of {'K and Θ' if names == ['ntk'] else 'K'} ({kind})"))
    blocks.append(Text("Derived symbolically from the Gaussian expectations ⟨σσ⟩ and ⟨σ′σ′⟩ (PDLT eqs. 4.1, 8.8); "
                       "the same expressions were printed as the numeric module used below."))
    mod = m.compile("numpy")
    ctx.modules[f"{names[0]}_map.py"] = mod.__file__
    ctx.shared["closed_form"] = m.closed
    return Section("maps", "One-layer maps", blocks, results={"map": names[0], "closed_form": bool(m.closed),
                                                               "latex": m.latex()})


def kernels(ctx: Context) -> Section:
    """K^{(ℓ)} and Θ^{(ℓ)} at every layer, with the correlations' flow across depth."""
    net, x = ctx.net, ctx.x
    ntk = not net.activation.has_distributional_derivative
    kern = net.kernels(x, ntk=ntk)
    ctx.shared["kernels"] = kern
    P = x.shape[0]
    pairs = [(0, j) for j in range(1, min(P, 5))]
    figures.save(figures.kernels_across_depth(kern.K, kern.Theta, pairs), ctx.figdir, "kernels_depth")
    K = kern.nngp
    rows = tuple((str(a + 1), *(_g(v) for v in K[a])) for a in range(min(P, 8)))
    blocks = [
        Figure("kernels_depth", "mean diagonal of K and Θ across layers (left); correlations "
               "ρ_αβ = K_αβ/√(K_αα K_ββ) of input 1 with inputs 2–5 (right)"),
        Table(("α \\ β", *(str(b + 1) for b in range(min(P, 8)))), rows, f"output-layer NNGP kernel K^({net.depth})"),
    ]
    res = {"K": K.tolist(), "K_diag_by_layer": np.einsum("lii->li", kern.K).tolist()}
    if kern.Theta is not None:
        res["Theta"] = kern.ntk.tolist()
        res["Theta_diag_by_layer"] = np.einsum("lii->li", kern.Theta).tolist()
    return Section("kernels", "Kernels across depth", blocks, results=res)


def montecarlo(ctx: Context) -> Section:
    """Monte Carlo ensembles at several widths: G against 1/n, fitted, with its n → ∞ limit against K."""
    from nnft import montecarlo as mc
    from nnft.numeric.fits import fit_inverse_width

    cfg, net, x = ctx.config, ctx.net, ctx.x
    if cfg.samples == 0:
        return Section("montecarlo", "Finite networks against the theory",
                       [Text("Skipped (samples = 0).")], status="skipped")
    K = ctx.shared["kernels"].nngp if "kernels" in ctx.shared else net.nngp(x)
    G, E = [], []
    for n in cfg.widths:
        fin = MLP(net.activation, depth=net.depth, width=n, C_b=list(net.C_b), C_W=list(net.C_W))
        res = mc.estimate(fin, x, samples=cfg.samples, seed=cfg.seed, statistics="G", warn_noisy=False)
        G.append(res.G.value)
        E.append(res.G.stderr)
    G, E = np.array(G), np.array(E)
    P = x.shape[0]
    order = 2 if len(cfg.widths) >= 4 else 1  # the 1/n² term needs a fourth width to be fitted, not interpolated
    iu = np.triu_indices(P)
    z0, c1, c1e = np.empty(len(iu[0])), np.empty(len(iu[0])), np.empty(len(iu[0]))
    shown = []
    for t, (a, b) in enumerate(zip(*iu, strict=True)):
        fit = fit_inverse_width(cfg.widths, G[:, a, b], E[:, a, b], order=order)
        z0[t] = fit.zscore(intercept=K[a, b])["intercept"]
        c1[t], c1e[t] = fit.slope, fit.stderr[1]
        if (a, b) in ((0, 0), (0, 1)):
            shown.append({"label": f"$G_{{{a + 1}{b + 1}}}$", "widths": list(cfg.widths), "G": G[:, a, b],
                          "stderr": E[:, a, b], "coef": fit.coef, "K": K[a, b]})
    figures.save(figures.inverse_width(shown), ctx.figdir, "montecarlo_inverse_width")
    worst = float(np.max(np.abs(z0)))
    k1_rows: tuple = ()
    K1 = ctx.shared.get("K1_equal_widths")
    if K1 is not None and c1e[0] > 0:
        z_k1 = (c1[0] - K1) / c1e[0]
        k1_rows = (("derived K1₁₁ (equal widths) and the z-score of c₁ against it", f"{K1:.4g} (z = {z_k1:.2f})"),)
    verdict = "consistent" if worst < 4.0 else "INCONSISTENT"
    blocks = [
        Text(f"{cfg.samples} networks per width n ∈ {list(cfg.widths)} (seed {cfg.seed}), output-layer two-point "
             f"function G_αβ = E[z_α z_β] with jackknife errors; each of the {len(z0)} entries fitted with "
             f"c₀ + c₁/n{' + c₂/n²' if order == 2 else ''} (PDLT §4.4: G = K + K1/n + O(1/n²))."),
        Figure("montecarlo_inverse_width", "Monte Carlo G(n) against 1/n (error bars), the fit, and the "
               "infinite-width theory K at 1/n = 0"),
        Table(("check", "value"), (
            ("max |z| of the fitted n → ∞ limit c₀ against K", f"{worst:.2f} ({verdict} at 4σ)"),
            ("median |z|", f"{float(np.median(np.abs(z0))):.2f}"),
            ("fitted 1/n coefficient c₁ of G₁₁", f"{c1[0]:.4g} ± {c1e[0]:.2g}"),
            *k1_rows,
        ), "theory against finite networks"),
        Text("The 1/n coefficient c₁ of G estimates the NLO metric K1 at equal widths (section "
             "'Finite-width corrections')."),
    ]
    return Section("montecarlo", "Finite networks against the theory", blocks, results={
        "widths": list(cfg.widths), "samples": cfg.samples, "seed": cfg.seed,
        "G": {"value": G.tolist(), "stderr": E.tolist()},
        "intercept_zscore": {"max_abs": worst, "values": z0.tolist()},
        "inverse_width_coefficient": {"value": c1.tolist(), "stderr": c1e.tolist(),
                                      "entries": [[int(a), int(b)] for a, b in zip(*iu, strict=True)]},
    })


SECTIONS: list[Callable[[Context], Section]] = [
    network,
    maps,
    criticality_section,
    kernels,
    finite_width,
    montecarlo,
    ntk_finite_width,
    eft_section,
]


__all__ = ["SECTIONS", "Context"]
