"""Many Gaussian moments ⟨σ(z_a)^{c_a}σ(z_b)^{c_b}…⟩ at once: the four-point averages of the 1/n vertex.

The fresh term of the vertex recursion needs ``M_abcd = ⟨σ_aσ_bσ_cσ_d⟩_K`` for every sorted quadruple of
P inputs — C(P+3, 4) averages of up to four variables per layer (52 360 for P = 32), of which C(P, 4) are
genuinely four-dimensional. This module evaluates them in batches with one rule per batch, for smooth σ.

Method (chosen by measurement, ``docs/finite_width.md``)
--------------------------------------------------------
*Sequential conditioning.* With the Cholesky factor ``Σ = L Lᵀ`` of an entry's k × k covariance,
``z_i = Σ_{m ≤ i} L_im x_m``, x standard normal, so ``σ(z_1)`` depends on x_1 only, ``σ(z_2)`` on
(x_1, x_2), …: the tensor rule is contracted from the last direction inwards, and σ is evaluated
``n_1 + n_1n_2 + … + n_1…n_k`` times rather than ``k·n_1…n_k`` (the eigen-coordinate rule of
:mod:`nnft.numeric.quadrature_nd` evaluates every σ on the whole grid).

*One 1-D rule per direction, chosen from its loading.* Direction m enters the ridge functions with the
loadings ``L_im`` (i ≥ m); with ``a_m = max_i |L_im|`` the integrand along x_m is σ at scale a_m. For
tanh-like σ (complex singularities at distance ~π/2 from the real axis) measured node counts for 1e-10
on ⟨tanh(a x + b)…⟩ are: Gauss–Hermite 4, 6, 9, 14, 26 nodes at a = 0.05, 0.1, 0.2, 0.35, 0.5 and
the trapezoid rule on |x| ≤ 7.5 17, 19, 21, 27, 33, 45, 65 nodes at a = 0.05 … 1.5 (used at the same
spacing on |x| ≤ 8.5, so that polynomially growing σ lose nothing to the truncation) (Gauss–Hermite
fails to converge beyond a ≈ 0.7: its error decays only like exp(−c√n) for functions with poles).
So directions with a_m < 0.45 get Gauss–Hermite, the others the trapezoid rule; strongly correlated
covariances (deep layers) have small conditional standard deviations and cost little.

*Batches.* Node counts are rounded up to a ladder of sizes, entries with the same counts (and powers) are
evaluated together, vectorised over the batch (chunks of ~2²¹ nodes).

*Accuracy check.* Each entry is evaluated at its level and one ladder step finer in every direction;
it is accepted when the two agree to ``tol`` relative to the scale ``Π_i ⟨σ(z_i)^{2c_i}⟩^{1/2}`` (the
finer value is returned; convergence is exponential, so it is far better than the difference), and
refined otherwise. Entries still unconverged at the largest ladder size raise
:class:`nnft.errors.BudgetError`.

This is a numeric-layer module: numpy only, handed the activation as a vectorised callable.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from nnft.errors import BudgetError, DivergenceError
from nnft.numeric.parallel import blas_threads, n_cores

__all__ = ["DEFAULT_TOL", "QUADRUPLE_PATTERNS", "gaussian_moments", "moments4_entries", "pattern_codes",
           "sigma_moments4_entries"]

Array = np.ndarray

#: Agreement of two successive levels, relative to the scale of the integrand, required to accept.
DEFAULT_TOL = 1e-10
L_TRUNC = 8.5  # trapezoid truncation |x| ≤ 8.5 (mass outside 2e-17; ⟨x⁴; |x| > 8.5⟩ ≈ 6e-14 for growing σ)
GH_LIMIT = 0.45  # loadings below this use Gauss–Hermite
#: Ladders of 1-D rule sizes (Gauss–Hermite, trapezoid); level j of a direction is an index into its ladder.
GH_SIZES = (3, 4, 5, 6, 8, 10, 12, 15, 18, 22, 27, 33)
TRAP_SIZES = (19, 23, 27, 33, 39, 47, 55, 67, 79, 95, 115, 137, 165, 199, 239)
_BLOCK = 1 << 21  # nodes per evaluated chunk


@lru_cache(maxsize=64)
def _rule(kind: str, n: int) -> tuple[Array, Array]:
    """Probability-normalised 1-D rule for N(0, 1): Gauss–Hermite ("gh") or trapezoid ("tr") with n nodes."""
    if kind == "gh":
        x, w = np.polynomial.hermite_e.hermegauss(n)
    else:
        x = np.linspace(-L_TRUNC, L_TRUNC, n)
        w = np.exp(-0.5 * x * x)
    return x, w / w.sum()


def _start_level(a: Array) -> tuple[Array, Array]:
    """(kind, ladder index) per loading: the measured node-count model for tanh-like σ at ~1e-10, minus a step."""
    gh = a < GH_LIMIT
    n_gh = 4.0 + 44.0 * a
    n_tr = np.maximum(19.0, 52.0 * a)  # the measured counts at the spacing they had on |x| ≤ 7.5
    idx_gh = np.searchsorted(np.array(GH_SIZES), n_gh)
    idx_tr = np.searchsorted(np.array(TRAP_SIZES), n_tr)
    idx = np.where(gh, idx_gh, idx_tr) - 1
    return gh, np.maximum(idx, 0)


#: Where a Gauss–Hermite direction that has not converged continues on the trapezoid ladder.
_GH_TO_TRAP = 1


def _sizes(gh: tuple[bool, ...], idx: tuple[int, ...]) -> tuple[tuple[str, int], ...] | None:
    """The 1-D rules of a level; a Gauss–Hermite direction past its ladder continues with the trapezoid rule."""
    out = []
    for g, i in zip(gh, idx, strict=True):
        if g and i < len(GH_SIZES):
            out.append(("gh", GH_SIZES[i]))
            continue
        j = i - len(GH_SIZES) + _GH_TO_TRAP if g else i
        if j >= len(TRAP_SIZES):
            return None
        out.append(("tr", TRAP_SIZES[j]))
    return tuple(out)


def _fn(sigma, i: int) -> Callable[[Array], Array]:
    """The function of variable i: ``sigma`` itself, or ``sigma[i]`` when one callable per variable is given."""
    return sigma[i] if isinstance(sigma, tuple) else sigma


def _evaluate(sigma, L: Array, powers: tuple[int, ...],
              rules: tuple[tuple[str, int], ...]) -> Array:
    """Σ_nodes w Π_i σ_i(z_i)^{c_i} for a batch of Cholesky factors L (B, k, k) on one tensor rule.

    ``sigma`` is one callable for all variables or a tuple with one callable per variable."""
    B, k, _ = L.shape
    xs = [_rule(*r) for r in rules]
    sizes = [x.size for x, _ in xs]
    grid = int(np.prod(sizes))
    chunk = max(1, _BLOCK // grid)
    out = np.empty(B)
    for s in range(0, B, chunk):
        Lc = L[s:s + chunk]
        b = Lc.shape[0]
        # partial sums of z_i over the directions m ≤ i, built outwards: shape (b, n_1, …, n_i)
        vals = []
        with np.errstate(all="ignore"):
            for i in range(k):
                z = np.zeros((b,) + (1,) * (i + 1))
                for m in range(i + 1):
                    shape = [b] + [1] * (i + 1)
                    shape[m + 1] = sizes[m]
                    z = z + Lc[:, i, m].reshape([b] + [1] * (i + 1)) * xs[m][0].reshape(
                        [1] * (m + 1) + [sizes[m]] + [1] * (i - m))
                v = np.asarray(_fn(sigma, i)(z), dtype=np.float64)
                vals.append(v ** powers[i] if powers[i] != 1 else v)
            acc = vals[k - 1]
            for i in range(k - 1, -1, -1):
                acc = acc @ xs[i][1]  # contract direction i (the last axis)
                if i > 0:
                    acc = acc * vals[i - 1]
        if not np.all(np.isfinite(acc)):
            raise DivergenceError(
                "a Gaussian moment of σ is not finite at some quadrature node: σ overflows at these variances; "
                "lower the variances (C_W, C_b, input scale) or use an activation that stays finite"
            )
        out[s:s + b] = acc
    return out


def _cholesky(S: Array) -> Array:
    """Batched Cholesky factors of PSD matrices, tolerating (near-)singular ones (a null pivot gives a zero column)."""
    B, k, _ = S.shape
    L = np.zeros_like(S)
    for j in range(k):
        d = S[:, j, j] - np.einsum("bm,bm->b", L[:, j, :j], L[:, j, :j])
        d = np.where(d > 1e-14 * np.maximum(S[:, j, j], 1e-300), d, 0.0)
        L[:, j, j] = np.sqrt(d)
        inv = np.where(d > 0, 1.0 / np.where(d > 0, L[:, j, j], 1.0), 0.0)
        for i in range(j + 1, k):
            L[:, i, j] = (S[:, i, j] - np.einsum("bm,bm->b", L[:, i, :j], L[:, j, :j])) * inv
    return L


def _scale(sigma, S: Array, powers: tuple[int, ...]) -> Array:
    """Π_i ⟨σ(z_i)^{2c_i}⟩^{1/2} per entry (a bound on |⟨Π σ^c⟩| by Hölder-type reasoning, the accuracy scale)."""
    x, w = _rule("tr", 121)
    out = np.ones(S.shape[0])
    with np.errstate(all="ignore"):
        for i, c in enumerate(powers):
            v = np.asarray(_fn(sigma, i)(np.sqrt(S[:, i, i])[:, None] * x), dtype=np.float64)
            out *= np.sqrt(np.abs((v ** (2 * c)) @ w)) + 1e-300
    return out


# ----------------------------------------------------------------------------------- canonical pairs
#: Trapezoid sizes of the canonical-pair rule (odd, on |x| ≤ L_TRUNC); beyond the last, sequential conditioning.
PAIR_SIZES = (19, 23, 27, 33, 39, 47, 55, 67, 79, 95, 115, 137, 165, 199, 239, 287, 345)
_RIDGE = 0.9  # spacing ≤ this × √(1 − ρ²): resolves the bivariate density across its ridge


def _groups(powers: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split the variables into X (first two slots of the quadruple) and Y (the rest) by their powers."""
    slots = [i for i, c in enumerate(powers) for _ in range(c)]
    X = tuple(sorted(set(slots[:2])))
    Y = tuple(i for i in range(len(powers)) if i not in X)
    if not Y:  # e.g. powers (4,) or (2, 2) with one variable in X: move the last variable of X to Y
        X, Y = X[:-1], X[-1:]
    return X, Y


