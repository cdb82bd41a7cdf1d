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
    "gauss1",
    "gauss2",
    "gauss2_product",
    "sigmoid",
    "softplus",
    "sqrt_pos",
]


def corr(kab, den):
    """Correlation ``K_ab / D`` (``D = sqrt(K_aa K_bb)``) clipped into [-1, 1]; 0 where ``D`` is 0.

    ``D`` is formed as ``sqrt(K_aa*K_bb)``, which is exactly ``K_aa`` when ``K_aa == K_bb`` (IEEE
    ``sqrt(k*k) == k``), so the diagonal and duplicate inputs give ``c == 1`` exactly (FACTS.md).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.divide(kab, den)
    if np.ndim(c) == 0:
        return float(np.clip(c, -1.0, 1.0)) if np.all(den > 0) else 0.0
    np.clip(c, -1.0, 1.0, out=c)
    zero = np.asarray(den) <= 0
    if zero.any():
        c[np.broadcast_to(zero, c.shape)] = 0.0
    return c


def acos_clip(x):
    """``arccos`` of ``x`` clipped into [-1, 1]."""
    return np.arccos(np.clip(x, -1.0, 1.0))


def asin_clip(x):
    """``arcsin`` of ``x`` clipped into [-1, 1]."""
    return np.arcsin(np.clip(x, -1.0, 1.0))


def sqrt_pos(x):
    """``sqrt(max(x, 0))`` for quantities that are non-negative up to round-off."""
    return np.sqrt(np.maximum(x, 0.0))


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
    """⟨f(z_a) g(z_b)⟩ by quadrature: :func:`nnft.numeric.quadrature.gauss2_product`."""
    from nnft.numeric.quadrature import gauss2_product as _g

    return _g(*args, **kwargs)
