"""Regenerate docs/figures/proportional_test_error.png: test error against α = P/n, theory against finite networks.

One hidden layer of width n = 32, P = αn training points in n_0 = P dimensions from a tanh teacher with
noise 0.1 (σ_ε² = 0.05 in the likelihood), 20 test points, α ∈ {0.25, 0.5, 1, 1.5, 2}; a linear network
(C_W = 1) and a relu network (C_W = 2), no biases. Points: the exact posterior of finite networks
(``nnft.montecarlo.posterior``, SAMPLES networks, ± 2 standard errors); lines: the renormalised-kernel
theory (``nnft.proportional.renormalised_posterior``) and the infinite-width NNGP posterior
(``nnft.posterior``), all on the same data; for the linear network also the exact posterior by quadrature
(the test oracle ``tests/deep_linear_oracle.py``). Each Monte Carlo point is labelled with its effective
sample size: at α ≥ 1.5 importance weighting of prior networks degenerates. Run from the repository root:
``python docs/figures/proportional.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nnft  # noqa: E402
from nnft.proportional import renormalised_posterior  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from deep_linear_oracle import one_output  # noqa: E402  (the exact linear posterior by quadrature)

N = 32
ALPHAS = (0.25, 0.5, 1.0, 1.5, 2.0)
SAMPLES = 50_000
NOISE = 0.05


def task(P: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(P, P)), rng.normal(size=P)
    y = np.tanh(x @ w / np.sqrt(P)) + 0.1 * rng.normal(size=P)
    xb = rng.normal(size=(20, P))
    return x, y, xb, np.tanh(xb @ w / np.sqrt(P))


def test_error(mean, std, yb) -> float:
    return float(np.mean((mean[:, 0] - yb) ** 2) + np.mean(std[:, 0] ** 2))


def main() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (act, C_W) in zip(axes, (("linear", 1.0), ("relu", 2.0)), strict=True):
        rows = []
        for alpha in ALPHAS:
            P = int(round(alpha * N))
            x, y, xb, yb = task(P)
            net = nnft.MLP(act, depth=2, width=N, C_W=C_W, C_b=0.0)
            mc = nnft.montecarlo.posterior(net, x, y, xb, noise=NOISE, samples=SAMPLES, seed=1)
            d = mc.mean[:, 0] - yb
            se = (np.sqrt(np.sum((2 * d * mc.mean_stderr[:, 0]) ** 2))
                  + np.sqrt(np.sum(np.diag(mc.cov_stderr[0, :, 0, :]) ** 2))) / len(yb)
            th = renormalised_posterior(net, x, y, xb, noise=NOISE)
            gp = nnft.posterior(net, x, y, xb, noise=NOISE)
            exact = np.nan
            if act == "linear":
                m, c, _ = one_output(x, y, xb, C_W=C_W, widths=[N], noise=NOISE)
                exact = test_error(m[:, None], np.sqrt(np.diag(c))[:, None], yb)
            rows.append((alpha, test_error(mc.mean, mc.std, yb), se, test_error(th.mean, th.std, yb),
                         test_error(gp.mean, gp.std, yb), mc.ess, exact))
            print(f"{act} α={alpha}: MC {rows[-1][1]:.4f} ± {se:.4f} (ESS {mc.ess:.0f}), theory {rows[-1][3]:.4f}, "
                  f"NNGP {rows[-1][4]:.4f}", flush=True)
        a, e, s, t, g, ess, ex = (np.array(c) for c in zip(*rows, strict=True))
        if act == "linear":
            ax.plot(a, ex, "k-", lw=1, label=f"finite networks, n = {N}, exact (quadrature)")
        ax.errorbar(a, e, yerr=2 * s, fmt="ko", ms=5, capsize=3, label=f"finite networks, n = {N} (Monte Carlo)")
        for ai, ei, ni in zip(a, e, ess, strict=True):
            ax.annotate(f"ESS {ni:.0f}", (ai, ei), textcoords="offset points", xytext=(4, 6), fontsize=7)
        ax.plot(a, t, "C3-", marker="s", ms=4, label="renormalised kernel (saddle point)")
        ax.plot(a, g, "C0--", marker="^", ms=4, label="NNGP (infinite width)")
        ax.set_xlabel("α = P / n")
        ax.set_ylabel("test error ε_g = bias² + variance")
        ax.set_title(f"{act}, one hidden layer")
        ax.legend(fontsize=8)
    fig.suptitle("Proportional limit: test error of the Bayesian posterior against α")
    fig.tight_layout()
    out = Path(__file__).with_name("proportional_test_error.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
