"""Factorise a symmetric positive-definite kernel matrix safely: Cholesky, a reported jitter, or a clear error.

The learning theories solve with ``K_AA + σ_ε² I`` (and ``Θ_AA``) again and again; this module is the one
place that does it. It never forms an explicit inverse: :class:`SPDFactor` holds the Cholesky factor
``L`` (``A + jitter·I = L Lᵀ``) and offers ``solve``, ``logdet`` and the eigen-free ``inv_quad``. When the
plain Cholesky fails, a jitter ``ε · mean(diag A)`` with ε = 1e-12, 1e-10, 1e-8 is tried and the one used
is stored in ``.jitter`` (and reported in a warning); a matrix that still fails, or one that is not
finite or not symmetric, raises :class:`nnft.errors.InputError` that says why and what to change.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from nnft.errors import InputError

__all__ = ["JitterWarning", "SPDFactor", "factor_spd"]

_JITTERS = (1e-12, 1e-10, 1e-8)


class JitterWarning(UserWarning):
    """A kernel matrix needed a diagonal jitter to be factorised; the value used is in the message."""


@dataclass(frozen=True)
class SPDFactor:
    """The Cholesky factor of ``A + jitter·I`` (lower, ``L Lᵀ``), with what was added to the diagonal."""

    L: np.ndarray
    jitter: float
    what: str

    @property
    def size(self) -> int:
        return self.L.shape[0]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``(A + jitter·I)⁻¹ b`` by two triangular solves (``b`` of shape (P,) or (P, k))."""
        return linalg.cho_solve((self.L, True), b, check_finite=False)

    def inverse(self) -> np.ndarray:
        """``(A + jitter·I)⁻¹`` as a symmetric array, from the factor (for contractions that need it whole)."""
        inv = self.solve(np.eye(self.size))
        return 0.5 * (inv + inv.T)

    def logdet(self) -> float:
        """``log det (A + jitter·I) = 2 Σ log L_ii``."""
        return float(2.0 * np.sum(np.log(np.diag(self.L))))

    def condition(self) -> float:
        """The 2-norm condition number estimate ``(max L_ii / min L_ii)²`` (cheap; a lower bound)."""
        d = np.diag(self.L)
        return float((d.max() / d.min()) ** 2)


def factor_spd(A: np.ndarray, what: str, *, hint: str = "") -> SPDFactor:
    """Cholesky of the symmetric positive-definite ``A`` (symmetrised first), with a reported jitter if needed.

    Raises :class:`InputError` for non-finite entries, an asymmetric matrix (relative 1e-8), a negative
    diagonal, or a matrix that stays indefinite after the largest jitter; ``hint`` says what to change.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise InputError(f"{what} must be a square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise InputError(f"{what} has non-finite entries (NaN or inf): the kernel overflowed or the data are bad")
    scale = float(np.max(np.abs(A))) if A.size else 0.0
    if A.size and np.max(np.abs(A - A.T)) > 1e-8 * max(scale, 1e-300):
        raise InputError(f"{what} is not symmetric (max |A − Aᵀ| = {np.max(np.abs(A - A.T)):.3g})")
    A = 0.5 * (A + A.T)
    diag = np.diag(A)
    if np.any(diag <= 0):
        raise InputError(f"{what} has a non-positive diagonal entry ({diag.min():.3g}): a variance must be > 0. "
                         + hint)
    mean_diag = float(np.mean(diag))
    for eps in (0.0, *_JITTERS):
        jitter = eps * mean_diag
        try:
            L = linalg.cholesky(A + jitter * np.eye(A.shape[0]), lower=True, check_finite=False)
        except linalg.LinAlgError:
            continue
        d = np.diag(L)
        if d.min() <= 1e-7 * d.max():  # numerically singular although the factorisation ran
            continue
        if jitter > 0:
            warnings.warn(f"{what} is numerically singular: factorised with a diagonal jitter {jitter:.3g} "
                          f"(= {eps:g} × its mean diagonal). " + hint, JitterWarning, stacklevel=3)
        return SPDFactor(L=L, jitter=jitter, what=what)
    w = np.linalg.eigvalsh(A)
    raise InputError(f"{what} is not positive definite (smallest eigenvalue {w[0]:.3g}, largest {w[-1]:.3g}, "
                     f"even with a jitter of {_JITTERS[-1]:g} × its mean diagonal). " + hint)
