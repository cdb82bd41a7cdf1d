"""Benchmark criticality: the generated float64 path against the mpmath path and a brute-force scan, as ratios.

Run from the repository root (about 1 minute)::

    python bench/bench_criticality.py [--json bench/bench_criticality.json]

Per activation (gelu: closed form; swish: quadrature; tanh: K* = 0 class plus a search that finds nothing
else), in one run, medians of ``REPEAT`` warm calls (the symbolic derivation and code generation happen in
the first, untimed call and are reported separately):

1. ``nnft.criticality(σ)`` on the generated float64 path;
2. ``nnft.criticality(σ, dps=30)`` (mpmath root refinement of the same expressions);
3. the first call (sympy derivation of g, g', g'', ⟨σ'²⟩, ⟨σ⁴⟩, the class expansions, code generation).

Also ``depth_scales`` and ``phase_diagram`` (400 points) per activation. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import nnft
from nnft.criticality import depth_scales, phase_diagram

REPEAT = 5


def _median(fn, repeat: int = REPEAT) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run() -> list[dict]:
    rows = []
    for act, off in (("gelu", (0.1, 1.5)), ("swish", (0.1, 1.5)), ("tanh", (0.05, 2.0))):
        t = time.perf_counter()
        nnft.criticality(act)
        first = time.perf_counter() - t
        fast = _median(lambda a=act: nnft.criticality(a))
        mp30 = _median(lambda a=act: nnft.criticality(a, dps=30), repeat=3)
        row = {"activation": act, "first_call_s": first, "float_s": fast, "dps30_s": mp30,
               "dps30_over_float": mp30 / fast}
        row["depth_scales_s"] = _median(lambda a=act, o=off: depth_scales(a, *o))
        row["phase_diagram_400_s"] = _median(lambda a=act: phase_diagram(a, n=400), repeat=3)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = run()
    print("| σ | first call (s) | float (s) | dps=30 (s) | dps30/float | depth_scales (s) | phase_diagram 400 (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['activation']} | {r['first_call_s']:.2f} | {r['float_s']:.3f} | {r['dps30_s']:.2f} | "
              f"{r['dps30_over_float']:.1f}× | {r['depth_scales_s']:.3f} | "
              f"{r['phase_diagram_400_s']:.3f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
