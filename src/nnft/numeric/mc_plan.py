"""The sampling plan of a Monte Carlo run: the validated request that every worker executes.

:class:`_Plan` is a frozen, picklable record (no callables) of the inputs, widths, variances,
activation, sampler, layers, statistics, seed and group sizes, so a group can run in a thread or in a
Dask worker alike; :data:`STATISTICS` lists the statistic families that can be requested and
:func:`_as_count` validates the integer counts of a request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnft.numeric.mc_result import MonteCarloError

__all__ = ["STATISTICS"]

#: Statistic families that can be requested (``statistics=``); ``"ntk"`` yields the seven ntk_* results
#: (mean, var, cov_cross, offdiag, preact_same, preact_cross, preact_offdiag).
STATISTICS = ("G", "four_point", "six_point", "ntk")


@dataclass(frozen=True)
class _Plan:
    """Everything a worker needs to process one group: picklable, no callables."""

    x: np.ndarray
    n: tuple[int, ...]  # n_0 .. n_Lmax
    C_b: tuple[float, ...]
    C_W: tuple[float, ...]
    lambda_b: tuple[float, ...]
    lambda_W: tuple[float, ...]
    activation: object  # nnft Activation (sympy expression inside; pickles)
    sampler: str
    layers: tuple[int, ...]
    stats: tuple[str, ...]
    six_input: int
    seed: int
    groups: int
    group_sizes: tuple[int, ...]
    batch_size: int

    @property
    def depth(self) -> int:
        """The number of layers pushed through (the deepest requested layer, or L for the NTK)."""
        return len(self.n) - 1

    @property
    def draws_per_network(self) -> int:
        """How many standard normals one network consumes (fixed, so any batch size draws the same)."""
        P = self.x.shape[0]
        if self.sampler == "explicit":
            return sum(self.n[ell] * self.n[ell - 1] + self.n[ell] for ell in range(1, self.depth + 1))
        return sum(self.n[ell] * P for ell in range(1, self.depth + 1))


def _as_count(name: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (whole floats such as ``1e6`` accepted), else MonteCarloError."""
    if isinstance(value, bool):
        raise MonteCarloError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, float | np.floating):
        if not math.isfinite(value) or value != int(value):
            raise MonteCarloError(f"{name} must be a whole number >= {minimum}, got {value!r}")
        value = int(value)
    if not isinstance(value, int | np.integer):
        raise MonteCarloError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        hint = {
            "samples": " (cumulants and error bars need at least two independent networks)",
            "batch_size": " (it is the number of networks pushed through at once)",
            "groups": " (the jackknife needs at least two groups for error bars)",
        }.get(name, "")
        raise MonteCarloError(f"{name} must be >= {minimum}, got {value}{hint}")
    return int(value)
