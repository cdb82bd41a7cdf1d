"""Small hand-written, numerically safe helpers that generated numpy modules call (imported as ``_rt``).

Each helper is the numeric meaning of a symbolic function of :mod:`nnft.functions`; they guard the
places where a literal transcription of a closed form fails in floating point: correlations that
leave [-1, 1] by one ulp, 0/0 at a zero-variance input, overflow in ``exp``. Quadrature for averages
without a closed form is re-exported from :mod:`nnft.numeric.quadrature`. No sympy here.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

__all__ = [
    "acos_clip",
    "angle_from_gap",
    "arc1",
    "arc1_gap",
    "asin_clip",
    "asin_gap",
    "corr",
    "geomean",
    "gauss1",
    "gauss2",
    "gauss2_product",
    "gauss_nd_upper",
    "sigmoid",
    "softplus",
    "sin_minus_tcos",
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

    ``sqrt(a*b)`` where the product is a normal number (then exactly ``a`` for ``a == b``), else the same
    with a and b scaled by exact powers of two (again exactly ``a`` for ``a == b``); the range check is
    O(rows + columns) for the (R, 1) × (1, C) tiles of a kernel.
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
    # scaled by exact powers of two: exactly a for a == b at any scale (√a·√b need not be)
    ea, eb = np.frexp(a)[1] // 2, np.frexp(b)[1] // 2
    alt = np.ldexp(np.sqrt(np.ldexp(a, -2 * ea) * np.ldexp(b, -2 * eb)), ea + eb)
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


def asin_gap(num, r, gap, out=None):
    """``arcsin(num/r)`` with ``gap = r² − num²`` given cancellation-free (:class:`nnft.functions.AsinGap`).

    For ``|t| = |num|/r > 1/2``: ``sign(t)(π/2 − 2 arcsin(√(u/2)))`` with ``u = 1 − |t| = gap/(r(r + |num|))``,
    accurate to eps as |t| → 1; ``arcsin`` of the clipped ratio elsewhere.
    """
    n = np.asarray(num, dtype=np.float64)
    rr = np.asarray(r, dtype=np.float64)
    g = np.asarray(gap, dtype=np.float64)
    with np.errstate(all="ignore"):
        t = np.clip(n / rr, -1.0, 1.0)
        u = np.clip(np.maximum(g, 0.0) / (rr * (rr + np.abs(n))), 0.0, 1.0)
        near = np.sign(t) * (0.5 * np.pi - 2.0 * np.arcsin(np.sqrt(0.5 * u)))
        res = np.where(np.abs(t) > 0.5, near, np.arcsin(t))
    if out is not None:
        out[...] = res
        return out
    return res if res.ndim else float(res)


def sqrt_pos(x, out=None):
    """``sqrt(max(x, 0))`` for quantities that are non-negative up to round-off."""
    m = np.maximum(x, 0.0, out=out)
    return np.sqrt(m, out=m if isinstance(m, np.ndarray) else None)


# sin θ − θ cos θ = θ³ Σ_{k≥1} (−1)^{k+1} 2k θ^{2k−2} / (2k+1)!: Horner coefficients in t = θ², k = 8 … 1
# (below θ = 1/2 the k = 9 term is < 1e-20 of the sum); the direct form loses at most 12x eps at θ = 1/2
_SMT = tuple((-1) ** (k + 1) * 2 * k / math.factorial(2 * k + 1) for k in range(8, 0, -1))
_SMT_SERIES_BELOW = 0.5


def sin_minus_tcos(theta, out=None):
    """``sin θ − θ cos θ`` for θ ∈ [0, π] to a few ulp: its Taylor series below θ = 1/2 (the direct form cancels).

    It is ``J_1(π − θ)``, the cross term of the arc-cosine kernel of degree 1 (Cho & Saul 2009).
    """
    th = np.asarray(theta, dtype=np.float64)
    t = th * th
    p = np.full_like(t, _SMT[0])
    for c in _SMT[1:]:
        p *= t
        p += c
    series = p * t * th
    direct = np.sin(th) - th * np.cos(th)
    res = np.where(th < _SMT_SERIES_BELOW, series, direct)
    if out is not None:
        out[...] = res
        return out
    return res if res.ndim else float(res)


def arc1_gap(theta, same, cross, out=None):
    """``same·(π − J_1(θ)) − cross·J_1(π − θ)`` without cancellation near θ = 0 and θ = π.

    ``J_1(θ) = sin θ + (π − θ) cos θ``. With the shared ``√(K_aa K_bb)/(2π)`` this is
    ``√(⟨σ²⟩_aa⟨σ²⟩_bb) − ⟨σ_a σ_b⟩`` for ``σ = c₊ z Θ(z) − c₋ z Θ(−z)`` (``same = c₊² + c₋²``,
    ``cross = 2c₊c₋``), which is O(θ²) near θ = 0 (and, for |z|, near θ = π) while each term is O(1).
    Below π/2: ``same·(2π sin²(θ/2) − h(θ)) − cross·h(θ)``; above, with φ = π − θ:
    ``(same − cross)π + 2π cross sin²(φ/2) − (same + cross) h(φ)``, where ``h = sin_minus_tcos``.
    """
    th = np.asarray(theta, dtype=np.float64)
    lo = th <= 0.5 * np.pi
    phi = np.where(lo, th, np.pi - th)
    h = sin_minus_tcos(phi)
    s2 = np.sin(0.5 * phi) ** 2
    small = same * (2 * np.pi * s2 - h) - cross * h
    large = (same - cross) * np.pi + 2 * np.pi * cross * s2 - (same + cross) * h
    res = np.where(lo, small, large)
    if out is not None:
        out[...] = res
        return out
    return res if res.ndim else float(res)


def arc1(theta, same, cross, out=None):
    """``same·J_1(θ) + cross·J_1(π − θ)``, ``J_1(θ) = sin θ + (π − θ) cos θ``, accurate to a few ulp for θ ∈ [0, π].

    The degree-1 arc-cosine kernel from the angle itself: ``J_1(θ) = π cos θ + h(θ)`` below π/2 and
    ``J_1(θ) = h(π − θ)`` above (``h = sin_minus_tcos``), sums of non-negative terms, where the closed form in
    ``c = cos θ`` cancels to ~eps/(π − θ) near θ = π (nearly antiparallel inputs).
    """
    th = np.asarray(theta, dtype=np.float64)
    lo = th <= 0.5 * np.pi
    phi = np.where(lo, th, np.pi - th)
    h = sin_minus_tcos(phi)
    big = np.pi * np.cos(phi) + h  # J_1 of the smaller of θ, π − θ
    res = np.where(lo, same * big + cross * h, same * h + cross * big)
    if out is not None:
        out[...] = res
        return out
    return res if res.ndim else float(res)


def angle_from_gap(gap, den, out=None):
    """The angle θ ∈ [0, π] with ``1 − cos θ = gap / den`` (``den = √(K_aa K_bb)``, ``gap = den − K_ab ≥ 0``).

    ``2 arcsin(√(u/2))`` for ``u = gap/den ≤ 1``, which is accurate to relative eps however small θ is
    (``arccos(K_ab/den)`` is only accurate to √eps there); ``arccos(1 − u)`` above. θ = π/2 where ``den`` is 0
    (a zero-variance input has correlation 0, as in :func:`corr`).
    """
    g = np.asarray(gap, dtype=np.float64)
    d = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.clip(g / d, 0.0, 2.0)
        res = np.where(u <= 1.0, 2.0 * np.arcsin(np.sqrt(0.5 * u)), np.arccos(1.0 - u))
    res = np.where(d > 0, res, 0.5 * np.pi)
    if out is not None:
        out[...] = res
        return out
    return res if res.ndim else float(res)


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
