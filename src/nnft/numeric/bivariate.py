"""Many bivariate Gaussian averages ⟨f(z_a) g(z_b)⟩ at once, on one product rule per entry.

The layer terms of the 1/n recursions need ``⟨σσ⟩`` and its first and second derivatives in the metric for
every pair of inputs; by Price's theorem these are averages ``⟨σ^{(i)}(z_a) σ^{(j)}(z_b)⟩`` of separable
integrands (ten of them for tanh). When no closed form exists they share everything but the two 1-D
factors, so all of them are computed on one rule per entry:

``⟨f(z_a) g(z_b)⟩ ≈ Σ_jk W_jk f(√K_aa x_j) g(√K_bb y_k)``, ``W_jk ∝ φ₂(x_j, y_k; ρ)`` on trapezoid grids,

with ``ρ = K_ab/√(K_aa K_bb)`` and the exact bivariate normal density as weight (normalised to sum 1), so
the cost is one n × m weight matrix plus n + m evaluations per function — against n·m evaluations of every
integrand for a generic 2-D rule. Spacing: the measured tanh spacing 0.33/√K (``nnft.numeric.moments4``)
and ``0.9·√(1 − ρ²)`` to resolve the density's ridge; two levels are compared (tolerance relative to
``√(⟨f²⟩⟨g²⟩)``). Entries the largest product rule cannot resolve (nearly parallel inputs, |ρ| → 1, and the
diagonal ρ = 1) are conditioned instead: ``z_b = √K_bb(ρx + √(1−ρ²)η)`` with the trapezoid rule in x and
Gauss–Hermite in η (few nodes: the conditional spread is small). Anything still unresolved is reported back
for the caller's fallback. Only numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nnft.numeric.moments4 import DEFAULT_TOL, L_TRUNC, PAIR_SIZES

Array = np.ndarray

__all__ = ["SeparableTwoPoint", "bivariate_expectations"]


def _grid(i: int) -> tuple[Array, Array]:
    if i < 0:
        return np.zeros(1), np.ones(1)
    x = np.linspace(-L_TRUNC, L_TRUNC, PAIR_SIZES[i])
    w = np.exp(-0.5 * x * x)
    return x, w / w.sum()


def _index(loading: Array, s: Array) -> Array:
    h = np.minimum(0.33 / np.where(loading > 0, loading, 1.0), 0.9 * np.where(s > 0, s, 1e-300))
    idx = np.searchsorted(np.array(PAIR_SIZES), 1.0 + 2.0 * L_TRUNC / h) - 1
    return np.where(loading > 0, np.maximum(idx, 0), -1)


def _level(fa, fb, terms, sa, sb, rho, iu: int, iv: int) -> tuple[Array, Array]:
    xu, wu = _grid(iu)
    xv, wv = _grid(iv)
    with np.errstate(all="ignore"):
        Fa = [np.asarray(f(sa[:, None] * xu[None, :]), dtype=np.float64) * np.ones((sa.size, xu.size)) for f in fa]
        Fb = [np.asarray(g(sb[:, None] * xv[None, :]), dtype=np.float64) * np.ones((sb.size, xv.size)) for g in fb]
    if iu >= 0 and iv >= 0:
        r = rho[:, None, None]
        s2 = np.maximum(1.0 - r * r, 1e-300)
        W = np.exp(-0.5 * (xu[None, :, None] ** 2 - 2 * r * xu[None, :, None] * xv[None, None, :]
                           + xv[None, None, :] ** 2) / s2)
        W /= np.sum(W, axis=(1, 2), keepdims=True)
    else:
        W = np.broadcast_to(wu[:, None] * wv[None, :], (sa.size, xu.size, xv.size))
    WG = [W @ g[:, :, None] for g in Fb]  # (N, n, 1) each
    vals = np.stack([np.einsum("bj,bj->b", Fa[i], WG[j][:, :, 0]) for i, j in terms])
    scale = np.stack([np.sqrt(np.einsum("bj,j->b", Fa[i] ** 2, wu) * np.einsum("bk,k->b", Fb[j] ** 2, wv))
                      for i, j in terms])
    return vals, scale


_GH_Q = (1, 3, 5, 8, 12, 16, 22, 30)


def _conditional_level(fa, fb, terms, sa, sb, rho, iu: int, iq: int) -> tuple[Array, Array]:
    """Near |ρ| = 1: z_b = √K_bb (ρ x + √(1 − ρ²) η), trapezoid in x and Gauss–Hermite in η."""
    x, w = _grid(iu)
    y, om = np.polynomial.hermite_e.hermegauss(_GH_Q[iq]) if _GH_Q[iq] > 1 else (np.zeros(1), np.ones(1))
    om = om / om.sum()
    s = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
    zb = sb[:, None, None] * (rho[:, None, None] * x[None, :, None] + s[:, None, None] * y[None, None, :])
    with np.errstate(all="ignore"):
        Fa = [np.asarray(f(sa[:, None] * x[None, :]), dtype=np.float64) * np.ones((sa.size, x.size)) for f in fa]
        Gb = [(np.asarray(g(zb), dtype=np.float64) * np.ones(zb.shape)) @ om for g in fb]
    vals = np.stack([np.einsum("bj,bj,j->b", Fa[i], Gb[j], w) for i, j in terms])
    scale = np.stack([np.sqrt(np.einsum("bj,j->b", Fa[i] ** 2, w) * np.einsum("bj,j->b", Gb[j] ** 2, w))
                      for i, j in terms])
    return vals, scale


def _conditional(fa, fb, terms, sa, sb, rho, tol) -> tuple[Array, Array]:
    """The entries the product rule could not resolve (|ρ| → 1), by conditioning z_b on z_a."""
    N = sa.size
    E = np.full((len(terms), N), np.nan)
    ok = np.zeros(N, dtype=bool)
    s = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
    iu = _index(np.maximum(sa, sb * np.abs(rho)), np.ones(N))
    iu = np.maximum(iu, 0)
    iq = np.where(s * sb > 0, 1, 0)
    pending = np.arange(N)
    while pending.size:
        keys: dict[tuple[int, int], list[int]] = {}
        for e in pending:
            keys.setdefault((int(iu[e]), int(iq[e])), []).append(int(e))
        nxt = []
        for (u, q), members in keys.items():
            m = np.array(members)
            up, qp = u + 1, (q + 1 if q > 0 else 0)
            if up >= len(PAIR_SIZES) or qp >= len(_GH_Q):
                continue
            a, _ = _conditional_level(fa, fb, terms, sa[m], sb[m], rho[m], u, q)
            b, scale = _conditional_level(fa, fb, terms, sa[m], sb[m], rho[m], up, qp)
            good = np.all(np.abs(a - b) <= tol * (scale + 1e-300), axis=0) & np.all(np.isfinite(b), axis=0)
            E[:, m[good]] = b[:, good]
            ok[m[good]] = True
            bad = m[~good]
            iu[bad] += 1
            iq[bad] = np.where(iq[bad] > 0, iq[bad] + 1, 0)
            nxt.append(bad)
        pending = np.concatenate(nxt) if nxt else np.array([], dtype=np.int64)
    return E, ok


def bivariate_expectations(fa: Sequence[Callable[[Array], Array]], fb: Sequence[Callable[[Array], Array]],
                           terms: Sequence[tuple[int, int]], K_aa: Array, K_ab: Array, K_bb: Array, *,
                           tol: float = DEFAULT_TOL) -> tuple[Array, Array]:
    """``E[t, e] = ⟨fa[i](z_a) fb[j](z_b)⟩`` for each term t = (i, j) and entry e of the flat metric arrays.

    Returns ``(E, ok)``: ``ok[e]`` is False where the rule did not converge within the largest grid (the
    caller computes those entries otherwise; E is NaN there).
    """
    A, C, B = (np.asarray(v, dtype=np.float64).ravel() for v in (K_aa, K_ab, K_bb))
    N = A.size
    sa, sb = np.sqrt(np.maximum(A, 0.0)), np.sqrt(np.maximum(B, 0.0))
    with np.errstate(all="ignore"):
        rho = np.where((sa > 0) & (sb > 0), np.clip(C / (sa * sb), -1.0, 1.0), 0.0)
    s = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
    both = (sa > 0) & (sb > 0)
    iu = _index(sa, np.where(both, s, 1.0))
    iv = _index(sb, np.where(both, s, 1.0))
    E = np.full((len(terms), N), np.nan)
    ok = np.zeros(N, dtype=bool)
    pending = np.arange(N)
    top = len(PAIR_SIZES) - 1
    while pending.size:
        keys: dict[tuple[int, int], list[int]] = {}
        for e in pending:
            keys.setdefault((int(iu[e]), int(iv[e])), []).append(int(e))
        nxt = []
        for (u, v), members in keys.items():
            m = np.array(members)
            up, vp = (u + 1 if u >= 0 else u), (v + 1 if v >= 0 else v)
            if max(up, vp) > top:
                continue
            a, _ = _level(fa, fb, terms, sa[m], sb[m], rho[m], u, v)
            b, scale = _level(fa, fb, terms, sa[m], sb[m], rho[m], up, vp)
            good = np.all(np.abs(a - b) <= tol * (scale + 1e-300), axis=0) & np.all(np.isfinite(b), axis=0)
            E[:, m[good]] = b[:, good]
            ok[m[good]] = True
            bad = m[~good]
            iu[bad] = np.where(iu[bad] >= 0, iu[bad] + 1, -1)
            iv[bad] = np.where(iv[bad] >= 0, iv[bad] + 1, -1)
            nxt.append(bad)
        pending = np.concatenate(nxt) if nxt else np.array([], dtype=np.int64)
    rest = np.flatnonzero(~ok)
    if rest.size:
        E[:, rest], ok[rest] = _conditional(fa, fb, terms, sa[rest], sb[rest], rho[rest], tol)
    return E, ok


class SeparableTwoPoint:
    """``two_point(K_aa, K_ab, K_bb)`` of a :class:`nnft.numeric.finite_width.FiniteWidthPlan` from separable averages.

    ``pair(K_aa, K_ab, K_bb, *E)`` is the generated map with its Gaussian averages as inputs ``E_t`` =
    ``⟨fa[i](z_a) fb[j](z_b)⟩`` for ``terms[t] = (i, j)``; they are computed by :func:`bivariate_expectations`,
    and entries it cannot resolve (|ρ| → 1) by ``fallback`` (the generated map with its own quadrature).
    """

    def __init__(self, pair, fa, fb, terms, fallback) -> None:
        self.pair, self.fa, self.fb, self.terms, self.fallback = pair, list(fa), list(fb), list(terms), fallback

    def __call__(self, K_aa, K_ab, K_bb):
        A, C, B = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (K_aa, K_ab, K_bb)))
        shape = A.shape
        a, c, b = A.ravel(), C.ravel(), B.ravel()
        E, ok = bivariate_expectations(self.fa, self.fb, self.terms, a, c, b)
        outs = [np.array(np.broadcast_to(np.asarray(v, dtype=np.float64), a.shape))
                for v in self.pair(a, c, b, *E)]
        if not np.all(ok):
            bad = np.flatnonzero(~ok)
            rest = self.fallback(a[bad], c[bad], b[bad])
            for o, r in zip(outs, rest, strict=True):
                o[bad] = np.broadcast_to(np.asarray(r, dtype=np.float64), bad.shape)
        return tuple(o.reshape(shape) for o in outs)
