"""Matplotlib figures of the report (Agg backend, saved as PNG and SVG side by side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save(fig, figdir: Path, name: str) -> None:
    """Write ``fig`` to ``figdir/name.png`` and ``.svg`` and close it."""
    plt = _pyplot()
    figdir.mkdir(parents=True, exist_ok=True)
    fig.savefig(figdir / f"{name}.png", dpi=130, bbox_inches="tight")
    fig.savefig(figdir / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def kernels_across_depth(K: np.ndarray, Theta: np.ndarray | None, pairs: list[tuple[int, int]]):
    """Left: K^{(ℓ)}_{αα} and Θ^{(ℓ)}_{αα} against ℓ; right: the correlations ρ^{(ℓ)}_{αβ} of ``pairs``."""
    plt = _pyplot()
    L = K.shape[0]
    ell = np.arange(1, L + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    diag = np.einsum("lii->li", K)
    a.plot(ell, diag.mean(axis=1), "o-", label=r"mean $K^{(\ell)}_{\alpha\alpha}$")
    if Theta is not None:
        a.plot(ell, np.einsum("lii->li", Theta).mean(axis=1), "s--", label=r"mean $\Theta^{(\ell)}_{\alpha\alpha}$")
    a.set_xlabel(r"layer $\ell$")
    a.set_yscale("log")
    a.legend(frameon=False)
    for i, j in pairs:
        rho = K[:, i, j] / np.sqrt(K[:, i, i] * K[:, j, j])
        b.plot(ell, rho, "o-", label=rf"$\rho_{{{i + 1}{j + 1}}}$")
    b.set_xlabel(r"layer $\ell$")
    b.set_ylabel(r"$\rho^{(\ell)}_{\alpha\beta}$")
    b.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def inverse_width(entries: list[dict]):
    """G_{αβ}(n) against 1/n with error bars, the fitted c0 + c1/n + c2/n² and K_{αβ} at 1/n = 0."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(entries), figsize=(4.3 * len(entries), 3.4), squeeze=False)
    for ax, e in zip(axes[0], entries, strict=True):
        inv = 1.0 / np.asarray(e["widths"], dtype=float)
        ax.errorbar(inv, e["G"], yerr=e["stderr"], fmt="o", capsize=3, label="Monte Carlo $G$")
        grid = np.linspace(0.0, inv.max() * 1.05, 100)
        c = e["coef"]
        ax.plot(grid, sum(ck * grid**k for k, ck in enumerate(c)), "-", lw=1, label="fit $c_0+c_1/n+c_2/n^2$")
        ax.plot([0.0], [e["K"]], "*", ms=12, label=r"theory $K$ ($n\to\infty$)")
        ax.set_xlabel("$1/n$")
        ax.set_title(e["label"])
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


__all__ = ["inverse_width", "kernels_across_depth", "save"]
