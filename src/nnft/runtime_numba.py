"""Scalar numba versions of :mod:`nnft.runtime`, called as ``_rt.<name>_s`` by generated numba modules."""

from __future__ import annotations

import math

import numba

__all__ = ["acos_clip_s", "angle_from_gap_s", "arc1_s", "arc1_gap_s", "asin_clip_s", "asin_gap_s", "corr_s",
           "geomean_s", "count_near_all", "count_near_masked", "heaviside_s", "sigmoid_s", "sign_s", "sin_minus_tcos_s",
           "softplus_s", "sqrt_pos_s"]

# asin(s)/s as a polynomial in t = s² on [0, 1/4] (degree 12, Chebyshev fit in 40-digit arithmetic,
# max relative error 2.2e-16). With the half-angle identities below it gives arccos/arcsin without a libm
# call, so LLVM vectorises the loops that use it (numba here has no SVML; a libm acos is scalar).
_A0 = 1.0
_A1 = 0.1666666666666484
_A2 = 0.07500000000404858
_A3 = 0.044642856791215726
_A4 = 0.03038196027149515
_A5 = 0.02237173660319574
_A6 = 0.017359969965541983
_A7 = 0.013883027829435166
_A8 = 0.0121816790888421
_A9 = 0.006480855348779324
_A10 = 0.01964239671205795
_A11 = -0.016384436448802192
_A12 = 0.032011340323281685


@numba.njit(cache=True, inline="always")
def _asin_ratio(t: float) -> float:
    p = _A12
    p = _A11 + t * p
    p = _A10 + t * p
    p = _A9 + t * p
    p = _A8 + t * p
    p = _A7 + t * p
    p = _A6 + t * p
    p = _A5 + t * p
    p = _A4 + t * p
    p = _A3 + t * p
    p = _A2 + t * p
    p = _A1 + t * p
    p = _A0 + t * p
    return p


@numba.njit(cache=True, inline="always")
def _acos(x: float) -> float:
    """arccos on [-1, 1]: π/2 − x·r(x²) for |x| ≤ 1/2, else 2·asin(√((1 − |x|)/2)) (reflected for x < 0)."""
    ax = abs(x)
    small = 0.5 * math.pi - x * _asin_ratio(x * x)
    t = 0.5 * (1.0 - ax)
    a2 = 2.0 * math.sqrt(t) * _asin_ratio(t)
    big = a2 if x > 0 else math.pi - a2
    return small if ax <= 0.5 else big


@numba.njit(cache=True, inline="always")
def _asin(x: float) -> float:
    """arcsin on [-1, 1]: x·r(x²) for |x| ≤ 1/2, else ±(π/2 − 2·asin(√((1 − |x|)/2)))."""
    ax = abs(x)
    small = x * _asin_ratio(x * x)
    t = 0.5 * (1.0 - ax)
    big = 0.5 * math.pi - 2.0 * math.sqrt(t) * _asin_ratio(t)
    return small if ax <= 0.5 else (big if x > 0 else -big)



@numba.njit(cache=True, inline="always")
def corr_s(kab: float, den: float) -> float:
    """Correlation ``K_ab / D`` (``D = sqrt(K_aa K_bb)``) clipped into [-1, 1]; 0 where ``D`` is 0."""
    if den <= 0.0:
        return 0.0
    c = kab / den
    return min(1.0, max(-1.0, c))


@numba.njit(cache=True, inline="always")
def geomean_s(a: float, b: float) -> float:
    """``sqrt(a b)`` without underflow or overflow of the product (see :func:`nnft.runtime.geomean`)."""
    p = a * b
    if (p < 2.2250738585072014e-308 and a > 0.0 and b > 0.0) or p > 1.7976931348623157e308:
        ea = math.frexp(a)[1] // 2
        eb = math.frexp(b)[1] // 2
        return math.ldexp(math.sqrt(math.ldexp(a, -2 * ea) * math.ldexp(b, -2 * eb)), ea + eb)
    return math.sqrt(p)


@numba.njit(cache=True, inline="always")
def acos_clip_s(x: float) -> float:
    """``arccos`` of ``x`` clipped into [-1, 1]."""
    return _acos(min(1.0, max(-1.0, x)))


@numba.njit(cache=True, inline="always")
def asin_clip_s(x: float) -> float:
    """``arcsin`` of ``x`` clipped into [-1, 1]."""
    return _asin(min(1.0, max(-1.0, x)))


