"""The saddle point of the scalar proportional-limit action, found by a bracketed root in log Q (numpy/scipy only).

At the saddle of ``S(Q) = Σ_ℓ n_ℓ (Q_ℓ − ln Q_ℓ) + D(q)``, ``q = Π_ℓ Q_ℓ``, every layer has
``n_ℓ (Q_ℓ − 1) = c`` with one common ``c = −q D'(q)`` (derived in :mod:`nnft.proportional.action`). The
solver parametrises ``c = n_min (e^v − 1)`` by ``v = ln Q`` of the narrowest layer, so every ``Q_ℓ > 0``
for every real v, and finds the roots of ``g(v) = c + q D'(q)``. ``g → −n_min < 0`` as ``v → −∞`` and
``g → +∞`` as ``v → ∞``, so a sign change always exists: the bracket starts at ``[−1, 1]`` and doubles
outward until it holds one (a fixed bracket such as deepbays' ``ln Q ∈ [−4, 7]`` can miss it). All sign
changes on a grid over the bracket are refined with Brent's method and the root of lowest action is
kept (the others are reported); if Brent fails, a bounded minimisation of S is the fallback. The result
says which path ran and its residual.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from nnft.errors import ConvergenceError

__all__ = ["MatrixSaddle", "PairSaddle", "Saddle", "solve", "solve_matrix", "solve_pair"]

_V_MAX = 60.0
_GRID = 400


@dataclass(frozen=True)
class Saddle:
    """The solution: ``Q`` per hidden layer, their product ``q``, and how it was found."""

    Q: np.ndarray
    q: float
    c: float
    action: float
    residual: float  # |g(v)| / n_min at the solution
    method: str  # "brentq" or "bounded minimisation (fallback)"
    bracket: tuple[float, float]  # in v = ln Q_min
    other_roots: tuple[float, ...]  # q at the other stationary points (higher action), if any
    converged: bool


def solve(widths, data_term: Callable[[float], float], q_data_slope: Callable[[float], float], *,
          tol: float = 1e-12) -> Saddle:
    """Solve ``n_ℓ (Q_ℓ − 1) = c``, ``c = −q D'(q)`` for hidden widths ``widths``.

    ``data_term(q)`` is ``D(q)``, ``q_data_slope(q)`` is ``q D'(q)``; both are sums over eigenmodes.
    """
    n = np.asarray(widths, dtype=np.float64)
    n_min = float(n.min())

    def layers(v: float) -> tuple[float, np.ndarray, float]:
        cc = n_min * math.expm1(v)
        Q = 1.0 + cc / n
        return cc, Q, float(np.prod(Q))

    def g(v: float) -> float:
        cc, _, qq = layers(v)
        return cc + q_data_slope(qq)

    def S(v: float) -> float:
        _, Q, qq = layers(v)
        return float(np.sum(n * (Q - np.log(Q)))) + data_term(qq)

    lo, hi = -1.0, 1.0
    while g(lo) > 0:
        lo *= 2.0
        if lo < -_V_MAX:
            raise ConvergenceError("the saddle-point equation has no root with Q > e^-60: the posterior of the scale "
                                   "collapses to Q → 0 (targets near zero with noise 0, or a degenerate kernel); "
                                   "give noise > 0 or non-zero targets")
    while g(hi) < 0:
        hi *= 2.0
        if hi > _V_MAX:
            raise ConvergenceError("the saddle-point equation has no root with Q < e^60: the targets are too large "
                                   "for the kernel's scale (normalise y or raise C_W), or give noise > 0")
    grid = np.linspace(min(lo, -8.0), max(hi, 8.0), _GRID)
    vals = np.array([g(v) for v in grid])
    roots, method = [], "brentq"
    for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
        if fa == 0.0:
            roots.append(float(a))
        elif fa * fb < 0:
            try:
                roots.append(brentq(g, a, b, xtol=tol, rtol=4 * np.finfo(float).eps, maxiter=200))
            except (RuntimeError, ValueError):
                res = minimize_scalar(S, bounds=(a, b), method="bounded", options={"xatol": tol})
                roots.append(float(res.x))
                method = "bounded minimisation (fallback)"
    if not roots:  # pragma: no cover - the sign change found above makes this unreachable
        raise ConvergenceError("no sign change of the saddle-point equation on the grid")
    actions = [S(v) for v in roots]
    best = int(np.argmin(actions))
    v = roots[best]
    cc, Q, qq = layers(v)
    resid = abs(g(v)) / n_min
    others = tuple(layers(r)[2] for i, r in enumerate(roots) if i != best)
    return Saddle(Q=Q, q=qq, c=cc, action=actions[best], residual=resid, method=method, bracket=(lo, hi),
                  other_roots=others, converged=bool(resid < 1e-8))


@dataclass(frozen=True)
class PairSaddle:
    """The solution ``(Q̄, Q)`` of the two-parameter (non-odd σ) action and how it was found."""

    Qbar: float
    Q: float
    action: float
    residual: float  # max |∂S/∂ln Q̄|, |∂S/∂ln(1+Q)| divided by n
    method: str
    start: tuple[float, float]
    converged: bool


def solve_pair(n: float, grad: Callable[[float, float], np.ndarray], S: Callable[[float, float], float],
               start: tuple[float, float], *, tol: float = 1e-11) -> PairSaddle:
    """Solve ``∂S/∂Q̄ = ∂S/∂Q = 0`` in ``u = ln Q̄``, ``w = ln(1 + Q)`` from ``start = (Q̄₀, Q₀)``.

    Powell's hybrid method (MINPACK ``hybr``) first, Levenberg–Marquardt as the fallback; the start is
    the odd-σ solution (``μ = 0``), which the mean-vector term perturbs. ``grad(Q̄, Q)`` returns the two
    partial derivatives.
    """
    from scipy.optimize import root

    def F(x):
        Qb, Q = math.exp(x[0]), math.expm1(x[1])
        g = grad(Qb, Q)
        return np.array([Qb * g[0], (1.0 + Q) * g[1]]) / n

    x0 = np.array([math.log(start[0]), math.log1p(start[1])])
    best = None
    for method in ("hybr", "lm"):
        try:
            with np.errstate(all="ignore"):
                res = root(F, x0, method=method, tol=tol)
        except (ValueError, FloatingPointError):  # pragma: no cover - a non-finite step
            continue
        r = float(np.max(np.abs(F(res.x)))) if np.all(np.isfinite(res.x)) else math.inf
        if not math.isfinite(r):
            r = math.inf
        if best is None or r < best[1]:
            best = (res.x, r, method)
        if r < 1e-9:
            break
    if best is None or not math.isfinite(best[1]):
        raise ConvergenceError("the two-parameter saddle point (Q̄, Q) could not be found from the odd-σ start: "
                               "report this with the inputs")
    x, r, method = best
    Qb, Q = math.exp(x[0]), math.expm1(x[1])
    return PairSaddle(Qbar=Qb, Q=Q, action=float(S(Qb, Q)), residual=r,
                      method=method if method == "hybr" else "lm (fallback)", start=tuple(start),
                      converged=bool(r < 1e-8))


@dataclass(frozen=True)
class MatrixSaddle:
    """The m × m order parameter Q at the saddle (kernel *shape* renormalisation) and how it was found."""

    Q: np.ndarray
    action: float
    residual: float  # max |∂S/∂Q| / n at the solution
    method: str
    converged: bool


def solve_matrix(n: float, S: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], np.ndarray],
                 start: np.ndarray, *, tol: float = 1e-12) -> MatrixSaddle:
    """Solve ``∂S/∂Q = 0`` over symmetric positive-definite m × m ``Q`` from ``start`` (the isotropic solution).

    The unknowns are ``Q = L Lᵀ`` with L lower triangular and ``log`` of its diagonal, so every iterate is
    positive definite; Powell's hybrid method on the gradient's upper triangle, with L-BFGS minimisation
    of S followed by the same polish as the fallback.
    """
    from scipy.optimize import minimize, root

    m = start.shape[0]
    rows, cols = np.tril_indices(m)
    iu = np.triu_indices(m)

    def unpack(x):
        L = np.zeros((m, m))
        L[rows, cols] = x
        L[np.diag_indices(m)] = np.exp(np.diag(L))
        return L @ L.T

    def pack(Q):
        L = np.linalg.cholesky(Q)
        L[np.diag_indices(m)] = np.log(np.diag(L))
        return L[rows, cols]

    def F(x):
        return grad(unpack(x))[iu] / n

    def resid(x):
        return float(np.max(np.abs(F(x))))

    x0 = pack(start)
    with np.errstate(all="ignore"):
        res = root(F, x0, method="hybr", tol=tol)
    x, method = res.x, "hybr"
    if not (np.all(np.isfinite(x)) and resid(x) < 1e-9):
        with np.errstate(all="ignore"):
            mres = minimize(lambda y: S(unpack(y)) / n, x0, method="L-BFGS-B",
                            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000})
            res = root(F, mres.x, method="hybr", tol=tol)
        x, method = res.x, "L-BFGS-B + hybr (fallback)"
    if not np.all(np.isfinite(x)):
        raise ConvergenceError("the m × m saddle point could not be found from the isotropic start: report this")
    Q = unpack(x)
    r = resid(x)
    return MatrixSaddle(Q=Q, action=float(S(Q)), residual=r, method=method, converged=bool(r < 1e-8))
