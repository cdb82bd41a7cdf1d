"""Throughput of nnft.numeric.quadrature (entries/s) for tanh and relu at the default order.

Run: ``python bench/bench_quadrature.py``. Entries are a typical kernel block: variances in [0.5, 2],
correlations uniform in [-0.95, 0.95] plus a few exact ±1, one thread (numpy ufuncs).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import erf

from nnft.numeric.quadrature import gauss1, gauss2, gauss2_product


def entries(n: int, kmin: float, kmax: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    Kaa = rng.uniform(kmin, kmax, n)
    Kbb = rng.uniform(kmin, kmax, n)
    c = rng.uniform(-0.95, 0.95, n)
    c[:10] = 1.0
    return Kaa, c * np.sqrt(Kaa * Kbb), Kbb


def rate(fn, n_entries: int, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_entries / best


def main() -> None:
    def relu(z):
        return np.maximum(z, 0.0)

    n = 5000
    for kmin, kmax in [(0.5, 2.0), (20.0, 50.0)]:
        Kaa, Kab, Kbb = entries(n, kmin, kmax)
        print(f"K in [{kmin}, {kmax}], {n} entries")
        K = (Kaa, Kab, Kbb)
        cases = {
            "gauss2_product tanh": lambda K=K: gauss2_product(np.tanh, np.tanh, *K),
            "gauss2_product relu": lambda K=K: gauss2_product(relu, relu, *K, (0.0,), (0.0,)),
            "gauss2_product erf ": lambda K=K: gauss2_product(erf, erf, *K),
            "gauss2 tanh        ": lambda K=K: gauss2(lambda x, y: np.tanh(x) * np.tanh(y), *K),
            "gauss1 tanh        ": lambda K=K: gauss1(np.tanh, K[0]),
        }
        for name, fn in cases.items():
            print(f"  {name}  {rate(fn, n):.3g} entries/s")


if __name__ == "__main__":
    main()
