"""Regenerate docs/figures/feature_learning_xor.png and feature_learning_criticality.png.

XOR: P_A = 24 points in four noisy clusters (x ∈ R², label sign(x₁x₂)), a depth-3 relu network (C_W = 2,
C_b = 0.1; an odd network without biases cannot fit XOR, whose labels are even in x), readout noise κ = 0.5.
Top: the output-layer kernel on the training points, sorted by label — the NNGP kernel K, the MAP kernel C of
the forward–backward saddle at n = 16 (full saddle, importance-sampled tilted expectations) and the adaptation
n(C − K), with YYᵀ for comparison. Bottom left: the kernel–target alignment of every layer, NNGP against MAP
at n = 16, 64, 256 (full saddle) and the first-order solution at n = 16. Bottom right: the full saddle's n(C − K)
against the first-order V:c̃ at the three widths (they meet as n grows).

Criticality: tanh networks (C_b = 0) of depth L = 3, 6, 12 on the same task with P_A = 8, the first-order
adaptation of the output kernel ``‖V:c̃‖_F / ‖K‖_F`` (the width-independent coefficient of 1/n) and the alignment gain
``n (A(C) − A(K))`` against C_W; the critical point is C_W = 1. Run from the repository root:
``python docs/figures/feature_learning.py`` (about five minutes on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nnft  # noqa: E402
from nnft.feature_learning import map_kernels  # noqa: E402

OUT = Path(__file__).resolve().parent
KAPPA = 0.5


def xor_task(P: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=float)
    lab = np.array([1, 1, -1, -1], dtype=float)
    k = np.arange(P) % 4
    x = centres[k] + 0.25 * rng.normal(size=(P, 2))
    y = lab[k]
    order = np.lexsort((k, -y))  # by label, then by cluster
    return x[order], y[order]


def alignment(A: np.ndarray, y: np.ndarray) -> float:
    T = np.outer(y, y)
    return float(np.sum(A * T) / (np.linalg.norm(A) * np.linalg.norm(T)))


def xor_figure() -> None:
    x, y = xor_task()
    widths = (16, 64, 256)

    def net(n):
        return nnft.MLP("relu", depth=3, width=n, C_W=2.0, C_b=0.1)

    full = {n: map_kernels(net(n), x, y, kappa=KAPPA, method="montecarlo", samples=50_000, tol=1e-9)
            for n in widths}
    pert = map_kernels(net(16), x, y, kappa=KAPPA, method="perturbative")
    r = full[16]
    fig = plt.figure(figsize=(12, 7.2))
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1.05))
    panels = [("NNGP kernel $K^{(3)}$", r.K[-1]), ("MAP kernel $C^{(3)}$, $n=16$", r.C[-1]),
              ("adaptation $n\\,(C^{(3)}-K^{(3)})$", 16 * (r.C[-1] - r.K[-1])),
              ("target $YY^{\\top}$", np.outer(y, y))]
    for i, (title, A) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        v = np.abs(A).max()
        im = ax.imshow(A, cmap="RdBu_r", vmin=-v, vmax=v)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    ax = fig.add_subplot(grid[1, :2])
    layers = np.arange(1, 4)
    ax.plot(layers, [alignment(r.K[i], y) for i in range(3)], "k--o", label="NNGP (any width)")
    for n, res in full.items():
        ax.plot(layers, [alignment(res.C[i], y) for i in range(3)], "-o", label=f"MAP, n = {n} (full saddle)")
    ax.plot(layers, [alignment(pert.C[i], y) for i in range(3)], ":s", label="MAP, n = 16 (first order)")
    ax.set_xlabel("layer ℓ")
    ax.set_ylabel("alignment ⟨C, YYᵀ⟩ / (‖C‖ ‖YYᵀ‖)")
    ax.set_xticks(layers)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, 2:])
    first = 16 * (pert.C[-1] - pert.K[-1])
    iu = np.triu_indices(len(y))
    for n, res in full.items():
        ax.plot(first[iu], (n * (res.C[-1] - res.K[-1]))[iu], ".", ms=3, label=f"n = {n}")
    lim = np.abs(first).max() * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8)
    ax.set_xlabel("first order: $V^{(3)}:\\tilde c^{(3)}$")
    ax.set_ylabel("full saddle: $n\\,(C^{(3)}-K^{(3)})$")
    ax.legend(fontsize=8, markerscale=3)
    fig.suptitle("Kernel adaptation on XOR (relu, depth 3, κ = 0.5): the MAP kernels of the forward–backward saddle",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(OUT / "feature_learning_xor.png", dpi=110)
    plt.close(fig)
    for n, res in full.items():
        print(f"n = {n:4d}: iterations {res.iterations}, residual {res.residual:.1e}, alignment "
              f"{alignment(res.K[-1], y):.4f} → {alignment(res.C[-1], y):.4f}")


def criticality_figure() -> None:
    x, y = xor_task(8)  # V of tanh needs quadrature of four-point moments: P = 8 keeps the scan to minutes
    cws = np.linspace(0.5, 1.8, 14)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for L in (3, 6, 12):
        rel, gain = [], []
        for cw in cws:
            net = nnft.MLP("tanh", depth=L, width=1000, C_W=float(cw))
            p = map_kernels(net, x, y, kappa=KAPPA, method="perturbative")
            dC = 1000 * (p.C[-1] - p.K[-1])
            rel.append(np.linalg.norm(dC) / np.linalg.norm(p.K[-1]))
            gain.append(1000 * (alignment(p.C[-1], y) - alignment(p.K[-1], y)))
        axes[0].semilogy(cws, rel, "-o", ms=3, label=f"L = {L}")
        axes[1].plot(cws, gain, "-o", ms=3, label=f"L = {L}")
    for ax in axes:
        ax.axvline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("$C_W$ (tanh, $C_b = 0$; critical at $C_W = 1$)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("$\\|V^{(L)}:\\tilde c^{(L)}\\|_F\\, /\\, \\|K^{(L)}\\|_F$  (× 1/n)")
    axes[1].set_ylabel("alignment gain  $n\\,[A(C^{(L)}) - A(K^{(L)})]$")
    fig.suptitle("Feature learning against criticality: first-order kernel adaptation of the output layer", fontsize=11)
    fig.tight_layout()
    fig.savefig(OUT / "feature_learning_criticality.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    xor_figure()
    criticality_figure()
