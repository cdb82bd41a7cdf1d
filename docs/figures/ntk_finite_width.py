"""Regenerate docs/figures/ntk_finite_width_mc.png: Monte Carlo NTK statistics against the 1/n theory.

tanh (C_b = 0.1, C_W = 1.5, λ_b = 0.5, λ_W = 1), depth L = 3, two inputs, m = 8 output neurons; at each hidden
width n a seeded ensemble of SAMPLES networks gives ``ntk_cov_cross`` (A/n), ``ntk_offdiag`` (B/n),
``ntk_preact_cross`` (D/n) and ``ntk_preact_offdiag`` (F/n) with jackknife errors. Plotted: y = n · statistic
against 1/n, the fit y = c_0 + c_1/n + c_2/n² of tests/test_ntk_finite_width_mc.py, and the theory's coefficient
(``net.ntk_statistics``) at 1/n = 0. Run from the repository root: ``python docs/figures/ntk_finite_width.py``
(about a minute on 2 cores).
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
SAMPLES = 60_000
SEED = 7
X = np.array([[1.0, 0.3, -0.5, 0.8], [-0.4, 1.1, 0.6, 0.2]])
X = X / np.linalg.norm(X, axis=1, keepdims=True) * np.array([[2.0], [1.6]])
#: (MC statistic, index in the MC layout, theory object, index in its layout, label)
PANELS = [("ntk_cov_cross", (0, 0, 0, 0), "A", (0, 0, 0, 0), r"$A_{1111}$"),
          ("ntk_offdiag", (0, 1, 0, 1), "B", (0, 0, 1, 1), r"$B_{1122}$"),
          ("ntk_preact_cross", (0, 1, 0, 1), "D", (0, 1, 0, 1), r"$D_{1212}$"),
          ("ntk_preact_offdiag", (0, 0, 1, 1), "F", (0, 1, 0, 1), r"$F_{1212}$")]


def net_at(n: int) -> nnft.MLP:
    return nnft.MLP("tanh", depth=3, width=n, n_out=8, C_b=0.1, C_W=1.5, lambda_b=0.5, lambda_W=1.0)


def main() -> None:
    theory = net_at(WIDTHS[0]).ntk_statistics(X)
    runs = [estimate(net_at(n), X, samples=SAMPLES, statistics=("ntk",), seed=SEED + n, groups=64, warn_noisy=False)
            for n in WIDTHS]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    inv = 1.0 / np.array(WIDTHS, dtype=float)
    grid = np.linspace(0.0, inv.max() * 1.05, 100)
    for ax, (stat, idx, obj, tidx, label) in zip(axes, PANELS, strict=True):
        y = np.array([n * getattr(r, stat).value[idx] for n, r in zip(WIDTHS, runs, strict=True)])
        e = np.array([n * getattr(r, stat).stderr[idx] for n, r in zip(WIDTHS, runs, strict=True)])
        fit = fit_inverse_width(WIDTHS, y, e, order=2)
        ax.errorbar(inv, y, yerr=e, fmt="o", color="C0", label="Monte Carlo, n × statistic")
        ax.plot(grid, fit(1.0 / np.maximum(grid, 1e-12)), color="C0", alpha=0.5, label="fit c₀ + c₁/n + c₂/n²")
        ax.errorbar([0.0], [fit.intercept], yerr=[fit.stderr[0]], fmt="s", color="C0", alpha=0.6)
        ax.plot([0.0], [getattr(theory, obj)[tidx]], "*", color="C3", markersize=14, label="theory (nnft)")
        ax.set_title(label)
        ax.set_xlabel("1/n")
    axes[0].set_ylabel("n × statistic")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("NTK at finite width: tanh, L = 3, two inputs — Monte Carlo vs the 1/n coefficients", fontsize=10)
    fig.tight_layout()
    out = Path(__file__).with_name("ntk_finite_width_mc.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
