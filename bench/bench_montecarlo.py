"""Benchmark of nnft.montecarlo: throughput as ratios against the machine measured in the same run.

Run: ``python bench/bench_montecarlo.py [--quick] [--no-nt]``. Reports (medians of repeats):

1. the machine: float64 GEMM 2048² (GFLOP/s), the same-shape batched GEMM the sampler does
   ((B, n, n) @ (B, n, P)), and numpy's normal generator (normals/s) — every explicit weight is one normal;
2. explicit sampler: networks × layers × width² per second, against the GEMM rate (as n²·P MAC/s vs
   FLOP/2) and against the bound min(RNG, batched GEMM) that drawing + multiplying the weights allows;
3. conditional sampler: speed-up over explicit weights at equal statistical error
   (time ratio × squared standard-error ratio, same S);
4. a naive per-network numpy loop, and neural-tangents' ``monte_carlo_kernel_fn`` (via /work/ntvenv,
   if installed), as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np

import nnft
from nnft.montecarlo import NoisyEstimateWarning, estimate

warnings.simplefilter("ignore", NoisyEstimateWarning)


def median_time(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def machine(n_list, P: int) -> dict:
    a = np.random.default_rng(0).standard_normal((2048, 2048))
    t = median_time(lambda: a @ a)
    gemm = 2 * 2048**3 / t
    rng = np.random.default_rng(1)
    t = median_time(lambda: rng.standard_normal(1 << 24))
    normals = (1 << 24) / t
    batched = {}
    for n in n_list:
        B = max(1, (1 << 22) // (n * n))
        W = rng.standard_normal((B, n, n))
        h = rng.standard_normal((B, n, P))
        t = median_time(lambda W=W, h=h: np.matmul(W, h))
        batched[n] = 2 * B * n * n * P / t
    return {"gemm_flops": gemm, "normals_per_s": normals, "batched_gemm_flops": batched}


def bench_explicit(n: int, L: int, P: int, S: int) -> dict:
    net = nnft.MLP("tanh", depth=L, width=n, C_b=0.1, C_W=1.5, n_out=n)
    x = np.random.default_rng(0).standard_normal((P, 8))
    t = median_time(lambda: estimate(net, x, samples=S, seed=1, sampler="explicit", statistics="G", groups=8))
    return {"seconds": t, "weights_per_s": S * L * n * n / t, "mac_per_s": S * L * n * n * P / t}


def bench_conditional_vs_explicit(n: int, L: int, P: int, S: int) -> dict:
    net = nnft.MLP("tanh", depth=L, width=n, C_b=0.1, C_W=1.5, n_out=n)
    x = np.random.default_rng(0).standard_normal((P, 8))
    res = {}
    for sampler in ("explicit", "conditional"):
        t = median_time(lambda s=sampler: estimate(net, x, samples=S, seed=1, sampler=s, groups=16,
                                                   statistics=("G", "four_point")))
        r = estimate(net, x, samples=S, seed=1, sampler=sampler, groups=16, statistics=("G", "four_point"))
        res[sampler] = (t, float(np.median(r.four_point_same.stderr)), float(np.median(r.G.stderr)))
    (te, ee, ge), (tc, ec, gc) = res["explicit"], res["conditional"]
    return {
        "t_explicit": te,
        "t_conditional": tc,
        "speedup_equal_error_4pt": (te / tc) * (ee / ec) ** 2,
        "speedup_equal_error_G": (te / tc) * (ge / gc) ** 2,
    }


def naive_loop(n: int, L: int, P: int, S: int) -> float:
    """Per-network numpy loop computing the same per-network statistics (a = zᵀz/m and its square)."""
    x = np.random.default_rng(0).standard_normal((P, 8))
    rng = np.random.default_rng(2)

    def run():
        acc = np.zeros((P, P))
        acc2 = np.zeros((P * P, P * P))
        for _ in range(S):
            h = x.T
            for ell in range(L):
                W = rng.normal(0.0, np.sqrt(1.5 / h.shape[0]), size=(n, h.shape[0]))
                b = rng.normal(0.0, np.sqrt(0.1), size=n)
                z = W @ (h if ell == 0 else np.tanh(h)) + b[:, None]
                h = z
            a = h.T @ h / n
            acc += a
            acc2 += np.outer(a, a)
        return acc

    return median_time(run, repeats=3)


NT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from neural_tangents import stax
    import neural_tangents as nt
    n, L, P, S = map(int, sys.argv[1:5])
    layers = []
    for _ in range(L - 1):
        layers += [stax.Dense(n, W_std=1.5 ** 0.5, b_std=0.1 ** 0.5), stax.Erf()]
    layers += [stax.Dense(n, W_std=1.5 ** 0.5, b_std=0.1 ** 0.5)]
    init_fn, apply_fn, _ = stax.serial(*layers)
    x = np.random.default_rng(0).standard_normal((P, 8))
    key = jax.random.PRNGKey(1)
    fn = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, S, trace_axes=(-1,), implementation=1)
    fn(x, None, "nngp")
    ts = []
    for _ in range(3):
        t = time.perf_counter(); np.asarray(fn(x, None, "nngp")); ts.append(time.perf_counter() - t)
    print(json.dumps({"seconds": sorted(ts)[1]}))
    """
)


