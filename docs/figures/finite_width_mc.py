"""Regenerate docs/figures/finite_width_mc.png: Monte Carlo four-point functions and G − K against V/n and K1/n.

tanh at criticality (C_b = 0, C_W = 1), depth L = 5, two inputs; at each hidden width n a seeded ensemble
of SAMPLES networks (n_out = max(64, 2n) output neurons) gives the cross-neuron connected four-point
function and G − K with jackknife errors. Plotted against 1/n: the estimates, the theory's leading term
(a line through the origin of slope V_{(ab)(cd)}, resp. K1_{ab}) and the fit y(n) = n·statistic =
c_0 + c_1/n + c_2/n² of tests/test_finite_width_mc.py, whose c_0 is the measured slope at the origin.
Run from the repository root: ``python docs/figures/finite_width_mc.py`` (about 30 s on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nnft  # noqa: E402
from nnft.montecarlo import estimate, fit_inverse_width  # noqa: E402

WIDTHS = [16, 24, 32, 48, 64, 128]
SAMPLES = 150_000
SEED = 2024
X = np.array([[1.0, 0.3, -0.5, 0.8], [-0.4, 1.1, 0.6, 0.2]])
X = X / np.linalg.norm(X, axis=1, keepdims=True) * np.array([[2.0], [1.6]])
FOUR = [((0, 0, 0, 0), r"$V_{(11)(11)}$"), ((0, 1, 0, 1), r"$V_{(12)(12)}$"), ((0, 0, 1, 1), r"$V_{(11)(22)}$")]
TWO = [((0, 0), r"$K^{\{1\}}_{11}$"), ((1, 1), r"$K^{\{1\}}_{22}$"), ((0, 1), r"$K^{\{1\}}_{12}$")]


def network(n: int) -> nnft.MLP:
    return nnft.MLP("tanh", depth=5, width=n, C_b=0.0, C_W=1.0, n_out=max(64, 2 * n))


def main() -> None:
    """Sample, fit and plot; print the fitted slopes with their z-scores against the theory."""
    theory = network(32).cumulants(X)
    K = theory.K
    cross, cross_err, g, g_err = [], [], [], []
    for n in WIDTHS:
        r = estimate(network(n), X, samples=SAMPLES, seed=SEED + n, statistics=("G", "four_point"),
                     warn_noisy=False)
        cross.append(r.four_point_cross.value)
        cross_err.append(r.four_point_cross.stderr)
        g.append(r.G.value - K)
        g_err.append(r.G.stderr)
    n = np.array(WIDTHS, dtype=float)
    inv = np.linspace(0, 1.08 / n.min(), 200)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    panels = [(axes[0], FOUR, np.array(cross), np.array(cross_err), theory.V,
               "cross-neuron $E[z_{i;a}z_{i;b}z_{j;c}z_{j;d}]_c$", "connected four-point"),
              (axes[1], TWO, np.array(g), np.array(g_err), theory.K1, "$G_{ab} - K_{ab}$", "NLO metric")]
    for ax, entries, val, err, coef, ylabel, title in panels:
        for k, (idx, label) in enumerate(entries):
            sel = (slice(None), *idx)
            y, e = val[sel], err[sel]
            fit = fit_inverse_width(n, n * y, n * e, order=2)
            z = fit.zscore(intercept=coef[idx])["intercept"]
            color = f"C{k}"
            ax.errorbar(1 / n, y, yerr=e, fmt="o", color=color, ms=4, capsize=2,
                        label=f"{label}: theory {coef[idx]:+.4f}, fit {fit.intercept:+.4f} ± {fit.stderr[0]:.4f}")
            ax.plot(inv, coef[idx] * inv, "-", color=color, lw=1.2)
            ax.plot(inv, inv * (fit.coef[0] + fit.coef[1] * inv + fit.coef[2] * inv**2), ":", color=color, lw=1)
            print(f"{title:20s} {label:18s} theory {coef[idx]:+.5f}  fit {fit.intercept:+.5f} ± {fit.stderr[0]:.5f}"
                  f"  z {z:+.2f}  χ²/dof {fit.chi2:.1f}/{fit.dof}")
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_xlabel("1/n")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: solid = theory (slope at 0), dotted = fit")
        ax.legend(fontsize=7.5, loc="best")
    fig.suptitle(f"tanh, L = 5, $C_b$ = 0, $C_W$ = 1: Monte Carlo ({SAMPLES:,} networks per width) vs 1/n theory",
                 fontsize=11)
    fig.tight_layout()
    out = Path(__file__).with_suffix(".png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
