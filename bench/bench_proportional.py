"""Benchmark the proportional-limit saddle point: nnft's pencil-mode solver against a dense per-evaluation solver.

Run from the repository root (about a minute)::

    python bench/bench_proportional.py [--json bench/bench_proportional.json]

For P = 100, 200, 400 training points (a linear network, one hidden layer of width n = P, σ_ε² = 0.3 and an
erf network with two hidden layers; closed-form kernels), in one run, medians of ``REPEAT`` calls:

1. ``nnft.proportional.renormalised_posterior`` (the kernel, one eigendecomposition of the pencil
   ``(B, K_w)``, an O(P)-per-evaluation bracketed root in ln Q, the GP prediction);
2. the baseline: the same kernel, then the action ``n(Q − ln Q) + ln det(B + qK) + yᵀ(B + qK)⁻¹y``
   minimised over ln Q by ``scipy.optimize.minimize_scalar`` with a Cholesky factorisation per
   evaluation (what deepbays does, with ``slogdet``/``solve``), then the same GP prediction.

Both must agree on q to 1e-7 (asserted). Reports the times and their ratio baseline / nnft.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize_scalar

import nnft
from nnft.proportional import renormalised_posterior

REPEAT = 5


def _median(fn) -> tuple[float, object]:
    ts, out = [], None
    for _ in range(REPEAT):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def dense(net, x, y, xb, noise):
    """The baseline saddle: a Cholesky of B + qK per evaluation of the action."""
    K = net.nngp(np.vstack([x, xb]))
    P = len(y)
    Kw = K[:P, :P]
    n = np.asarray(net.widths, dtype=float)

    def S(v):
        c = n.min() * np.expm1(v)
        Q = 1 + c / n
        q = np.prod(Q)
        A = noise * np.eye(P) + q * Kw
        cf = cho_factor(A, lower=True)
        return np.sum(n * (Q - np.log(Q))) + 2 * np.sum(np.log(np.diag(cf[0]))) + y @ cho_solve(cf, y)

    v = minimize_scalar(S, bounds=(-6, 6), method="bounded", options={"xatol": 1e-12}).x
    Q = 1 + n.min() * np.expm1(v) / n
    q = float(np.prod(Q))
    A = noise * np.eye(P) + q * Kw
    mean = q * K[P:, :P] @ np.linalg.solve(A, y)
    return q, mean


def run() -> list[dict]:
    rows = []
    for act, depth in (("linear", 2), ("erf", 3)):
        for P in (100, 200, 400):
            rng = np.random.default_rng(P)
            x, xb = rng.normal(size=(P, P)), rng.normal(size=(10, P))
            y = np.tanh(x[:, 0]) + 0.1 * rng.normal(size=P)
            net = nnft.MLP(act, depth=depth, width=P, C_W=1.2, C_b=0.0)
            renormalised_posterior(net, x, y, xb, noise=0.3)  # warm: the sympy derivation, code generation
            t_nnft, r = _median(lambda net=net, x=x, y=y, xb=xb: renormalised_posterior(net, x, y, xb, noise=0.3))
            t_dense, (q, _) = _median(lambda net=net, x=x, y=y, xb=xb: dense(net, x, y, xb, 0.3))
            assert abs(q - r.q) < 1e-7 * q, (q, r.q)
            rows.append({"activation": act, "depth": depth, "P": P, "nnft_s": t_nnft, "dense_s": t_dense,
                         "dense_over_nnft": t_dense / t_nnft})
            print(f"| {act} L={depth} | {P} | {t_nnft * 1e3:.1f} ms | {t_dense * 1e3:.1f} ms | "
                  f"{t_dense / t_nnft:.2f} |", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    print("| network | P | nnft | dense baseline | ratio |\n|---|---|---|---|---|")
    rows = run()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