def neural_tangents(n: int, L: int, P: int, S: int) -> float | None:
    py = "/work/ntvenv/bin/python"
    if not os.path.exists(py):
        return None
    try:
        out = subprocess.run([py, "-c", NT_SCRIPT, str(n), str(L), str(P), str(S)], capture_output=True,
                             text=True, timeout=900, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    except Exception as exc:  # report, never fail the benchmark on the peer
        print(f"  neural-tangents failed: {type(exc).__name__}: {str(exc)[:200]}")
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-nt", action="store_true")
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_info

        kern = {d.get("internal_api"): d.get("architecture") for d in threadpool_info()}
    except Exception:
        kern = {}
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}  BLAS: {kern}  cores: {os.cpu_count()}")
    L, P = 4, 4
    widths = [64, 128, 256] if not args.quick else [64, 128]
    m = machine(widths, P)
    print(f"machine: GEMM 2048² {m['gemm_flops'] / 1e9:.1f} GFLOP/s; numpy normals {m['normals_per_s'] / 1e6:.0f} M/s")
    print("\nexplicit sampler (tanh, L = 4, P = 4, statistic G):")
    print(" n    S     s      weights/s   MAC/s      %GEMM   batched-GEMM  bound=min(RNG,bGEMM)  %bound")
    for n in widths:
        S = max(64, int(2e8 // (L * n * n))) if not args.quick else max(64, int(5e7 // (L * n * n)))
        r = bench_explicit(n, L, P, S)
        bg = m["batched_gemm_flops"][n]
        # time per weight: one normal + P multiply-adds in the batched GEMM
        bound = 1.0 / (1.0 / m["normals_per_s"] + 2 * P / bg)
        print(f" {n:<4} {S:<5} {r['seconds']:.2f}  {r['weights_per_s']:.3g}  {r['mac_per_s']:.3g}  "
              f"{100 * 2 * r['mac_per_s'] / m['gemm_flops']:5.1f}%  {bg / 1e9:6.1f} GF/s    {bound:.3g} w/s"
              f"            {100 * r['weights_per_s'] / bound:5.1f}%")
    print("\nexplicit sampler, n = 128, more inputs per network (the GEMM share grows with P):")
    for PP in ([4, 64, 256] if not args.quick else [4, 64]):
        S = 400
        r = bench_explicit(128, L, PP, S)
        print(f" P={PP:<4} S={S}: {r['weights_per_s']:.3g} weights/s, {2 * r['mac_per_s'] / 1e9:.2f} GFLOP/s = "
              f"{100 * 2 * r['mac_per_s'] / m['gemm_flops']:.0f}% of GEMM 2048²")
    print("\nconditional vs explicit at equal statistical error (tanh, L = 4, P = 4):")
    for n in ([16, 64] if args.quick else [16, 64, 256]):
        S = 4000 if n < 256 else 1000
        c = bench_conditional_vs_explicit(n, L, P, S)
        print(f" n={n:<4} S={S}: explicit {c['t_explicit']:.2f} s, conditional {c['t_conditional']:.3f} s; "
              f"speed-up at equal error: four-point {c['speedup_equal_error_4pt']:.1f}x, G "
              f"{c['speedup_equal_error_G']:.1f}x")
    print("\nagainst a naive per-network numpy loop (explicit weights, tanh, L = 4, P = 4, statistic G):")
    for n in [16, 64]:
        S = 2000
        tn = naive_loop(n, L, P, S)
        te = bench_explicit(n, L, P, S)["seconds"]
        net = nnft.MLP("tanh", depth=L, width=n, C_b=0.1, C_W=1.5, n_out=n)
        x = np.random.default_rng(0).standard_normal((P, 8))
        tc = median_time(lambda net=net, x=x, S=S: estimate(net, x, samples=S, seed=1, statistics="G", groups=8))
        print(f" n={n:<4} S={S}: naive {tn:.2f} s, explicit {te:.3f} s ({tn / te:.1f}x), conditional {tc:.3f} s "
              f"({tn / tc:.0f}x)")
    if not args.no_nt:
        print("\nagainst neural-tangents monte_carlo_kernel_fn (erf, NNGP of the output, implementation=1):")
        n, S = 64, 256
        tnt = neural_tangents(n, L, P, S)
        if tnt is None:
            print("  neural-tangents not available (needs /work/ntvenv)")
        else:
            net = nnft.MLP("erf", depth=L, width=n, C_b=0.1, C_W=1.5, n_out=n)
            x = np.random.default_rng(0).standard_normal((P, 8))
            te = median_time(lambda: estimate(net, x, samples=S, seed=1, sampler="explicit", statistics="G",
                                              groups=8))
            tc = median_time(lambda: estimate(net, x, samples=S, seed=1, statistics="G", groups=8))
            print(f" n={n}, S={S}, P={P}: neural-tangents {tnt:.2f} s, nnft explicit {te:.3f} s "
                  f"({tnt / te:.0f}x), conditional {tc:.3f} s ({tnt / tc:.0f}x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
