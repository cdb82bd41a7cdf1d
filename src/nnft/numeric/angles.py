"""The angle θ_αβ carried across layers for nearly parallel (or antiparallel) pairs of inputs.

K_αβ alone fixes θ = arccos(K_αβ/√(K_αα K_ββ)) only to about eps/sin θ (√(2 eps) ≈ 2e-8 at c = ±1), so two
inputs at angle 1e-9 get an NTK term ``(π − θ)/(2π) Θ`` (relu's σ′ kernel) that is wrong in its 9th digit,
and a Θ with negative eigenvalues. Maps of the kinked arc-cosine family (relu, leaky relu, |z|, step, sign)
therefore have a second form ``offdiag_angle`` (:attr:`nnft.recursions.base.OneLayerMap.angle`) that takes
θ as an input and returns the next layer's θ from a cancellation-free expression.

Only the entries that need it are carried, so the dense tile work is unchanged: a pair enters the set when
``|c| > 1 − TAU`` at some layer (one fused pass over the tile per layer), with θ from the input vectors at
layer 1 (from their difference, :func:`input_angles`: accurate to relative eps) or ``arccos(c)`` at a later
layer (accurate to eps/√TAU there), and is then evaluated by the angle form for every further layer. Exact
duplicates and opposites (pinned by the driver) and the diagonal never enter.
"""

from __future__ import annotations

import functools

import numpy as np

#: A pair is carried once ``1 − |c| < TAU``: arccos(c) elsewhere is off by at most eps/√(2 TAU) ≈ 5e-15.
TAU = 1e-3
_CHUNK = 4096  # pairs per block of the layer-1 angle computation (memory O(_CHUNK · n_0))


@functools.cache
def _numba_counters():
    """The fused numba counting loops (:mod:`nnft.runtime_numba`), or None where numba is not installed."""
    try:
        from nnft import runtime_numba
    except ImportError:
        return None
    return runtime_numba.count_near_all, runtime_numba.count_near_masked


def _count_near(K, sa, sb, lim, mask):
    """Entries with |K_ij| > lim·sa_i·sb_j that are not masked (mask of shape (0, 0): none masked).

    One fused numba pass when numba is installed; a numpy expression (a tile-sized temporary) otherwise.
    """
    kern = _numba_counters()
    if kern is not None:
        if mask.shape[0] == 0:
            return kern[0](K, sa, sb, lim)
        return kern[1](K, sa, sb, lim, mask.view(np.uint8))
    near = np.abs(K) > (lim * sa)[:, None] * sb[None, :]
    if mask.shape[0]:
        near &= ~mask
    return int(np.count_nonzero(near))


_NOMASK = np.zeros((0, 0), dtype=np.bool_)


