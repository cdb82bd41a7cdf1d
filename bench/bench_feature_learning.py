"""Benchmark the forward–backward saddle solver: nnft's against scipy's Newton–Krylov on the same equations.

Run from the repository root (a few minutes)::

    python bench/bench_feature_learning.py [--json bench/bench_feature_learning.json]

A deep linear network (depth 3, width n, no biases) on P training points in n₀ = 2P dimensions (targets
tanh of a random projection, κ = 0.1), for (P, n) ∈ {(8, 64), (16, 64), (32, 64), (16, 16)}, in one run,
medians of ``REPEAT`` calls:

1. ``nnft.feature_learning.map_kernels(method="closed_form")``: the derived maps, first-order start,
   Newton–Krylov at the target width, Anderson-accelerated continuation in width when that fails;
2. the baseline: ``scipy.optimize.newton_krylov`` on the residual ``n(T(C̃) − C̃)`` of the same derived maps
   (``nnft.feature_learning.saddle._Sweep``), started from C̃ = 0 (the NNGP) at the target width, f_tol 1e-12
   (nnft's tolerance is 1e-12 on the same residual, relative).

Both must agree on the output kernel to 1e-8 when the baseline converges (asserted); reports the times, the
sweeps nnft needed, and the ratio baseline / nnft ("fail" when Newton–Krylov does not converge from cold).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from scipy.optimize import newton_krylov

import nnft
from nnft.feature_learning import map_kernels
from nnft.feature_learning.saddle import _Sweep

REPEAT = 5
CASES = ((8, 64), (16, 64), (32, 64), (16, 16))
KAPPA = 0.1


def task(P: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(P, 2 * P))
    return x, np.tanh(x @ rng.normal(size=2 * P) / np.sqrt(2 * P)) * 1.5


def baseline(net, x, y):
    K1 = net.kernels(x, ntk=False, layers="all").K[0]
    P = x.shape[0]
    sw = _Sweep(net, K1, y[:, None], P, KAPPA, True)
    L = net.depth

    n_of = np.array([1.0] + list(net.widths))[:, None, None]

    def residual(v):  # in units of n C̃ (order one), as nnft's own residual
        Ct = v.reshape(L, P, P) / n_of
        C, mom = sw.forward(Ct, 1.0)
        return ((sw.backward(C, mom, 1.0) - Ct) * n_of).ravel()

    sol = newton_krylov(residual, np.zeros(L * P * P), f_tol=1e-12, maxiter=200)
    C, _ = sw.forward(sol.reshape(L, P, P) / n_of, 1.0)
    return C


def timed(f):
    ts, out = [], None
    for _ in range(REPEAT):
        t = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for P, n in CASES:
        x, y = task(P)
        net = nnft.MLP("linear", depth=3, width=n)
        t_nnft, r = timed(lambda net=net, x=x, y=y: map_kernels(net, x, y, kappa=KAPPA))
        try:
            t_base, C = timed(lambda net=net, x=x, y=y: baseline(net, x, y))
            ratio = t_base / t_nnft
        except Exception as err:  # noqa: BLE001 - a cold Newton–Krylov that does not converge is a result
            t_base, ratio, C = float("nan"), f"fail ({type(err).__name__})", None
        if C is not None:  # both converged: they must agree (a disagreement is a bug, not a baseline failure)
            assert np.abs(C[-1] - r.C[-1]).max() < 1e-8 * np.abs(r.C[-1]).max(), (P, n)
        rows.append({"P": P, "n": n, "nnft_s": t_nnft, "sweeps": r.iterations, "baseline_s": t_base,
                     "ratio": ratio})
        print(f"P = {P:3d}, n = {n:3d}: nnft {t_nnft * 1e3:8.1f} ms ({r.iterations} sweeps), newton_krylov "
              f"{t_base * 1e3:8.1f} ms, baseline/nnft = {ratio if isinstance(ratio, str) else f'{ratio:.2f}'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"repeat": REPEAT, "kappa": KAPPA, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
