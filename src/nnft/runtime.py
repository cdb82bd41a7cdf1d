"""Small hand-written, numerically safe helpers that generated numpy modules call (imported as ``_rt``).

Each helper is the numeric meaning of a symbolic function of :mod:`nnft.functions`; they guard the
places where a literal transcription of a closed form fails in floating point: correlations that
leave [-1, 1] by one ulp, 0/0 at a zero-variance input, overflow in ``exp``. Quadrature for averages
without a closed form is re-exported from :mod:`nnft.numeric.quadrature`. No sympy here.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

__all__ = [
    "acos_clip",
    "asin_clip",
    "corr",
    "geomean",
    "gauss1",
    "gauss2",
    "gauss2_product",
    "gauss_nd_upper",
    "sigmoid",
    "softplus",
    "sqrt_pos",
]


def corr(kab, den, out=None):
    """Correlation ``K_ab / D`` (``D = sqrt(K_aa K_bb)``) clipped into [-1, 1]; 0 where ``D`` is 0.

    ``D`` is formed as ``sqrt(K_aa*K_bb)``, which is exactly ``K_aa`` when ``K_aa == K_bb`` (IEEE
    ``sqrt(k*k) == k``), so the diagonal and duplicate inputs give ``c == 1`` exactly (docs/architecture.md).
    ``out`` may alias ``kab`` or ``den``.
    """
    den = np.asarray(den)
    zero = den <= 0
    any_zero = bool(zero.any())
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.divide(kab, den, out=out)
    if np.ndim(c) == 0:
        return 0.0 if any_zero else float(np.clip(c, -1.0, 1.0))
    np.clip(c, -1.0, 1.0, out=c)
    if any_zero:
        c[np.broadcast_to(zero, c.shape)] = 0.0
    return c


_TINY = np.finfo(np.float64).tiny
_HUGE = np.finfo(np.float64).max


def geomean(a, b, out=None):
    """``sqrt(a b)`` for a, b ≥ 0 without underflow or overflow of the product; ``out`` may alias a or b.

    ``sqrt(a*b)`` where the product is a normal number (then exactly ``a`` for ``a == b``), else
    ``sqrt(a)·sqrt(b)``; the range check is O(rows + columns) for the (R, 1) × (1, C) tiles of a kernel.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    # smallest non-zero product and largest product (a zero variance gives 0 either way)
    lo = float(np.min(a, where=a > 0, initial=np.inf)) * float(np.min(b, where=b > 0, initial=np.inf))
    hi = float(np.max(a, initial=0.0)) * float(np.max(b, initial=0.0))
    if lo >= _TINY and hi < _HUGE:  # every non-zero product is a normal number
        p = np.multiply(a, b, out=out)
        return np.sqrt(p, out=p if isinstance(p, np.ndarray) else None)
    with np.errstate(under="ignore", over="ignore"):
        p = np.multiply(a, b)
    bad = ((p < _TINY) & (a > 0) & (b > 0)) | ~np.isfinite(p)
    r = np.sqrt(p)
    alt = np.sqrt(a) * np.sqrt(b)
    res = np.where(bad, alt, r)
    if out is not None:
        out[...] = res
        return out
    return res


def acos_clip(x, out=None):
    """``arccos`` of ``x`` clipped into [-1, 1]."""
    c = np.clip(x, -1.0, 1.0, out=out)
    return np.arccos(c, out=c if isinstance(c, np.ndarray) else None)


def asin_clip(x, out=None):
    """``arcsin`` of ``x`` clipped into [-1, 1]."""
    c = np.clip(x, -1.0, 1.0, out=out)
    return np.arcsin(c, out=c if isinstance(c, np.ndarray) else None)


def sqrt_pos(x, out=None):
    """``sqrt(max(x, 0))`` for quantities that are non-negative up to round-off."""
    m = np.maximum(x, 0.0, out=out)
    return np.sqrt(m, out=m if isinstance(m, np.ndarray) else None)


def sigmoid(x):
    """Logistic sigmoid without overflow (``scipy.special.expit``)."""
    return expit(x)


def softplus(x):
    """``log(1 + e^x)`` without overflow (``numpy.logaddexp(0, x)``)."""
    return np.logaddexp(0.0, x)


def gauss1(*args, **kwargs):
    """⟨f(z)⟩ by quadrature: :func:`nnft.numeric.quadrature.gauss1`."""
    from nnft.numeric.quadrature import gauss1 as _g

    return _g(*args, **kwargs)


def gauss2(*args, **kwargs):
    """⟨f(z_a, z_b)⟩ by quadrature: :func:`nnft.numeric.quadrature.gauss2`."""
    from nnft.numeric.quadrature import gauss2 as _g

    return _g(*args, **kwargs)


def gauss2_product(*args, **kwargs):
    """⟨f(z_a) g(z_b)⟩ by quadrature, through verified correlation tables where they pay
    (:func:`nnft.numeric.correlation_tables.gauss2_product`)."""
    from nnft.numeric.correlation_tables import gauss2_product as _g

    return _g(*args, **kwargs)


def gauss_nd_upper(*args, **kwargs):
    """⟨f(z_1, …, z_k)⟩ by tensor quadrature, covariance as its upper triangle:
    :func:`nnft.numeric.quadrature_nd.gauss_nd_upper`."""
    from nnft.numeric.quadrature_nd import gauss_nd_upper as _g

    return _g(*args, **kwargs)
