"""Fast two-variable Gaussian averages through Chebyshev tables in the correlation.

For fixed variances (K_aa, K_bb), F(c) = ⟨f_a(z_a) f_b(z_b)⟩ at K_ab = c·√(K_aa K_bb) is a smooth function
of c ∈ [−1, 1] (by Mehler's formula F(c) = Σ_k c^k μ_k(a) μ_k(b)/k! with the Hermite moments μ_k; for an
analytic activation such as tanh it is infinitely differentiable up to c = ±1). In a kernel recursion
the variances take few distinct values — a single one for inputs of equal norm, in every layer — while
P² entries need F. So instead of a 2-D quadrature per entry (:mod:`nnft.numeric.quadrature`, about 5e3
entries/s), this module tabulates F once per distinct (K_aa, K_bb) at Chebyshev points with that
accurate quadrature and evaluates the interpolant (Clenshaw) for every entry.

Every table is verified before use: the interpolant must match direct quadrature at check points
(including c = ±0.999 and ±1) to ``TOL`` relative to max|F|; the degree doubles up to ``MAX_DEGREE``,
and a pair whose F is not smooth enough (kinked activations, where F has (1 − c²)^{3/2}-type terms)
falls back to direct quadrature. Tables are memoised per process by the integrand functions and the
variances, so the tiles of one kernel share them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
from scipy.fft import dct

from nnft.numeric import quadrature

TOL = 1e-12
START_DEGREE = 32
MAX_DEGREE = 512
#: Use tables only when entries per distinct variance pair exceed this (else direct quadrature is cheaper).
MIN_ENTRIES_PER_TABLE = 256
#: Above this variance F(c) sharpens near c = ±1 on a scale ~1/K (for tanh it tends to (2/π) arcsin c),
#: so no table of degree ≤ MAX_DEGREE verifies (tanh, measured: degree 256 at K = 100, none at K = 1e3);
#: building and rejecting one costs ~1000 direct entries.
MAX_TABLE_VARIANCE = 300.0
_CHECK = np.array([-1.0, -0.999, -0.71, -0.33, 0.05, 0.42, 0.77, 0.95, 0.999, 1.0])

_LOCK = threading.Lock()
_TABLES: OrderedDict[tuple, np.ndarray | None] = OrderedDict()
_MAX_TABLES = 4096


def _direct(fa, fb, ka: float, kb: float, c: np.ndarray, kinks_a, kinks_b) -> np.ndarray:
    """Direct quadrature at correlations c (K_ab is never formed: no overflow of K_aa·K_bb at K ~ 1e300)."""
    return quadrature.gauss2_product_corr(fa, fb, ka, c, kb, kinks_a, kinks_b)


def _cheb_coefficients(values: np.ndarray) -> np.ndarray:
    """Coefficients a_k of Σ a_k T_k from values at the first-kind Chebyshev points cos(π(j+½)/n)."""
    n = values.size
    a = dct(values, type=2) / n
    a[0] /= 2
    return a


def clenshaw(coeffs: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Evaluate Σ_k a_k T_k(c) by Clenshaw's recurrence, vectorised over c with three reused buffers."""
    c = np.asarray(c, dtype=np.float64)
    two_c = 2.0 * c
    b1 = np.zeros_like(c)
    b2 = np.zeros_like(c)
    t = np.empty_like(c)
    for a in coeffs[:0:-1]:
        np.multiply(two_c, b1, out=t)
        np.subtract(t, b2, out=t)
        t += a
        b1, b2, t = t, b1, b2
    np.multiply(c, b1, out=t)
    np.subtract(t, b2, out=t)
    t += coeffs[0]
    return t


def _build(fa, fb, ka: float, kb: float, kinks_a, kinks_b) -> np.ndarray | None:
    """Verified Chebyshev coefficients of F(c) for these variances, or None if F is not smooth enough."""
    ref = _direct(fa, fb, ka, kb, _CHECK, kinks_a, kinks_b)
    scale = max(float(np.max(np.abs(ref))), 1e-300)
    n = START_DEGREE
    while n <= MAX_DEGREE:
        nodes = np.cos(np.pi * (np.arange(n) + 0.5) / n)
        coeffs = _cheb_coefficients(_direct(fa, fb, ka, kb, nodes, kinks_a, kinks_b))
        err = float(np.max(np.abs(clenshaw(coeffs, _CHECK) - ref)))
        if err <= TOL * scale:
            return coeffs
        n *= 2
    return None


