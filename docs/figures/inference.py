"""Regenerate docs/figures/inference_regression.png: a 1-D Bayesian regression at widths 8, 32, 128 and ∞.

tanh network, L = 3, C_b = 0.1, C_W = 1.5, one output; five noisy samples of sin(2x) (σ_ε² = 0.01) on
[−2, 2]; 41 test inputs. Top row: the exact posterior of finite networks (``nnft.montecarlo.posterior``,
SAMPLES networks, mean ± 2 std as a band) with the theory's posterior mean at order 0 (NNGP) and order 1
(``nnft.posterior(..., order=1)``). Bottom row: theory − Monte Carlo for the posterior mean, with the Monte
Carlo 2-standard-error band. Run from the repository root: ``python docs/figures/inference.py`` (about a
minute on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nnft  # noqa: E402

WIDTHS = [8, 32, 128]
SAMPLES = 100_000
SEED = 3
NOISE = 0.01
X_TRAIN = np.array([-1.7, -0.9, -0.1, 0.6, 1.5])[:, None]
Y_TRAIN = np.sin(2 * X_TRAIN[:, 0]) + np.array([0.08, -0.05, 0.1, -0.02, 0.06])
X_TEST = np.linspace(-2.2, 2.2, 41)[:, None]


def net_at(n: int) -> nnft.MLP:
    return nnft.MLP("tanh", depth=3, width=n, C_b=0.1, C_W=1.5)


def main() -> None:
    fig, axes = plt.subplots(2, 4, figsize=(15, 5.6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    xs = X_TEST[:, 0]
    for col, n in enumerate([*WIDTHS, None]):
        top, bot = axes[0, col], axes[1, col]
        p0 = nnft.posterior(net_at(n or 8), X_TRAIN, Y_TRAIN, X_TEST, noise=NOISE)
        if n is None:
            top.fill_between(xs, p0.mean[:, 0] - 2 * p0.std[:, 0], p0.mean[:, 0] + 2 * p0.std[:, 0], color="0.85",
                             label="GP ± 2 std")
            top.plot(xs, p0.mean[:, 0], "C0", label="order 0 (NNGP) = exact")
            top.set_title("n = ∞")
            bot.axhline(0.0, color="0.5", lw=0.8)
            bot.text(0.5, 0.5, "exact: the GP", ha="center", va="center", transform=bot.transAxes)
        else:
            net = net_at(n)
            mc = nnft.montecarlo.posterior(net, X_TRAIN, Y_TRAIN, X_TEST, noise=NOISE, samples=SAMPLES, seed=SEED + n)
            p1 = nnft.posterior(net, X_TRAIN, Y_TRAIN, X_TEST, noise=NOISE, order=1)
            m, s = mc.mean[:, 0], mc.std[:, 0]
            top.fill_between(xs, m - 2 * s, m + 2 * s, color="0.85", label="finite networks (MC) ± 2 std")
            top.plot(xs, m, color="k", lw=1.2, label="finite networks (MC) mean")
            top.plot(xs, p0.mean[:, 0], "C0--", label="order 0 (NNGP)")
            top.plot(xs, p1.mean[:, 0], "C3:", lw=2, label="order 1/n")
            top.set_title(f"n = {n}  (ESS {mc.ess:.0f} of {SAMPLES})")
            e = 2 * mc.mean_stderr[:, 0]
            bot.fill_between(xs, -e, e, color="0.85", label="MC ± 2 s.e.")
            bot.plot(xs, p0.mean[:, 0] - m, "C0--", label="order 0 − MC")
            bot.plot(xs, p1.mean[:, 0] - m, "C3", label="order 1 − MC")
        top.plot(X_TRAIN[:, 0], Y_TRAIN, "o", color="C2", ms=5, label="data")
        bot.set_xlabel("x")
    axes[0, 0].set_ylabel("posterior of z(x)")
    axes[1, 0].set_ylabel("theory − MC (mean)")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    axes[1, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Bayesian regression with a tanh network (L = 3): exact finite-width posterior vs the 1/n theory")
    fig.tight_layout()
    out = Path(__file__).with_name("inference_regression.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
