"""Thread control shared by the numeric layer: how many cores, and BLAS limited inside our own threads.

When nnft runs its own worker threads (kernel tiles, Monte Carlo groups), each calling BLAS, the BLAS
library must run single-threaded inside them: otherwise OpenBLAS's spinning threads oversubscribe the
cores (measured here: a 256×64 @ 64×256 product fell from 12.8 to 0.5 GFLOP/s under load).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache

from threadpoolctl import ThreadpoolController


def n_cores() -> int:
    """Cores this process may use (its CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # inspecting the loaded libraries costs milliseconds: do it once per process
    return ThreadpoolController()


@contextmanager
def blas_threads(n: int):
    """Limit BLAS to ``n`` threads inside the ``with`` block (restored afterwards)."""
    with _controller().limit(limits=n, user_api="blas"):
        yield


__all__ = ["blas_threads", "n_cores"]
