"""Scalar numba versions of :mod:`nnft.runtime`, called as ``_rt.<name>_s`` by generated numba modules."""

from __future__ import annotations

import math

import numba

__all__ = ["acos_clip_s", "asin_clip_s", "corr_s", "heaviside_s", "sigmoid_s", "sign_s", "softplus_s", "sqrt_pos_s"]


@numba.njit(cache=True, inline="always")
def corr_s(kab: float, den: float) -> float:
    """Correlation ``K_ab / D`` (``D = sqrt(K_aa K_bb)``) clipped into [-1, 1]; 0 where ``D`` is 0."""
    if den <= 0.0:
        return 0.0
    c = kab / den
    return min(1.0, max(-1.0, c))


@numba.njit(cache=True, inline="always")
def acos_clip_s(x: float) -> float:
    """``arccos`` of ``x`` clipped into [-1, 1]."""
    return math.acos(min(1.0, max(-1.0, x)))


@numba.njit(cache=True, inline="always")
def asin_clip_s(x: float) -> float:
    """``arcsin`` of ``x`` clipped into [-1, 1]."""
    return math.asin(min(1.0, max(-1.0, x)))


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