def table(fa: Callable, fb: Callable, ka: float, kb: float, kinks_a: Sequence[float] = (),
          kinks_b: Sequence[float] = ()) -> np.ndarray | None:
    """The memoised verified table of F(c) for (fa, fb, K_aa, K_bb), or None (use direct quadrature)."""
    key = (fa, fb, float(ka), float(kb), tuple(kinks_a), tuple(kinks_b))
    with _LOCK:
        if key in _TABLES:
            _TABLES.move_to_end(key)
            return _TABLES[key]
    coeffs = _build(fa, fb, float(ka), float(kb), kinks_a, kinks_b)
    with _LOCK:
        _TABLES[key] = coeffs
        while len(_TABLES) > _MAX_TABLES:
            _TABLES.popitem(last=False)
    return coeffs


def gauss2_product(fa, fb, Kaa, Kab, Kbb, kinks_a: Sequence[float] = (), kinks_b: Sequence[float] = ()):
    """⟨fa(z_a) fb(z_b)⟩ elementwise, through correlation tables where they pay and verify, else directly.

    Same contract as :func:`nnft.numeric.quadrature.gauss2_product` (which validates the inputs). The
    variances are grouped on the arrays as given (a (R, 1) column and a (1, C) row in a kernel tile),
    so grouping costs O(R + C), not O(R·C).
    """
    arrs = [np.asarray(v, dtype=np.float64) for v in (Kaa, Kab, Kbb)]
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrs))
    except ValueError:
        return quadrature.gauss2_product(fa, fb, Kaa, Kab, Kbb, kinks_a, kinks_b)
    a_, ab_, b_ = arrs
    n = int(np.prod(shape)) if shape else 1
    if n == 0 or not all(np.all(np.isfinite(a)) for a in arrs) or np.any(a_ < 0) or np.any(b_ < 0):
        return quadrature.gauss2_product(fa, fb, Kaa, Kab, Kbb, kinks_a, kinks_b)
    ua, ia = np.unique(_quantise(a_), return_inverse=True)
    ub, ib = np.unique(_quantise(b_), return_inverse=True)
    if n < MIN_ENTRIES_PER_TABLE * ua.size * ub.size:
        return quadrature.gauss2_product(fa, fb, Kaa, Kab, Kbb, kinks_a, kinks_b)
    c = np.broadcast_to(quadrature.correlation(a_, ab_, b_), shape)  # scaled: no overflow of K_aa·K_bb
    if ua.size == 1 and ub.size == 1:  # the common case: one variance pair for the whole block
        coeffs = table(fa, fb, ua[0], ub[0], kinks_a, kinks_b) if _tabulable(ua[0], ub[0]) else None
        if coeffs is not None:
            return clenshaw(coeffs, c)
        return quadrature.gauss2_product(fa, fb, Kaa, Kab, Kbb, kinks_a, kinks_b)
    pair = np.broadcast_to(ia.reshape(a_.shape) * ub.size + ib.reshape(b_.shape), shape).ravel()
    flat_c = c.ravel()
    ka, kab, kb = (np.broadcast_to(a, shape).ravel() for a in arrs)
    out = np.empty(n)
    order = np.argsort(pair, kind="stable")
    bounds = np.searchsorted(pair[order], np.arange(ua.size * ub.size + 1))
    for p in range(ua.size * ub.size):
        idx = order[bounds[p]:bounds[p + 1]]
        if idx.size == 0:
            continue
        pa, pb = ua[p // ub.size], ub[p % ub.size]
        coeffs = table(fa, fb, pa, pb, kinks_a, kinks_b) if _tabulable(pa, pb) else None
        if coeffs is None:
            out[idx] = quadrature.gauss2_product(fa, fb, ka[idx], kab[idx], kb[idx], kinks_a, kinks_b)
        else:
            out[idx] = clenshaw(coeffs, flat_c[idx])
    return out.reshape(shape)


def _tabulable(ka: float, kb: float) -> bool:
    """Whether a table is worth trying: both variances positive and at most ``MAX_TABLE_VARIANCE``."""
    return 0 < ka <= MAX_TABLE_VARIANCE and 0 < kb <= MAX_TABLE_VARIANCE


def _quantise(k: np.ndarray) -> np.ndarray:
    m, e = np.frexp(k)
    return np.ldexp(np.round(m * 2.0**44) / 2.0**44, e)


def clear() -> None:
    """Forget all tables (e.g. after redefining an integrand)."""
    with _LOCK:
        _TABLES.clear()


__all__ = ["clear", "clenshaw", "gauss2_product", "table"]
