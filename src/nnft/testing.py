"""Reusable checkers: independent reference quadrature, z-scores against Monte Carlo, 1/n fits.

Every formula nnft derives is checked against a path that shares no code with it. This module holds
the reusable ones, for the tests of this and later issues (V, K1, γ4 …):

* :func:`pair_average`, :func:`single_average` — an independent reference quadrature for Gaussian
  averages. Nothing here imports nnft's numeric or printing code. The two-variable average
  ⟨f(z_a) g(z_b)⟩ over N(0, [[K_aa, K_ab], [K_ab, K_bb]]) uses the conditional decomposition
  ``z_a = √K_aa u``, ``z_b = β z_a + s w``, ``β = K_ab/K_aa``, ``s = √(K_bb − K_ab²/K_aa)``; the inner
  average over w is composite Gauss–Legendre on [−R, R] with panel edges at every kink of g (moving
  with u), the outer one adaptive ``scipy.integrate.quad`` with break points at the kinks of f (and of g
  when s = 0). Any ``IntegrationWarning`` is raised as an error: a reference is never silently wrong.
* :func:`zscores`, :func:`assert_zscores` — agreement of a prediction with a Monte Carlo statistic.
* :func:`fit_inverse_width` — the 1/n fit of :mod:`nnft.montecarlo`, re-exported.
"""


from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import integrate

#: Half-width of the integration range in units of the standard normal variable (φ(20) ≈ 1e-87).
R = 20.0
#: Largest panel width of the inner Gauss–Legendre rule.
PANEL = 0.5
_GL_X, _GL_W = np.polynomial.legendre.leggauss(24)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

Func = Callable[[np.ndarray], np.ndarray]


def _phi(x):
    return _INV_SQRT_2PI * np.exp(-0.5 * np.square(x))


def _gauss_legendre(fn: Func, edges: Sequence[float]) -> float:
    """Integrate fn over [edges[0], edges[-1]] by 24-point Gauss–Legendre on panels no wider than PANEL."""
    cuts = [edges[0]]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        k = max(1, math.ceil((hi - lo) / PANEL))
        cuts.extend(np.linspace(lo, hi, k + 1)[1:])
    cuts = np.asarray(cuts)
    mid = 0.5 * (cuts[1:] + cuts[:-1])
    half = 0.5 * (cuts[1:] - cuts[:-1])
    nodes = (mid[:, None] + half[:, None] * _GL_X[None, :]).ravel()
    weights = (half[:, None] * _GL_W[None, :]).ravel()
    return float(np.dot(weights, fn(nodes)))


def _quad(fn: Callable[[float], float], points: Sequence[float], epsabs: float, epsrel: float) -> float:
    pts = sorted({p for p in points if -R < p < R})
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        val, _ = integrate.quad(fn, -R, R, points=pts or None, epsabs=epsabs, epsrel=epsrel, limit=500)
    return val


def single_average(f: Func, K: float, kinks: Sequence[float] = (), *, epsabs=1e-14, epsrel=1e-13) -> float:
    """Average f(z) over z ~ N(0, K) by adaptive quadrature in u = z/√K, with break points at its kinks."""
    sk = math.sqrt(K)
    return _quad(lambda u: float(f(sk * u)) * _INV_SQRT_2PI * math.exp(-0.5 * u * u),
                 [k / sk for k in kinks], epsabs, epsrel)


def pair_average(
    f: Func,
    g: Func,
    kaa: float,
    kab: float,
    kbb: float,
    kinks_f: Sequence[float] = (),
    kinks_g: Sequence[float] = (),
    *,
    epsabs: float = 1e-14,
    epsrel: float = 1e-13,
) -> float:
    """Average f(z_a) g(z_b) over N(0, [[kaa, kab], [kab, kbb]]) by nested quadrature (see the module doc).

    ``f`` and ``g`` are vectorised numpy functions; ``kinks_f``/``kinks_g`` the points where they or
    their first derivative jump. ``|c| = 1`` (s = 0) is handled as the degenerate one-variable case.
    """
    sa = math.sqrt(kaa)
    beta = kab / kaa
    s2 = kbb - kab * kab / kaa
    s = 0.0 if s2 <= 1e-14 * kbb else math.sqrt(s2)

    def inner(u: float) -> float:
        m = beta * sa * u
        if s == 0.0:
            return float(g(np.float64(m)))
        edges = sorted({-R, R, *((k - m) / s for k in kinks_g if -R < (k - m) / s < R)})
        return _gauss_legendre(lambda w: g(m + s * w) * _phi(w), edges)

    outer_points = [k / sa for k in kinks_f]
    if beta != 0.0:
        outer_points += [k / (beta * sa) for k in kinks_g]
    return _quad(lambda u: float(f(np.float64(sa * u))) * inner(u) * _INV_SQRT_2PI * math.exp(-0.5 * u * u),
                 outer_points, epsabs, epsrel)


def zscores(value, stderr, prediction) -> np.ndarray:
    """``(value − prediction) / stderr`` elementwise; entries with zero error and exact agreement give 0."""
    value, stderr, prediction = (np.asarray(a, dtype=float) for a in (value, stderr, prediction))
    diff = value - prediction
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(stderr > 0, diff / stderr, np.where(diff == 0, 0.0, np.inf))
    return z


def assert_zscores(value, stderr, prediction, bound: float = 4.0, what: str = "estimate") -> None:
    """Raise AssertionError naming the worst entry when any |z| exceeds ``bound``."""
    z = zscores(value, stderr, prediction)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(z)), z.shape)) if z.ndim else ()
    if not np.all(np.abs(z) <= bound):
        v, e, p = (float(np.broadcast_to(a, z.shape)[worst]) for a in (value, stderr, prediction))
        raise AssertionError(f"{what}: |z| = {abs(float(z[worst])):.2f} > {bound} at {worst}: value {v!r} ± {e!r}, "
                             f"prediction {p!r}")


def fit_inverse_width(*args, **kwargs):
    """Fit ``c0 + c1/n (+ c2/n²)`` to Monte Carlo values over widths: :func:`nnft.montecarlo.fit_inverse_width`."""
    from nnft.numeric.montecarlo import fit_inverse_width as fit

    return fit(*args, **kwargs)

__all__ = ["assert_zscores", "fit_inverse_width", "pair_average", "single_average", "zscores"]