def _whiten(S: Array) -> tuple[Array, Array]:
    """``A`` (B, k, 2) with S = A Aᵀ (null directions dropped, padded with zero columns) and its pseudo-inverse."""
    lam, E = np.linalg.eigh(S)
    lam = lam[:, ::-1]
    E = E[:, :, ::-1]
    keep = lam > 1e-13 * np.maximum(lam[:, :1], 1e-300)
    root = np.where(keep, np.sqrt(np.where(keep, lam, 0.0)), 0.0)
    inv = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
    A = np.zeros(S.shape[:2] + (2,))
    Ainv = np.zeros((S.shape[0], 2, S.shape[1]))
    k = S.shape[1]
    A[:, :, :k] = E * root[:, None, :]
    Ainv[:, :k, :] = np.swapaxes(E, 1, 2) * inv[:, :, None]
    return A, Ainv


def _canonical(S: Array, X: tuple[int, ...], Y: tuple[int, ...]) -> tuple[Array, Array, Array]:
    """``P`` (B, |X|, 2), ``Q`` (B, |Y|, 2), ``ρ`` (B, 2): X = P u, Y = Q v, Cov(u_i, v_j) = δ_ij ρ_i.

    Canonical correlation analysis (Hotelling 1936): whiten X and Y, then the SVD of their cross-covariance.
    """
    Sxx, Syy = S[:, X][:, :, X], S[:, Y][:, :, Y]
    Sxy = S[:, X][:, :, Y]
    Ax, Ax_inv = _whiten(Sxx)
    Ay, Ay_inv = _whiten(Syy)
    C = Ax_inv @ Sxy @ np.swapaxes(Ay_inv, 1, 2)  # (B, 2, 2) cross-covariance of the whitened variables
    U, rho, Vt = np.linalg.svd(C)
    return Ax @ U, Ay @ np.swapaxes(Vt, 1, 2), np.clip(rho, 0.0, 1.0)


