"""Validate a learning problem (network, training inputs and targets, test inputs, noise) with errors that name the fix.

Shared by :mod:`nnft.inference.posterior`, :mod:`nnft.inference.gradient_descent` and the Monte Carlo
posterior (:func:`nnft.montecarlo.posterior`): every check happens before any kernel is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnft.errors import InputError, NetworkError


@dataclass(frozen=True)
class Problem:
    """A validated regression problem: ``x_train`` (P_A, n0), ``Y`` (P_A, m), ``x_test`` (P_B, n0), noise ≥ 0."""

    x_train: np.ndarray
    Y: np.ndarray
    x_test: np.ndarray
    noise: float
    squeeze: bool  # y_train was given as (P_A,) (one output); results keep the (P_B, m) layout

    @property
    def x_all(self) -> np.ndarray:
        """Training points first, then test points: the order of every joint kernel on A ∪ B."""
        return np.vstack([self.x_train, self.x_test])

    @property
    def P_A(self) -> int:
        return self.x_train.shape[0]

    @property
    def P_B(self) -> int:
        return self.x_test.shape[0]

    @property
    def m(self) -> int:
        return self.Y.shape[1]


def _inputs(name: str, x) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a real array of shape (P, n_0), got {type(x).__name__}") from exc
    if arr.ndim == 1:
        raise InputError(f"{name} has shape {arr.shape}: give a 2-D array (P, n_0), e.g. x[:, None] for 1-D inputs")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} must have shape (P, n_0) with P, n_0 ≥ 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or inf: clean the inputs first")
    return arr


def problem(net, x_train, y_train, x_test, noise, *, allow_singular: bool = False) -> Problem:
    """Check shapes, finiteness, the output count and the noise; return the arrays as a :class:`Problem`.

    With ``noise == 0``, duplicate training inputs make ``K_AA`` exactly singular (the data at the copies
    must agree and the GP cannot weigh them): that is an error unless ``allow_singular``.
    """
    from nnft.network import MLP

    if not isinstance(net, MLP):
        raise NetworkError(f"a learning prediction needs an nnft.MLP, got {type(net).__name__}")
    xa = _inputs("x_train", x_train)
    xb = _inputs("x_test", x_test)
    if xa.shape[1] != xb.shape[1]:
        raise InputError(f"x_train has input dimension {xa.shape[1]} but x_test has {xb.shape[1]}: they must match")
    try:
        Y = np.asarray(y_train, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"y_train must be a real array of shape (P_A, m) or (P_A,), got {type(y_train).__name__}") \
            from exc
    squeeze = Y.ndim == 1
    if squeeze:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != xa.shape[0]:
        raise InputError(f"y_train has shape {np.shape(y_train)} but x_train has {xa.shape[0]} points: give "
                         f"y_train of shape ({xa.shape[0]}, m) or ({xa.shape[0]},)")
    if not np.all(np.isfinite(Y)):
        bad = np.argwhere(~np.isfinite(Y))[0]
        raise InputError(f"y_train contains NaN or inf (first at row {bad[0]}, column {bad[1]}): drop or impute "
                         "those targets")
    if Y.shape[1] != net.n_out:
        raise InputError(f"y_train has m = {Y.shape[1]} output columns but the network has n_out = {net.n_out}: "
                         f"build the network with MLP(..., n_out={Y.shape[1]})")
    if isinstance(noise, bool) or not isinstance(noise, int | float | np.integer | np.floating):
        raise InputError(f"noise is the variance σ_ε² of the target noise, a number ≥ 0; got {noise!r}")
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise InputError(f"noise is the variance σ_ε² ≥ 0 of the target noise, got {noise}")
    if noise == 0 and not allow_singular:
        _, counts = np.unique(xa, axis=0, return_counts=True)
        if np.any(counts > 1):
            raise InputError(f"x_train has {int(np.sum(counts > 1))} duplicated input(s) and noise = 0: the training "
                             "kernel K_AA is exactly singular. Give noise > 0 (the targets are noisy copies) or "
                             "drop the duplicates")
    return Problem(x_train=xa, Y=Y, x_test=xb, noise=noise, squeeze=squeeze)
