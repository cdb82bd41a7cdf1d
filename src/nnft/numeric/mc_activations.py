"""The activation σ and its derivative σ′ as vectorised numpy functions for the Monte Carlo samplers.

σ comes from the activation's generated numpy code when it agrees with ``sympy.lambdify`` on a probe
grid, else from lambdify itself (recorded as ``info["sigma"]``); σ′ always from lambdify. Results are
cached per activation, behind a lock so threads build each pair once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache

import numpy as np

_SIGMA_LOCK = threading.Lock()


@lru_cache(maxsize=64)
def _numpy_functions(act) -> tuple[Callable, Callable, str]:
    """(σ, σ′, how σ was built) as vectorised numpy functions of one float64 array."""
    import sympy as sp

    from nnft.activations import z
    from nnft.functions import unsafe

    def lamb(expr):
        f = sp.lambdify(z, unsafe(expr), modules=["scipy", "numpy"])
        return lambda t: np.broadcast_to(np.asarray(f(t), dtype=np.float64), np.shape(t))

    ref = lamb(act.expr)
    d = lamb(act.derivative)
    probe = np.linspace(-3.1, 2.7, 13)
    try:
        f = act.numpy()
        if not np.allclose(np.asarray(f(probe), dtype=np.float64), ref(probe), rtol=1e-12, atol=1e-14):
            raise ValueError("act.numpy() disagrees with sympy.lambdify")
        fn = f
        how = "activation.numpy()"
    except Exception as exc:  # the code generator may be unavailable; lambdify is the reference
        fn = ref
        how = f"sympy.lambdify fallback ({type(exc).__name__})"

    def sigma(t):
        return np.asarray(fn(t), dtype=np.float64)

    return sigma, d, how


def _functions(act) -> tuple[Callable, Callable, str]:
    """(σ, σ′, how) of ``act``, built once per activation even when threads ask at the same time."""
    with _SIGMA_LOCK:
        return _numpy_functions(act)