def _pair_sizes(P: Array, Q: Array, rho: Array) -> tuple[Array, Array]:
    """Ladder indices of the u- and v-rules per canonical slot (B, 2 each; -1 = slot absent)."""
    s = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
    out = []
    for M in (P, Q):
        a = np.max(np.abs(M), axis=1)  # (B, 2) loadings
        present = a > 0
        h = 0.33 / np.where(present, a, 1.0)  # the measured tanh spacing for ~1e-10 (module docstring)
        both = (np.max(np.abs(P), axis=1) > 0) & (np.max(np.abs(Q), axis=1) > 0) & (rho > 0)
        h = np.where(both, np.minimum(h, _RIDGE * np.where(s > 0, s, 1e-300)), h)
        n = 1.0 + 2.0 * L_TRUNC / h
        idx = np.searchsorted(np.array(PAIR_SIZES), n) - 1
        out.append(np.where(present, np.maximum(idx, 0), -1))
    return out[0], out[1]


def _slot_rule(i: int) -> tuple[Array, Array, float]:
    if i < 0:
        return np.zeros(1), np.ones(1), 1.0
    n = PAIR_SIZES[i]
    x = np.linspace(-L_TRUNC, L_TRUNC, n)
    return x, np.exp(-0.5 * x * x), x[1] - x[0]