def input_angles(x: np.ndarray, C_b: float, C_W: float, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Layer-1 angles of the pairs (ia, ib): between ``(√C_b, √(C_W/n_0) x_a)`` and the same for ``x_b``.

    The angle is that of ``y = (β, x)``, ``β = √(C_b n_0/C_W)``, scaled per pair by a power of two (exact). With
    ``d = y_b ∓ y_a`` (− for c ≥ 0, + otherwise: the small one), ``p = d·ŷ_a`` and ``d_⊥ = d − p ŷ_a``,
    ``y_b = ±((|y_a| + p) ŷ_a + d_⊥)``, so ``θ = atan2(|d_⊥|, |y_a| + p)`` (or π minus it): the difference of the
    inputs is formed before any rounding of their norms, and θ is accurate to a few eps *relative*, even at
    1e-12, where ``arccos`` of the Gram correlation is off by √eps. A zero-variance input gives π/2.
    """
    beta = np.sqrt(C_b * x.shape[1] / C_W) if C_W > 0 else 0.0
    out = np.empty(ia.shape[0])
    for s in range(0, ia.shape[0], _CHUNK):
        sl = slice(s, s + _CHUNK)
        xa, xb = x[ia[sl]], x[ib[sl]]
        # each vector scaled by its own power of two (exact; the angle does not depend on positive scalings),
        # so neither underflows when their norms differ by many orders of magnitude
        ta = np.maximum(np.max(np.abs(xa), axis=1), beta)
        tb = np.maximum(np.max(np.abs(xb), axis=1), beta)
        ok = (ta > 0) & (tb > 0)
        sa = np.ldexp(1.0, -np.frexp(np.where(ta > 0, ta, 1.0))[1])[:, None]
        sb = np.ldexp(1.0, -np.frexp(np.where(tb > 0, tb, 1.0))[1])[:, None]
        ya = np.concatenate([np.full((xa.shape[0], 1), beta), xa], axis=1) * sa
        yb = np.concatenate([np.full((xb.shape[0], 1), beta), xb], axis=1) * sb
        # the shorter vector is the base: the projection of the longer one on it then has no cancellation
        # (with the longer one as base, |y_a| + p cancels to noise when |y_b| ≪ |y_a|: θ came out π/2)
        swap = np.einsum("ij,ij->i", yb, yb) < np.einsum("ij,ij->i", ya, ya)
        ya, yb = np.where(swap[:, None], yb, ya), np.where(swap[:, None], ya, yb)
        na = np.sqrt(np.einsum("ij,ij->i", ya, ya))
        with np.errstate(divide="ignore", invalid="ignore"):
            ua = ya / np.where(na > 0, na, 1.0)[:, None]
        opposite = np.einsum("ij,ij->i", ya, yb) < 0
        d = np.where(opposite[:, None], -yb, yb) - ya
        p = np.einsum("ij,ij->i", d, ua)
        perp = d - p[:, None] * ua
        t = np.arctan2(np.sqrt(np.einsum("ij,ij->i", perp, perp)), na + p)
        nb = np.einsum("ij,ij->i", yb, yb)
        out[sl] = np.where(ok & (na > 0) & (nb > 0), np.where(opposite, np.pi - t, t), 0.5 * np.pi)
    return out


class AngleTracker:
    """The carried angles of one tile's near pairs, updated layer by layer with the map's ``offdiag_angle``."""

    def __init__(self, plan, rows: slice, cols: slice, excluded: np.ndarray | None) -> None:
        self.plan = plan
        self.rows, self.cols = rows, cols
        R = rows.stop - rows.start
        C = cols.stop - cols.start
        lo, hi = max(rows.start, cols.start), min(rows.stop, cols.stop)
        if lo < hi:  # the tile meets the diagonal: its diagonal entries are exact already
            diag = np.zeros((R, C), dtype=bool)
            k = np.arange(lo, hi)
            diag[k - rows.start, k - cols.start] = True
            excluded = diag if excluded is None else (excluded | diag)
        self.mask = _NOMASK if excluded is None else np.array(excluded, dtype=np.bool_)
        self.ii = np.zeros(0, dtype=np.intp)
        self.jj = np.zeros(0, dtype=np.intp)
        self.theta = np.zeros(0)

    def _find(self, K: np.ndarray, ell: int) -> tuple[np.ndarray, np.ndarray]:
        """Local indices of the not-yet-carried entries of layer ``ell`` (0-based) with 1 − |c| < TAU."""
        d = self.plan.dK[ell]
        sa = np.sqrt(d[self.rows])
        sb = np.sqrt(d[self.cols])
        K = np.ascontiguousarray(K)
        if _count_near(K, sa, sb, 1.0 - TAU, self.mask) == 0:
            return self.ii[:0], self.jj[:0]
        near = np.abs(K) > (1.0 - TAU) * sa[:, None] * sb[None, :]
        if self.mask.shape[0]:
            near &= ~self.mask
        ii, jj = np.nonzero(near)
        if self.mask.shape[0] == 0:
            self.mask = np.zeros(K.shape, dtype=bool)
        self.mask[ii, jj] = True
        return ii, jj

    def start(self, K: np.ndarray) -> None:
        """Find the near pairs of layer 1 and their exact angles from the inputs."""
        ii, jj = self._find(K, 0)
        if ii.size:
            p = self.plan
            cb, cw = p.params[0][0], p.params[0][1]
            self.ii, self.jj = ii, jj
            self.theta = input_angles(p.x, cb, cw, ii + self.rows.start, jj + self.cols.start)

    def gather(self, K: np.ndarray, T: np.ndarray | None):
        """The carried entries' K (and Θ) of the current layer, before the dense map replaces them."""
        if not self.ii.size:
            return None
        return K[self.ii, self.jj], (T[self.ii, self.jj] if T is not None else None)

    def update(self, ell: int, prev, K: np.ndarray, T: np.ndarray | None, last: bool):
        """Overwrite the carried entries of layer ell + 1 by the angle form; look for new near pairs."""
        p = self.plan
        if prev is not None:
            cb, cw, lb, lw = p.params[ell]
            da = p.dK[ell - 1, self.rows][self.ii]
            db = p.dK[ell - 1, self.cols][self.jj]
            kp, tp = prev
            if T is not None:
                res = p.mod.offdiag_angle_1d(da, kp, db, self.theta, tp, cb, cw, lb, lw)
            else:
                res = p.mod.offdiag_angle_1d(da, kp, db, self.theta, cb, cw)
            n = self.ii.size
            K = K if K.flags.writeable else np.array(K)
            K[self.ii, self.jj] = np.broadcast_to(res[0], (n,))
            if T is not None:
                T = T if T.flags.writeable else np.array(T)
                T[self.ii, self.jj] = np.broadcast_to(res[1], (n,))
            self.theta = np.array(np.broadcast_to(res[-1], (n,)), dtype=np.float64)
        if not last:
            ii, jj = self._find(K, ell)
            if ii.size:
                d = p.dK[ell]
                den = np.sqrt(d[self.rows][ii]) * np.sqrt(d[self.cols][jj])  # no overflow of the product
                with np.errstate(divide="ignore", invalid="ignore"):
                    c = np.clip(np.where(den > 0, K[ii, jj] / den, 0.0), -1.0, 1.0)
                self.ii = np.concatenate([self.ii, ii])
                self.jj = np.concatenate([self.jj, jj])
                self.theta = np.concatenate([self.theta, np.arccos(c)])
        return K, T


__all__ = ["TAU", "AngleTracker", "input_angles"]
