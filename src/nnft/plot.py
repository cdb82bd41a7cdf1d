"""Matplotlib figures of the theory: phase diagrams and depth profiles (optional extra ``nnft[plot]``).

``phase_diagram(σ)``: ``ln χ_⊥`` at the fixed point over the ``(C_W, C_b)`` plane (ordered < 0 < chaotic),
with the ``χ_⊥ = 1`` (order–chaos) and ``χ_∥ = 1`` lines and the critical points
(:mod:`nnft.criticality.phase`). ``depth_profile(net)``: K, χ_∥, χ_⊥ and ``V/(nK²)`` layer by layer for
one input (:mod:`nnft.criticality`, :func:`nnft.finite_width.four_point`). Each returns the figure.
"""

from __future__ import annotations

import numpy as np

from nnft.errors import InputError


def _pyplot():
    """pyplot, with whatever backend matplotlib chose (Agg on a machine without a display; inline in Jupyter)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("nnft.plot needs matplotlib: pip install 'nnft[plot]'") from exc
    return plt


def phase_diagram(act, *, C_W=(0.25, 3.0), C_b=(0.0, 0.6), resolution: int = 121, K_range=(1e-4, 1e2), ax=None):
    """The phase diagram of ``act``: heat map of ``ln χ_⊥(K*)``, the χ = 1 lines and the critical points."""
    from nnft.criticality import criticality, phase_grid
    from nnft.criticality import phase_diagram as lines

    if not (isinstance(resolution, int) and resolution >= 8):
        raise InputError(f"resolution must be an integer >= 8, got {resolution!r}")
    plt = _pyplot()
    cw = np.linspace(max(C_W[0], 1e-6), C_W[1], resolution)
    cb = np.linspace(max(C_b[0], 0.0), C_b[1], resolution)
    grid = phase_grid(act, cw, cb)
    pd = lines(act, K_range=K_range)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    else:
        fig = ax.figure
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(grid["chi_perp"])
    z = np.where(np.isfinite(z), z, np.nan)
    lim = min(1.5, float(np.nanmax(np.abs(z)))) if np.isfinite(z).any() else 1.0
    im = ax.pcolormesh(cw, cb, z, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
    fig.colorbar(im, ax=ax, label=r"$\ln \chi_\perp(K^*)$  (ordered < 0 < chaotic)")
    for line, style, label in ((pd.chi_perp_line, "k-", r"$\chi_\perp = 1$ (order–chaos)"),
                               (pd.chi_par_line, "k--", r"$\chi_\parallel = 1$")):
        m = line.valid & (line.C_W <= cw[-1] * 1.02) & (line.C_b <= cb[-1] * 1.02)
        if m.any():
            ax.plot(np.where(m, line.C_W, np.nan), np.where(m, line.C_b, np.nan), style, lw=1.6, label=label)
    for cp in criticality(act, K_range=K_range):
        ax.plot([cp.C_W], [cp.C_b], "o", ms=8, mfc="gold", mec="k", label=f"critical ({cp.universality_class})")
    ax.set_xlim(cw[0], cw[-1])
    ax.set_ylim(cb[0], cb[-1])
    ax.set_xlabel(r"$C_W$")
    ax.set_ylabel(r"$C_b$")
    ax.set_title(f"phase diagram, σ = {pd.activation.name} (white: no fixed point, K grows without bound)", fontsize=9)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    return fig


def depth_profile(net, x=None):
    """K, χ_∥, χ_⊥ and ``V/(nK²)`` against depth for one input of ``net`` (default ``x·x/n_0 = 1``)."""
    from nnft.criticality.single_input import single_input
    from nnft.finite_width import four_point

    plt = _pyplot()
    x1 = np.ones((1, 1)) if x is None else np.asarray(x, dtype=np.float64)[:1]
    K = np.array([float(k) for k in net.kernels(x1, ntk=False).K[:, 0, 0]])
    ell = np.arange(1, net.depth + 1)
    si = single_input(net.activation)
    C_W_next = np.array(net.C_W[1:] + net.C_W[-1:])  # χ of layer ℓ is the slope of the map into ℓ + 1
    chi_par = C_W_next * si.at("dg", K)
    chi_perp = C_W_next * si.at("perp", K)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), constrained_layout=True)
    axes[0].plot(ell, K, "o-", ms=3)
    axes[0].set_ylabel(r"$K^{(\ell)}$")
    axes[1].plot(ell, chi_par, "o-", ms=3, label=r"$\chi_\parallel$")
    axes[1].plot(ell, chi_perp, "s-", ms=3, label=r"$\chi_\perp$")
    axes[1].axhline(1.0, color="0.5", lw=0.8)
    axes[1].legend(fontsize=8)
    if net.depth >= 2:
        V = four_point(net, x1, layers="all")[:, 0, 0, 0, 0]
        n_in = np.array([np.nan, *net.widths], dtype=np.float64)  # V^{(ℓ)} enters at order 1/n_{ℓ-1}
        axes[2].plot(ell[1:], V[1:] / (n_in[1:] * K[1:] ** 2), "o-", ms=3)
    axes[2].set_ylabel(r"$V^{(\ell)}/(n_{\ell-1} K^2)$")
    for a in axes:
        a.set_xlabel(r"layer $\ell$")
    fig.suptitle(f"depth profile: {net!r}", fontsize=9)
    return fig


def coupling_flow(net, x, *, m: float | None = None, entries=None, ax=None):
    """The flow of the effective action's couplings with depth (the "RG flow" of a network's layers).

    Plots ``n_{ℓ-1} γ4^{(aa)(bb)} K_aa K_bb`` — the dimensionless quartic coupling, = V/K² for one input — and
    the relative shift ``n_{ℓ-1}(γ2 K − 1)`` of the quadratic coupling against the layer ℓ, for the entries
    ``entries`` (pairs (a, b); default (0, 0)), from :meth:`nnft.MLP.eft` with ``layers="all"``.
    """
    plt = _pyplot()
    import numpy as np

    flow = net.eft(x, m=m, layers="all")
    K = np.asarray(net.kernels(x, ntk=False).K)
    entries = [(0, 0)] if entries is None else list(entries)
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    else:
        axes = ax
        fig = axes[0].figure
    ell = np.arange(1, K.shape[0] + 1)
    for a, b in entries:
        q = flow.gamma4_1[:, a, a, b, b] * K[:, a, a] * K[:, b, b]
        axes[0].plot(ell, q, "o-", label=f"({a + 1}{a + 1})({b + 1}{b + 1})")
        axes[1].plot(ell, flow.gamma2_1[:, a, b] * K[:, a, b], "s-", label=f"{a + 1}{b + 1}")
    axes[0].set_xlabel(r"layer $\ell$")
    axes[0].set_ylabel(r"$n\,\gamma_4\,K^2$")
    axes[1].set_xlabel(r"layer $\ell$")
    axes[1].set_ylabel(r"$n\,\gamma_2^{\{1\}} K$")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["coupling_flow", "depth_profile", "phase_diagram"]