def _pair_evaluate(sigma, P: Array, Q: Array, rho: Array, pX: tuple[int, ...], pY: tuple[int, ...],
                   iu: tuple[int, int], iv: tuple[int, int]) -> tuple[Array, Array]:
    """``Σ F[j0,j1] (W0 G W1ᵀ)[j0,j1]`` for a batch on one rule — the product form of ⟨F(X)G(Y)⟩ — and the same
    sum on the nested rule of twice the step (every other node: the accuracy check, at 1/8 of the cost)."""
    B = P.shape[0]
    ru = [_slot_rule(i) for i in iu]
    rv = [_slot_rule(i) for i in iv]

    sX, sY = sigma if isinstance(sigma, list) else (sigma, sigma)

    def values(M, rules, powers, fns):
        out = None
        with np.errstate(all="ignore"):
            for c, pw in enumerate(powers):
                zc = (M[:, c, 1, None, None] * rules[1][0][None, None, :]
                      + M[:, c, 0, None, None] * rules[0][0][None, :, None])
                v = np.asarray(_fn(fns, c)(zc), dtype=np.float64)
                if pw != 1:
                    v = v ** pw
                out = np.array(np.broadcast_to(v, zc.shape)) if out is None else np.multiply(out, v, out=out)
        return out

    F = values(P, ru, pX, sX)
    G = values(Q, rv, pY, sY)
    W = []
    for i in range(2):
        xu, wu, _ = ru[i]
        xv, wv, _ = rv[i]
        if iu[i] >= 0 and iv[i] >= 0:
            r = rho[:, i, None, None]
            s2 = np.maximum(1.0 - r * r, 1e-300)
            Wi = np.exp((-0.5 / s2) * (xu[None, :, None] ** 2 - 2 * r * xu[None, :, None] * xv[None, None, :]
                                       + xv[None, None, :] ** 2))
        else:
            Wi = np.broadcast_to(wu[:, None] * wv[None, :], (B, xu.size, xv.size))
        W.append(Wi)

    def total(F, G, W0, W1):
        norm = np.sum(W0, axis=(1, 2)) * np.sum(W1, axis=(1, 2))
        return np.einsum("bjk,bjk->b", F, W0 @ G @ np.swapaxes(W1, 1, 2)) / norm

    fine = total(F, G, W[0], W[1])
    su = [slice(None, None, 2 if r[0].size > 1 else 1) for r in ru]
    sv = [slice(None, None, 2 if r[0].size > 1 else 1) for r in rv]
    coarse = total(F[:, su[0], su[1]], G[:, sv[0], sv[1]], W[0][:, su[0], sv[0]], W[1][:, su[1], sv[1]])
    if not np.all(np.isfinite(fine)):
        raise DivergenceError(
            "a Gaussian moment of σ is not finite at some quadrature node: σ overflows at these variances; "
            "lower the variances (C_W, C_b, input scale) or use an activation that stays finite"
        )
    return fine, coarse


#: Entries per evaluated chunk of the product rule (measured: 8 → 13.5 s, 48 → 10.3 s, 400 → 11.4 s for a P = 32 layer).
_PAIR_CHUNK = 48


