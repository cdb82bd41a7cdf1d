"""Independent reference quadrature for one- and two-variable Gaussian averages (test-only helper).

Nothing here imports nnft: this module is the judge of nnft's closed forms, so it shares no code with
``nnft.numeric`` or nnft's printers. The two-variable average ⟨f(z_a) g(z_b)⟩ over
N(0, [[K_aa, K_ab], [K_ab, K_bb]]) uses the conditional decomposition

    z_a = √K_aa u,   z_b = β z_a + s w,   β = K_ab / K_aa,   s = √(K_bb − K_ab² / K_aa),

with u, w independent standard normals. The inner average over w is a composite Gauss–Legendre rule
on [−R, R] whose panel edges include every kink of g, mapped to w* = (kink − β z_a)/s (so the inner
kink moves with u); the outer average over u is adaptive ``scipy.integrate.quad`` with break points
at the kinks of f (and of g when s = 0, the degenerate c = ±1 case, where the inner average is the
point value g(β z_a)). Any ``IntegrationWarning`` is raised as an error, so a reference value is
never silently inaccurate.
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
