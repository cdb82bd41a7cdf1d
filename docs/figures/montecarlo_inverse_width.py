"""Regenerate docs/figures/montecarlo_inverse_width.png: a 1/n fit of Monte Carlo four-point data.

ReLU, L = 3, C_W = 2, C_b = 0, one input: E[z⁴]_c / (3 G²) = (1 + 5/n)² − 1 exactly (two hidden layers
of width n), so the fitted 1/n coefficient must be 10. Run from the repository root:
``python docs/figures/montecarlo_inverse_width.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nnft  # noqa: E402
from nnft.montecarlo import estimate, fit_inverse_width  # noqa: E402

WIDTHS = [4, 6, 8, 12, 16, 24, 32]
SAMPLES = 40_000


def main() -> None:
    """Estimate the normalised four-point cumulant at each width, fit c0 + c1/n + c2/n², plot."""
    x = np.ones((1, 4))
    K = 2.0 * float(x @ x.T) / x.shape[1]  # K^{(1)} = C_W |x|²/n0, preserved by ReLU at C_W = 2
    ratio, err = [], []
    for n in WIDTHS:
        net = nnft.MLP("relu", depth=3, width=n, C_b=0.0, C_W=2.0, n_out=n)
        r = estimate(net, x, samples=SAMPLES, seed=n, statistics=("G", "four_point"), warn_noisy=False)
        ratio.append(r.four_point_same.value.item() / (3 * K**2))
        err.append(r.four_point_same.stderr.item() / (3 * K**2))
    fit = fit_inverse_width(WIDTHS, ratio, err, order=2)
    inv = np.linspace(0, 1.05 / min(WIDTHS), 200)
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    ax.errorbar(1 / np.array(WIDTHS), ratio, yerr=err, fmt="o", label=f"Monte Carlo ({SAMPLES:,} networks each)")
    ax.plot(inv, fit.coef[0] + fit.coef[1] * inv + fit.coef[2] * inv**2,
            label=f"fit: slope {fit.slope:.1f} ± {fit.stderr[1]:.1f}")
    ax.plot(inv, (1 + 5 * inv) ** 2 - 1, "k--", label="exact $(1+5/n)^2-1$")
    ax.set_xlabel("1/n")
    ax.set_ylabel(r"$E[z^4]_c\,/\,3G^2$")
    ax.set_title("ReLU, L = 3, $C_W$ = 2")
    ax.legend()
    fig.tight_layout()
    out = Path(__file__).with_suffix(".png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}; slope {fit.slope:.2f} ± {fit.stderr[1]:.2f} (exact 10)")


if __name__ == "__main__":
    main()
