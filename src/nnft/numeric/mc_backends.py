"""Execution of the groups of a Monte Carlo plan: serially, on a thread pool, or as Dask tasks.

Every backend runs :func:`nnft.numeric.mc_features._run_group` once per group and returns the group
sums in group order, so the folded result is bit-identical whichever backend or thread count ran it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from nnft.numeric.mc_features import _run_group
from nnft.numeric.mc_plan import _as_count, _Plan
from nnft.numeric.mc_result import MonteCarloError
from nnft.numeric.parallel import blas_threads, n_cores


def _run_groups(
    plan: _Plan, backend: str, workers: int | None, client, tick: Callable[[int], None]
) -> list[dict[str, np.ndarray]]:
    """The sums of every group of ``plan`` in group order, computed by ``backend`` ("numpy" or "dask")."""
    if backend == "numpy":
        return _run_threads(plan, workers, tick)
    if backend == "dask":
        return _run_dask(plan, client, tick)
    raise MonteCarloError(f"backend must be 'numpy' or 'dask', got {backend!r}")


def _run_threads(plan: _Plan, workers: int | None, tick: Callable[[int], None]) -> list[dict[str, np.ndarray]]:
    """Groups on ``workers`` threads (default all cores, one BLAS thread each), or inline with one worker."""
    groups = plan.groups
    nthreads = n_cores() if workers is None else _as_count("workers", workers, 1)
    nthreads = min(nthreads, groups)
    if nthreads == 1:
        return [_run_group(plan, g, tick) for g in range(groups)]
    with blas_threads(1), ThreadPoolExecutor(nthreads) as pool:
        return list(pool.map(lambda g: _run_group(plan, g, tick), range(groups)))


def _run_dask(plan: _Plan, client, tick) -> list[dict[str, np.ndarray]]:
    """One Dask task per group; partial sums gathered and folded in group order (exactly as in-process)."""
    try:
        from distributed import as_completed, get_client
    except ImportError as exc:  # pragma: no cover - dask is a test dependency
        raise MonteCarloError("backend='dask' needs the distributed package: pip install 'nnft[dask]'") from exc
    if client is None:
        try:
            client = get_client()
        except ValueError as exc:
            raise MonteCarloError(
                "backend='dask' needs a dask.distributed.Client: pass client=Client(...) or create one first"
            ) from exc
    futures = [client.submit(_run_group, plan, g, None, pure=False) for g in range(plan.groups)]
    index = {f.key: g for g, f in enumerate(futures)}
    parts: list[dict | None] = [None] * plan.groups
    for fut in as_completed(futures):
        g = index[fut.key]
        parts[g] = fut.result()
        tick(plan.group_sizes[g])
    return parts  # type: ignore[return-value]