@numba.njit(cache=True)
def asin_gap_s(num: float, r: float, gap: float) -> float:
    """``arcsin(num/r)`` with the gap ``r² − num²`` (see :func:`nnft.runtime.asin_gap`)."""
    t = min(1.0, max(-1.0, num / r))
    if abs(t) <= 0.5:
        return math.asin(t)
    u = min(1.0, max(0.0, gap / (r * (r + abs(num)))))
    v = 0.5 * math.pi - 2.0 * math.asin(math.sqrt(0.5 * u))
    return v if t > 0 else -v


_SMT = tuple((-1) ** (k + 1) * 2 * k / math.factorial(2 * k + 1) for k in range(8, 0, -1))


@numba.njit(cache=True)
def sin_minus_tcos_s(theta: float) -> float:
    """``sin θ − θ cos θ`` (see :func:`nnft.runtime.sin_minus_tcos`)."""
    if theta < 0.5:
        t = theta * theta
        p = _SMT[0]
        for k in range(1, 8):
            p = p * t + _SMT[k]
        return p * t * theta
    return math.sin(theta) - theta * math.cos(theta)


@numba.njit(cache=True)
def arc1_gap_s(theta: float, same: float, cross: float) -> float:
    """``same·(π − J_1(θ)) − cross·J_1(π − θ)`` without cancellation (see :func:`nnft.runtime.arc1_gap`)."""
    if theta <= 0.5 * math.pi:
        h = sin_minus_tcos_s(theta)
        s = math.sin(0.5 * theta)
        return same * (2.0 * math.pi * s * s - h) - cross * h
    phi = math.pi - theta
    h = sin_minus_tcos_s(phi)
    s = math.sin(0.5 * phi)
    return (same - cross) * math.pi + 2.0 * math.pi * cross * s * s - (same + cross) * h


@numba.njit(cache=True)
def arc1_s(theta: float, same: float, cross: float) -> float:
    """``same·J_1(θ) + cross·J_1(π − θ)`` without cancellation (see :func:`nnft.runtime.arc1`)."""
    if theta <= 0.5 * math.pi:
        h = sin_minus_tcos_s(theta)
        return same * (math.pi * math.cos(theta) + h) + cross * h
    phi = math.pi - theta
    h = sin_minus_tcos_s(phi)
    return same * h + cross * (math.pi * math.cos(phi) + h)


@numba.njit(cache=True)
def angle_from_gap_s(gap: float, den: float) -> float:
    """θ with ``1 − cos θ = gap/den`` (see :func:`nnft.runtime.angle_from_gap`)."""
    if not den > 0.0:
        return 0.5 * math.pi
    u = min(2.0, max(0.0, gap / den))
    if u <= 1.0:
        return 2.0 * math.asin(math.sqrt(0.5 * u))
    return math.acos(1.0 - u)


@numba.njit(cache=True, inline="always")
def sqrt_pos_s(x: float) -> float:
    """``sqrt(max(x, 0))``."""
    return math.sqrt(max(x, 0.0))


@numba.njit(cache=True, inline="always")
def sigmoid_s(x: float) -> float:
    """Logistic sigmoid, overflow-free."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(cache=True, inline="always")
def softplus_s(x: float) -> float:
    """``log(1 + e^x)``, overflow-free."""
    if x > 0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@numba.njit(cache=True, inline="always")
def heaviside_s(x: float, h0: float) -> float:
    """Heaviside step with value ``h0`` at 0."""
    if x > 0:
        return 1.0
    if x < 0:
        return 0.0
    return h0


@numba.njit(cache=True, inline="always")
def sign_s(x: float) -> float:
    """Sign function with sign(0) = 0."""
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0


# Counting loops of the near-parallel angle tracker (nnft.numeric.angles), compiled here with the rest of numba.
@numba.njit(cache=True, nogil=True)
def count_near_all(K, sa, sb, lim):
    """Entries with |K_ij| > lim·sa_i·sb_j (a branch-free loop that LLVM vectorises)."""
    n = 0
    for i in range(K.shape[0]):
        ti = lim * sa[i]
        for j in range(K.shape[1]):
            n += abs(K[i, j]) > ti * sb[j]
    return n


@numba.njit(cache=True, nogil=True)
def count_near_masked(K, sa, sb, lim, mask):
    """Entries with |K_ij| > lim·sa_i·sb_j and mask_ij == 0 (mask: uint8)."""
    n = 0
    for i in range(K.shape[0]):
        ti = lim * sa[i]
        for j in range(K.shape[1]):
            n += (abs(K[i, j]) > ti * sb[j]) * (1 - mask[i, j])
    return n