def _threaded(fn: Callable[[Array], tuple[Array, Array]], members: Array) -> tuple[Array, Array]:
    """``fn`` over cache-sized chunks of ``members`` on the cores (numpy releases the GIL; BLAS single-threaded)."""
    parts = np.array_split(members, max(1, members.size // _PAIR_CHUNK))
    workers = min(n_cores(), len(parts))
    if workers == 1:
        res = [fn(p) for p in parts]
    else:
        with blas_threads(1), ThreadPoolExecutor(workers) as pool:
            res = list(pool.map(fn, parts))
    return np.concatenate([r[0] for r in res]), np.concatenate([r[1] for r in res])


def _pair_moments(sigma, S: Array, powers: tuple[int, ...], tol: float, scale: Array) -> tuple[Array, Array]:
    """Moments by the canonical-pair product rule; returns (values, converged mask).

    Acceptance: the trapezoid error falls like ``exp(−a/h)``, so the rule of step 2h nested in it has about
    the square root of its error; the fine value is accepted when the two differ by at most
    ``tol^{0.6}`` (relative to the scale), i.e. a predicted error ``≲ tol^{1.2}`` with margin in the exponent.
    """
    B = S.shape[0]
    X, Y = _groups(powers)
    pX, pY = tuple(powers[i] for i in X), tuple(powers[i] for i in Y)
    if isinstance(sigma, tuple):  # one function per variable: split them like the variables ([X's, Y's])
        sigma = [tuple(sigma[i] for i in X), tuple(sigma[i] for i in Y)]
    P, Q, rho = _canonical(S, X, Y)
    iu, iv = _pair_sizes(P, Q, rho)
    # the model's level is the fine rule; every present grid of an entry gets the entry's largest level, so that
    # entries fall into few bins (≤ len(PAIR_SIZES) per presence pattern) and are evaluated in large batches
    common = np.max(np.concatenate([iu, iv], axis=1), axis=1, keepdims=True) + 1
    iu = np.where(iu >= 0, common, -1)
    iv = np.where(iv >= 0, common, -1)
    out = np.zeros(B)
    done = np.zeros(B, dtype=bool)
    pending = np.arange(B)
    top = len(PAIR_SIZES) - 1
    accept = tol ** 0.6
    while pending.size:
        key = np.concatenate([iu[pending], iv[pending]], axis=1)
        levels, inverse = np.unique(key, axis=0, return_inverse=True)
        nxt = []
        for g, lev in enumerate(levels):
            members = pending[inverse.ravel() == g]
            u, v = tuple(int(i) for i in lev[:2]), tuple(int(i) for i in lev[2:])
            if max(u + v) > top:
                continue  # left to sequential conditioning
            fine, coarse = _threaded(lambda m, u=u, v=v: _pair_evaluate(sigma, P[m], Q[m], rho[m], pX, pY, u, v),
                                     members)
            ok = np.abs(fine - coarse) <= accept * scale[members]
            out[members[ok]] = fine[ok]
            done[members[ok]] = True
            bad = members[~ok]
            iu[bad] = np.where(iu[bad] >= 0, iu[bad] + 1, -1)
            iv[bad] = np.where(iv[bad] >= 0, iv[bad] + 1, -1)
            nxt.append(bad)
        pending = np.concatenate(nxt) if nxt else np.array([], dtype=np.int64)
    return out, done


def gaussian_moments(sigma, S: Array, powers: tuple[int, ...], *,
                     tol: float = DEFAULT_TOL, method: str = "pairs") -> Array:
    """``⟨Π_i σ(z_i)^{c_i}⟩`` for z ~ N(0, S[b]) for a batch S of shape (B, k, k) (k ≤ 4), accuracy ``tol``.

    ``sigma`` is one vectorised callable, or a tuple of k callables ``(σ_1, …, σ_k)`` for the mixed moments
    ``⟨Π_i σ_i(z_i)^{c_i}⟩`` (e.g. σ and σ' for the NTK statistics).

    Sequential conditioning with per-direction Gauss–Hermite / trapezoid rules (module docstring); σ must
    be smooth (for kinked σ use exact forms, e.g. :mod:`nnft.numeric.orthant_moments` for relu-type σ).
    """
    S = np.asarray(S, dtype=np.float64)
    B, k, _ = S.shape
    out = np.empty(B)
    if B == 0:
        return out
    scale = _scale(sigma, S, powers)
    if method == "pairs" and k >= 2:
        vals, done = _pair_moments(sigma, S, powers, tol, scale)
        out[done] = vals[done]
        rest = np.flatnonzero(~done)
        if rest.size:
            out[rest] = gaussian_moments(sigma, S[rest], powers, tol=tol, method="sequential")
        return out
    L = _cholesky(S)
    load = np.max(np.abs(L), axis=1)  # (B, k): a_m = max_i |L_im|
    gh, idx = _start_level(load)
    pending = np.arange(B)
    while pending.size:
        keys = {}
        for e in pending:
            keys.setdefault((tuple(bool(g) for g in gh[e]), tuple(int(i) for i in idx[e])), []).append(e)
        nxt = []
        for (g, i), members in keys.items():
            members = np.array(members)
            coarse, fine = _sizes(g, i), _sizes(g, tuple(j + 1 for j in i))
            if coarse is None or fine is None:
                raise BudgetError(
                    f"Gaussian moments of σ did not converge to tol={tol:g} with the largest rules "
                    f"({GH_SIZES[-1]} Gauss–Hermite / {TRAP_SIZES[-1]} trapezoid nodes per direction): σ varies "
                    "too fast at these variances (or is kinked); lower the variances or loosen tol="
                )
            a = _evaluate(sigma, L[members], powers, coarse)
            b = _evaluate(sigma, L[members], powers, fine)
            ok = np.abs(a - b) <= tol * scale[members]
            out[members[ok]] = b[ok]
            bad = members[~ok]
            idx[bad] += 1
            nxt.append(bad)
        pending = np.concatenate(nxt) if nxt else np.array([], dtype=np.int64)
    return out


def moments4_entries(K: Array, quads: Array, moments: Callable[[Array, tuple[int, ...]], Array]) -> Array:
    """``⟨σ_aσ_bσ_cσ_d⟩_K`` for each row of ``quads`` by ``moments(S, powers)`` per multiplicity class.

    Rows are grouped by the equality pattern of the sorted quadruple (e.g. (a, a, b, c) → ``powers``
    (2, 1, 1) over the 3 × 3 covariance of (a, b, c)); ``moments`` gets the stacked covariances (B, k, k).
    """
    quads = np.sort(np.asarray(quads, dtype=np.int64), axis=1)
    out = np.empty(quads.shape[0])
    code = pattern_codes(quads)
    for c, (powers, cols) in QUADRUPLE_PATTERNS.items():
        rows = np.flatnonzero(code == c)
        if rows.size == 0:
            continue
        idx = quads[rows][:, cols]
        out[rows] = moments(K[idx[:, :, None], idx[:, None, :]], powers)
    return out


def sigma_moments4_entries(sigma: Callable[[Array], Array], K: Array, quads: Array, *,
                           kinks: tuple[float, ...] = (), tol: float = DEFAULT_TOL) -> Array:
    """``⟨σ_aσ_bσ_cσ_d⟩_K`` for each row (a, b, c, d) of ``quads`` (indices into the P × P metric K), smooth σ.

    :func:`moments4_entries` with :func:`gaussian_moments`. ``kinks`` must be empty.
    """
    if kinks:
        raise ValueError("sigma_moments4_entries needs a smooth σ; kinked activations use exact forms")
    return moments4_entries(K, quads, lambda S, powers: gaussian_moments(sigma, S, powers, tol=tol))


def pattern_codes(quads: Array) -> Array:
    """The equality pattern ``4·[q0=q1] + 2·[q1=q2] + [q2=q3]`` of each sorted quadruple (QUADRUPLE_PATTERNS key)."""
    eq = quads[:, 1:] == quads[:, :-1]
    return eq[:, 0] * 4 + eq[:, 1] * 2 + eq[:, 2]


#: Equality pattern of a sorted quadruple → (powers by multiplicity, columns of its distinct indices ordered by
#: multiplicity, then value).
QUADRUPLE_PATTERNS = {
    0: ((1, 1, 1, 1), [0, 1, 2, 3]),
    4: ((2, 1, 1), [0, 2, 3]),
    2: ((2, 1, 1), [1, 0, 3]),
    1: ((2, 1, 1), [2, 0, 1]),
    6: ((3, 1), [0, 3]),
    3: ((3, 1), [1, 0]),
    5: ((2, 2), [0, 2]),
    7: ((4,), [0]),
}
