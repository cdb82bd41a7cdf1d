"""Weighted least-squares fits in 1/n: extracting finite-width coefficients from estimates at several widths.

:func:`fit_inverse_width` fits ``y(n) = c_0 + c_1/n (+ c_2/n² …)`` with weights 1/stderr² and returns an
:class:`InverseWidthFit` with coefficient errors, χ² and z-scores against predicted coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnft.numeric.mc_result import MonteCarloError

__all__ = ["InverseWidthFit", "fit_inverse_width"]


@dataclass
class InverseWidthFit:
    """Weighted least-squares fit ``y(n) = c_0 + c_1/n (+ c_2/n² …)``; ``coef``/``stderr`` in that order."""

    coef: np.ndarray
    stderr: np.ndarray
    cov: np.ndarray
    chi2: float
    dof: int
    widths: np.ndarray = field(repr=False)

    @property
    def intercept(self) -> float:
        """The constant coefficient c_0 (the infinite-width limit)."""
        return float(self.coef[0])

    @property
    def slope(self) -> float:
        """The coefficient of 1/n."""
        return float(self.coef[1])

    def __call__(self, n) -> np.ndarray:
        """The fitted curve Σ_k c_k / n^k at widths ``n``."""
        inv = 1.0 / np.asarray(n, dtype=np.float64)
        return sum(c * inv**k for k, c in enumerate(self.coef))

    def zscore(self, slope=None, intercept=None) -> dict[str, float]:
        """z-scores of a predicted slope (e.g. the theory's coefficient of 1/n) and/or intercept."""
        out = {}
        if slope is not None:
            out["slope"] = (self.slope - slope) / float(self.stderr[1])
        if intercept is not None:
            out["intercept"] = (self.intercept - intercept) / float(self.stderr[0])
        return out


def fit_inverse_width(widths, values, stderr, order: int = 1) -> InverseWidthFit:
    """Fit ``values(n) ≈ Σ_{k=0}^{order} c_k / n^k`` by weighted least squares (weights 1/stderr²).

    Returns coefficients with standard errors from the covariance (X^T W X)^{-1} and the χ² of the fit;
    the standard tool to extract a 1/n coefficient (e.g. V or K1) from estimates at several widths.
    """
    n = np.asarray(widths, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    e = np.asarray(stderr, dtype=np.float64)
    if not (n.shape == y.shape == e.shape) or n.ndim != 1:
        raise MonteCarloError("widths, values and stderr must be 1-D arrays of equal length")
    if n.size < order + 1:
        raise MonteCarloError(f"a fit of order {order} needs at least {order + 1} widths, got {n.size}")
    if np.any(n <= 0) or np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise MonteCarloError("widths must be > 0 and standard errors finite and > 0")
    X = np.stack([n ** (-k) for k in range(order + 1)], axis=1)
    w = 1.0 / e**2
    A = X.T @ (w[:, None] * X)
    cov = np.linalg.inv(A)
    coef = cov @ (X.T @ (w * y))
    chi2 = float(np.sum(w * (y - X @ coef) ** 2))
    return InverseWidthFit(coef=coef, stderr=np.sqrt(np.diag(cov)), cov=cov, chi2=chi2, dof=n.size - order - 1,
                           widths=n)
