"""Evaluate the NNGP and NTK recursions over data: all layers, tiled, threaded, or lazily with Dask.

Given the per-layer diagonals (O(P L) work), each entry αβ of K^{(ℓ)} and Θ^{(ℓ)} evolves through the
layers independently of every other entry. So the P × P work is cut into tiles; each tile runs
through all L layers while it is cache-resident (one generated-code call per layer), and only the
result is written out. Tiles with J ≥ I are computed and mirrored (K and Θ are symmetric); threads
share the tiles (numpy releases the GIL in its ufuncs). With ``chunks`` the same tile function becomes
the block function of a Dask array, so kernels larger than memory are computed block by block on this
machine or a cluster, and stored with ``dask.array.to_zarr`` or into a ``.npy`` memmap.

Numerics: the first-layer Gram matrix and its diagonal come from the same BLAS product, and the
per-layer diagonals are computed with the same generated off-diagonal map evaluated at
``K_αβ = K_αα = K_ββ``: duplicate inputs then reproduce the diagonal bit for bit, and the correlation
is exactly 1 there (docs/architecture.md: a 1-ulp error in c near 1 becomes a √eps error in the arc-cosine angle).
This holds for quadrature maps too (the 2-D rule at c = 1), at the cost of P extra 2-D averages.
"""

from __future__ import annotations

import math
import operator
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nnft.errors import DivergenceError
from nnft.network import MLP, validate_inputs
from nnft.numeric.memory import check_memory
from nnft.numeric.parallel import blas_threads, n_cores

DEFAULT_TILE = 256


@dataclass
class Kernels:
    """K^{(ℓ)} and Θ^{(ℓ)} for the layers in ``layers``: arrays (len(layers), P, P); ``Theta`` None if not asked.

    With ``net.kernels(x, chunks=c)`` the arrays are lazy Dask arrays (``lazy`` is True): index them,
    ``.compute()`` them or store them (``dask.array.to_zarr``); ``dask.compute(k.K, k.Theta)`` computes
    both from one pass over the blocks.
    """

    K: np.ndarray
    Theta: np.ndarray | None
    net: MLP
    layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.layers:
            self.layers = tuple(range(1, self.K.shape[0] + 1))

    def layer(self, ell: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(K^{(ℓ)}, Θ^{(ℓ)}) of layer ℓ (1-based, as in CONVENTIONS.md)."""
        if ell not in self.layers:
            raise ValueError(f"layer {ell} was not kept; have {self.layers} (use layers='all')")
        i = self.layers.index(ell)
        return self.K[i], (self.Theta[i] if self.Theta is not None else None)

    @property
    def nngp(self) -> np.ndarray:
        """Output-layer K^{(L)}."""
        return self.K[-1]

    @property
    def ntk(self) -> np.ndarray:
        """Output-layer Θ^{(L)}."""
        if self.Theta is None:
            raise ValueError("the NTK was not computed: call net.kernels(x, ntk=True)")
        return self.Theta[-1]

    @property
    def lazy(self) -> bool:
        """True when ``K`` and ``Theta`` are lazy Dask arrays (``chunks=``), not numpy arrays."""
        return not isinstance(self.K, np.ndarray)

    def __repr__(self) -> str:
        P = self.K.shape[1]
        lazy = ", lazy dask arrays" if self.lazy else ""
        return (f"Kernels(layers={list(self.layers)}, P={P}, ntk={'yes' if self.Theta is not None else 'no'}, "
                f"net={self.net!r}{lazy})")

    def _repr_html_(self) -> str:
        if self.lazy:
            return f"<b>Kernels</b> of {self.net!r}, P = {self.K.shape[1]}, layers {list(self.layers)} (lazy)"
        rows = "".join(
            f"<tr><td>{self.layers[i]}</td><td>{np.mean(np.diag(k)):.6g}</td><td>{np.mean(k):.6g}</td>"
            + (f"<td>{np.mean(np.diag(t)):.6g}</td>" if self.Theta is not None else "")
            + "</tr>"
            for i, (k, t) in enumerate(zip(self.K, self.Theta if self.Theta is not None else self.K, strict=True))
        )
        th = "<th>mean Θ<sub>αα</sub></th>" if self.Theta is not None else ""
        return (f"<b>Kernels</b> of {self.net!r}, P = {self.K.shape[1]}<table><tr><th>ℓ</th>"
                f"<th>mean K<sub>αα</sub></th><th>mean K<sub>αβ</sub></th>{th}</tr>{rows}</table>")


_MAPS: dict[tuple[str, bool, str], tuple] = {}
_MAPS_LOCK = threading.Lock()


def _compiled_map(act, ntk: bool, backend: str):
    """(map, generated module, closed?) for an activation, memoised per process."""
    key = (act.key(), ntk, backend)
    with _MAPS_LOCK:
        if key not in _MAPS:
            from nnft.recursions import one_layer_map

            m = one_layer_map("ntk" if ntk else "nngp", act)
            _MAPS[key] = (m, m.compile(backend), m.closed)
        return _MAPS[key]


class _Plan:
    """Everything a tile needs: the generated module, per-layer parameters and diagonals."""

    def __init__(self, net: MLP, x: np.ndarray, ntk: bool, backend: str) -> None:
        self.net = net
        self.ntk = ntk
        self.backend = backend
        self.map, self.mod, self.closed = _compiled_map(net.activation, ntk, backend)
        self.angle = self.map.carries_angle  # θ carried for nearly parallel pairs (nnft.numeric.angles)
        self.x = x
        self.n0 = x.shape[1]
        layers = net.layers
        self.params = [(ly.C_b, ly.C_W, ly.lambda_b, ly.lambda_W) for ly in layers]
        self.L = len(layers)
        self._dup = self._duplicates()
        self.dG = self._gram_diag()
        self.dK, self.dT = self._diagonals()

    def __getstate__(self) -> dict:
        # the generated module cannot be pickled: a Dask worker in another process rebuilds it from its
        # own cache (same content hash), so the lazy kernel runs on a real cluster
        state = dict(self.__dict__)
        state.pop("map", None)
        state.pop("mod", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.map, self.mod, self.closed = _compiled_map(self.net.activation, self.ntk, self.backend)

    def _gram_diag(self) -> np.ndarray:
        """diag(x xᵀ)/n_0, identical for inputs identical up to sign (see :meth:`_duplicates`).

        Tiles compute their own Gram entries with BLAS; on the diagonal those may differ from this value
        by an ulp, which is harmless: every diagonal entry is overwritten with the exact per-layer
        diagonal at the end, and an entry's recursion feeds only itself.
        """
        out = np.einsum("ij,ij->i", self.x, self.x) / self.n0
        if self.canon is not None:
            out = out[self.canon]
        return out

    @property
    def canon(self) -> np.ndarray | None:
        return None if self._dup is None else self._dup[0]

    def _duplicates(self) -> tuple[np.ndarray, np.ndarray] | None:
        """For each input the index of its first copy up to sign, and that sign; None if there are none.

        BLAS rounds x_a·x_b differently for different matrix shapes and even for different positions in
        one product, so for exact duplicates (x_b = x_a) and exact opposites (x_b = −x_a) the Gram entries
        need not be exactly ±|x_a|² and the diagonals of the pair need not agree: a correlation 1 − 1 ulp
        instead of exactly ±1, which the arc-cosine angle turns into a 1e-8 error. Tiles set these entries
        to ±|x_a|² exactly, from one shared diagonal value; duplicates are pinned to the diagonal in every
        layer.
        """
        x = self.x
        nz = x != 0
        first = np.where(nz.any(axis=1), nz.argmax(axis=1), 0)
        sign = np.where(x[np.arange(x.shape[0]), first] < 0, -1.0, 1.0)
        keys = x * sign[:, None]
        # fast exit: identical rows have identical projections, so distinct projections mean no duplicates
        proj = keys @ np.random.default_rng(0).standard_normal(x.shape[1])
        if np.unique(proj).size == x.shape[0]:
            return None
        _, idx, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        canon = idx[inverse.ravel()]
        if np.all(canon == np.arange(x.shape[0])):
            return None
        rel = sign * sign[canon]  # x_a = rel_a · x_{canon_a}
        return canon, rel

    def _diagonals(self) -> tuple[np.ndarray, np.ndarray | None]:
        P = self.x.shape[0]
        L = self.L
        g = self.dG
        dK = np.empty((L, P))
        dT = np.empty((L, P)) if self.ntk else None
        cb, cw, lb, lw = self.params[0]
        _check_input_scale(self.x, cb, cw)
        with np.errstate(over="ignore"):
            dK[0] = cb + cw * g
            if self.ntk:
                dT[0] = lb + lw * g
        q = self.net.activation.gaussian_growth
        for ell in range(1, L):
            cb, cw, lb, lw = self.params[ell]
            k = dK[ell - 1]
            if q > 0 and np.any(4 * q * k >= 1):
                raise DivergenceError(
                    f"the Gaussian average ⟨σ(z)²⟩ diverges at layer {ell + 1}: σ grows like exp({q:.3g} z²), so it "
                    f"is finite only for K < {1 / (4 * q):.3g}, but K^({ell}) reaches {float(np.max(k)):.3g}; "
                    "reduce C_W, C_b or the input scale"
                )
            if not np.all(np.isfinite(k)) or (self.ntk and not np.all(np.isfinite(dT[ell - 1]))):
                break  # reported by _check_diagonal, naming the layer
            if self.ntk:
                res = self.mod.offdiag_1d(k, k, k, dT[ell - 1], cb, cw, lb, lw)
            else:
                res = self.mod.offdiag_1d(k, k, k, cb, cw)
            dK[ell] = np.broadcast_to(res[0], (P,))
            if self.ntk:
                dT[ell] = np.broadcast_to(res[1], (P,))
        diags = [(dK, "K")] + ([(dT, "Θ")] if dT is not None else [])
        # the earliest non-finite layer first (later layers were not computed), then underflow
        first = [int(np.flatnonzero(~np.isfinite(d).all(axis=1))[0]) if not np.isfinite(d).all() else L
                 for d, _ in diags]
        d, what = diags[int(np.argmin(first))]
        _check_diagonal(d, what, self.x)
        for d, what in diags:
            _check_diagonal(d, what, self.x)
        return dK, dT

    def tile(self, rows: slice, cols: slice, keep_all: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """K (and Θ) on rows × cols for the last layer, or all layers if ``keep_all`` ((L, R, C))."""
        xa, xb = self.x[rows], self.x[cols]
        g = (xa @ xb.T) / self.n0
        R, C = g.shape
        same = tied = None
        if self._dup is not None:
            canon, rel = self._dup
            ca, cc = canon[rows], canon[cols]
            tied = ca[:, None] == cc[None, :]
            if tied.any():
                sgn = rel[rows][:, None] * rel[cols][None, :]
                g[tied] = (sgn * self.dG[ca][:, None])[tied]
                same = tied & (sgn > 0)
                if same.any():
                    same_rows = np.broadcast_to(ca[:, None], (R, C))[same]
                else:
                    same = None
        cb, cw, lb, lw = self.params[0]
        K = cb + cw * g
        T = lb + lw * g if self.ntk else None
        angles = None
        if self.angle and self.L > 1:
            from nnft.numeric.angles import AngleTracker

            angles = AngleTracker(self, rows, cols, tied)
            angles.start(K)
        allK = np.empty((self.L, R, C)) if keep_all else None
        allT = np.empty((self.L, R, C)) if keep_all and self.ntk else None
        if keep_all:
            allK[0] = K
            if self.ntk:
                allT[0] = T
        numba = self.backend == "numba"
        for ell in range(1, self.L):
            cb, cw, lb, lw = self.params[ell]
            da = self.dK[ell - 1, rows]
            db = self.dK[ell - 1, cols]
            if not numba:
                da = da[:, None]
                db = db[None, :]
            # numba writes into two alternating per-thread buffer sets (fresh pages cost more than the work)
            kw = {"out": _pingpong(R, C, 2 if self.ntk else 1)[ell % 2]} if numba else {}
            prev = angles.gather(K, T) if angles is not None else None
            if self.ntk:
                res = self.mod.offdiag(da, K, db, T, cb, cw, lb, lw, **kw)
                K = np.broadcast_to(res[0], (R, C))
                T = np.broadcast_to(res[1], (R, C))
            else:
                res = self.mod.offdiag(da, K, db, cb, cw, **kw)
                K = np.broadcast_to(res[0], (R, C))
            if angles is not None:
                K, T = angles.update(ell, prev, K, T, last=ell == self.L - 1)
            if same is not None:  # duplicates: exactly the diagonal, whatever the map's numerics
                K = np.array(K)
                K[same] = self.dK[ell, same_rows]
                if self.ntk:
                    T = np.array(T)
                    T[same] = self.dT[ell, same_rows]
            if keep_all:
                allK[ell] = K
                if self.ntk:
                    allT[ell] = T
        if keep_all:
            return allK, allT
        return np.array(K, copy=True), (np.array(T, copy=True) if self.ntk else None)

    def diag_fix(self, out: np.ndarray, which: str, layer: int | None) -> None:
        """Write the exact per-layer diagonals onto the diagonal of ``out`` ((P, P) or (L, P, P))."""
        d = self.dK if which == "K" else self.dT
        idx = np.arange(d.shape[1])
        if out.ndim == 3:
            for ell in range(self.L):
                out[ell, idx, idx] = d[ell]
        else:
            out[idx, idx] = d[-1 if layer is None else layer]


_LOCAL = threading.local()


def _pingpong(R: int, C: int, n: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Two sets of n (R, C) output buffers for this thread, reused across tiles and layers."""
    cache = getattr(_LOCAL, "bufs", None)
    if cache is None:
        cache = _LOCAL.bufs = {}
    key = (R, C, n)
    if key not in cache:
        if len(cache) > 8:
            cache.clear()
        cache[key] = tuple(tuple(np.empty((R, C)) for _ in range(n)) for _ in range(2))
    return cache[key]


def _check_finite(arr: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(arr)):
        raise DivergenceError(
            f"{what} is not finite: it overflows float64 (max 1.8e308) for these inputs and parameters, although "
            "the per-layer diagonals are finite; rescale the inputs (divide them by their largest norm) or reduce "
            "C_W or the depth"
        )


_TINY = float(np.finfo(np.float64).tiny)
_LOG2_TINY = math.log2(_TINY)
_LOG2_MAX = math.log2(float(np.finfo(np.float64).max))


def _log2_sq_norms(x: np.ndarray) -> np.ndarray:
    """log2(|x_a|²/n_0) per input row, without overflow or underflow of the squares (−inf for a zero row)."""
    m = np.max(np.abs(x), axis=1)
    m_safe = np.where(m > 0, m, 1.0)
    y = x / m_safe[:, None]
    with np.errstate(divide="ignore"):
        return np.where(m > 0, 2.0 * np.log2(m_safe) + np.log2(np.einsum("ij,ij->i", y, y) / x.shape[1]), -np.inf)


def _check_input_scale(x: np.ndarray, cb: float, cw: float) -> None:
    """Refuse inputs whose first-layer kernel C_b + C_W |x|²/n_0 underflows float64 (a silent zero kernel)."""
    lg = _log2_sq_norms(x)
    nz = np.isfinite(lg)
    if not nz.any() or float(lg[nz].min()) >= _LOG2_TINY:
        return
    i = int(np.flatnonzero(nz)[np.argmin(lg[nz])])
    lk = lg[i] + (math.log2(cw) if cw > 0 else -np.inf)  # log2 of C_W |x_i|²/n_0, computed exactly in the log
    if cb > 0 and lk <= math.log2(cb) - 60:  # the weight term is below the rounding of C_b: K = C_b is right
        return
    raise DivergenceError(
        f"input {i} is so small that the kernel underflows float64: |x|²/n_0 ≈ 1e{lg[i] * math.log10(2):.0f}, "
        f"below the smallest normal float64 {_TINY:.3g}, so K would silently be 0 (or lose its digits) although the "
        "input is not zero; rescale the inputs (e.g. x / max|x|) — the kernels of a bias-free network with a "
        "positively homogeneous σ (relu, linear) scale exactly with |x|²"
    )


def _check_diagonal(d: np.ndarray, what: str, x: np.ndarray) -> None:
    """Raise a DivergenceError naming the first layer where the diagonal d (L, P) overflows, and the likely cause."""
    bad = ~np.isfinite(d)
    if not bad.any():
        nonzero = np.any(x != 0, axis=1)
        with np.errstate(invalid="ignore"):
            under = (np.abs(d) < _TINY) & nonzero[None, :]
        if under.any():
            ell = int(np.flatnonzero(under.any(axis=1))[0]) + 1
            i = int(np.flatnonzero(under[ell - 1])[0])
            raise DivergenceError(
                f"{what}^({ell}) underflows float64 at layer {ell} for input {i}: its value {float(d[ell - 1, i]):.3g} "
                f"is below the smallest normal float64 {_TINY:.3g} although the input is not zero, so the kernel "
                "would silently be 0 or lose its digits (e.g. σ(z) ~ z² at a tiny variance gives K ~ K_prev²); "
                "rescale the inputs (divide them by their largest norm), or use C_b > 0"
            )
        return
    ell = int(np.flatnonzero(bad.any(axis=1))[0]) + 1
    i = int(np.flatnonzero(bad[ell - 1])[0])
    lg = float(_log2_sq_norms(x[i : i + 1])[0])
    norm = f"input {i} has |x|²/n_0 ≈ 1e{lg * math.log10(2):.0f}"
    if ell == 1:
        raise DivergenceError(
            f"{what}^(1) is not finite: it overflows float64 at layer 1: {norm}, beyond the float64 range "
            "(max 1.8e308) once multiplied by C_W; this is the input scale, not the depth: rescale the inputs "
            "(divide them by their largest norm; the kernels of a bias-free network with relu or linear σ "
            "scale exactly with |x|²)"
        )
    prev = float(np.max(d[ell - 2][np.isfinite(d[ell - 2])], initial=0.0))
    raise DivergenceError(
        f"{what}^({ell}) is not finite: it overflows float64 (max 1.8e308) at layer {ell}: {what}^({ell - 1}) reaches "
        f"{prev:.3g} ({norm}). If the inputs are large, rescale them (divide by their largest norm); if the "
        "kernel grows with depth for these parameters (e.g. a monomial activation or C_W·χ > 1), reduce C_W, "
        "C_b or the depth"
    )


@lru_cache(maxsize=8)
def _lower_mask(n: int) -> np.ndarray:
    return np.tri(n, n, -1, dtype=bool)


def _sym(a: np.ndarray) -> np.ndarray:
    """Make the last two axes of a square tile exactly symmetric from its upper triangle (in place)."""
    np.copyto(a, np.swapaxes(a, -1, -2), where=_lower_mask(a.shape[-1]))
    return a


def _tiles(P: int, tile: int) -> list[tuple[slice, slice]]:
    starts = range(0, P, tile)
    return [(slice(i, min(i + tile, P)), slice(j, min(j + tile, P))) for i in starts for j in starts if j >= i]


_EXECUTORS: dict[int, ThreadPoolExecutor] = {}


def _executor(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` worker threads (starting threads per call costs ~1 ms at small P)."""
    with _MAPS_LOCK:
        if n not in _EXECUTORS:
            _EXECUTORS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="nnft-tiles")
        return _EXECUTORS[n]


def _compute(plan: _Plan, keep_all: bool, tile: int | None = None, threads: int | None = None):
    P = plan.x.shape[0]
    if tile is None:
        tile = _default_tile(P)
    shape = (plan.L, P, P) if keep_all else (P, P)
    K = np.empty(shape)
    T = np.empty(shape) if plan.ntk else None

    def work(rc):
        rows, cols = rc
        k, t = plan.tile(rows, cols, keep_all)
        if rows == cols:  # a tile on the diagonal: make it exactly symmetric from its upper triangle
            k = _sym(k)
            t = _sym(t) if t is not None else None
        if keep_all:
            K[:, rows, cols] = k
            K[:, cols, rows] = np.swapaxes(k, 1, 2)
            if T is not None:
                T[:, rows, cols] = t
                T[:, cols, rows] = np.swapaxes(t, 1, 2)
        else:
            K[rows, cols] = k
            K[cols, rows] = k.T
            if T is not None:
                T[rows, cols] = t
                T[cols, rows] = t.T

    tiles = _tiles(P, tile)
    n = threads or n_cores()
    # quadrature maps can take minutes (inputs of unequal norm): a progress bar on a terminal
    bar = None
    if not plan.closed and len(tiles) > 4:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tiles), desc=f"nnft {plan.map.name} tiles", unit="tile", disable=None, leave=False)

    def run(rc):
        work(rc)
        if bar is not None:
            bar.update()

    with blas_threads(1):  # BLAS only forms small Gram tiles here; our threads share the cores
        if plan.backend == "numba" or n == 1 or len(tiles) == 1:
            for rc in tiles:
                run(rc)
        else:
            list(_executor(n).map(run, tiles))
    if bar is not None:
        bar.close()
    plan.diag_fix(K, "K", None)
    if T is not None:
        plan.diag_fix(T, "T", None)
    _check_finite(K, "K")
    if T is not None:
        _check_finite(T, "Θ")
    return K, T


def _default_tile(P: int) -> int:
    # a few tiles for small P (so both cores work, measured best at P = 256), 256 (cache-resident) for large P
    return int(min(DEFAULT_TILE, max(64, P // 2)))


def _request_bytes(P: int, n0: int, L: int, *, kept: int, arrays: int, tile: int, threads: int) -> int:
    """Bytes of one in-memory kernel request: the output arrays plus the working set, counted before allocating.

    ``kept`` layers of ``arrays`` (1 for K, 2 for K and Θ) P × P float64 outputs; the finiteness check's
    boolean temporary of one output; per thread a tile's Gram matrix, per-layer outputs (``kept`` × ``arrays``)
    and reused buffers; and the O(P (L + n_0)) diagonals and duplicate detection.
    """
    out = 8 * kept * arrays * P * P
    temp = kept * P * P  # np.isfinite(K) of one output array
    t = min(tile, P)
    per_thread = 8 * t * t * (kept * arrays + 4 * arrays + 2)
    small = 8 * P * (2 * L + 4 * n0 + 8)
    return out + temp + threads * per_thread + small


def _check_request(net: MLP, x: np.ndarray, *, kept: int, arrays: int, tile: int | None, what: str,
                   fix: str) -> None:
    """Refuse an in-memory kernel request that would not fit, before any P × P allocation."""
    P, n0 = x.shape
    need = _request_bytes(P, n0, net.depth, kept=kept, arrays=arrays, tile=tile or _default_tile(P),
                          threads=n_cores())
    check_memory(need, f"{what} at P = {P}", fix)


def _chunks_fix(P: int) -> str:
    c = min(4096, max(256, P // 8))
    return (f"compute it out of core with chunks= (e.g. chunks={c}: a lazy Dask array evaluated block by block; "
            "store it with dask.array.to_zarr or into a .npy memmap, or `nnft kernels --chunks ... --out K.zarr`)")


def layer_kernels(net: MLP, x, *, ntk: bool = True, layers: str = "all", backend: str = "numpy",
                  tile: int | None = None, chunks: int | None = None) -> Kernels:
    """K^{(ℓ)} (and Θ^{(ℓ)}) for every layer ℓ = 1..L (``layers="all"``, arrays (L, P, P)) or for the
    output layer only (``layers="last"``, arrays (1, P, P)) — both output kernels in one pass.

    With ``chunks`` (a block size) ``K`` and ``Theta`` are lazy Dask arrays of the same shapes, computed
    block by block (one tile computation yields the K and Θ blocks of every kept layer). Without it, a
    request whose arrays would not fit in the available memory raises :class:`nnft.errors.ResourceError`
    before anything is allocated.
    """
    if layers not in ("all", "last"):
        raise ValueError(f"layers must be 'all' or 'last', got {layers!r}")
    x = validate_inputs(x)
    keep_all = layers == "all"
    if chunks is not None:
        _check_chunks(chunks)
        plan = _Plan(net, x, ntk, backend)
        K, T = _dask_layers(plan, keep_all, int(chunks))
        idx = tuple(range(1, plan.L + 1)) if keep_all else (plan.L,)
        return Kernels(K=K, Theta=T, net=net, layers=idx)
    fix = _chunks_fix(x.shape[0])
    if keep_all and net.depth > 1:
        fix += '; or keep only the output layer with layers="last"'
    if ntk:
        fix += "; or skip the NTK with ntk=False"
    _check_request(net, x, kept=net.depth if keep_all else 1, arrays=2 if ntk else 1, tile=tile,
                   what=f"net.kernels(x, layers={layers!r}{'' if ntk else ', ntk=False'})", fix=fix)
    plan = _Plan(net, x, ntk, backend)
    K, T = _compute(plan, keep_all=keep_all, tile=tile)
    if not keep_all:
        K = K[None]
        T = T[None] if T is not None else None
    idx = tuple(range(1, plan.L + 1)) if keep_all else (plan.L,)
    return Kernels(K=K, Theta=T, net=net, layers=idx)


def output_kernel(net: MLP, x, *, which: str, chunks: int | None = None, backend: str = "numpy",
                  tile: int | None = None):
    """The output-layer NNGP (``which="nngp"``) or NTK (``"ntk"``) kernel; a Dask array if ``chunks``."""
    if which not in ("nngp", "ntk"):
        raise ValueError(f"which must be 'nngp' or 'ntk', got {which!r}")
    x = validate_inputs(x)
    if chunks is None:
        # the NTK pass computes K alongside Θ: both arrays are allocated
        _check_request(net, x, kept=1, arrays=2 if which == "ntk" else 1, tile=tile, what=f"net.{which}(x)",
                       fix=_chunks_fix(x.shape[0]))
    else:
        _check_chunks(chunks)
    plan = _Plan(net, x, ntk=(which == "ntk"), backend=backend)
    if chunks is not None:
        return _dask_kernel(plan, which, chunks)
    K, T = _compute(plan, keep_all=False, tile=tile)
    return K if which == "nngp" else T


def _dask_kernel(plan: _Plan, which: str, chunks: int):
    """A lazy (P, P) dask array: upper-triangle blocks are tiles, lower blocks their transposes.

    Only the blocks with j ≥ i are computed (each once, on any worker); a block below the diagonal is
    the transpose of its mirror, so a stored kernel costs half the work of computing every block.
    """
    try:
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph
    except ImportError as exc:  # pragma: no cover - dask is in the [dask] extra
        raise ImportError("chunks= needs dask: pip install 'nnft[dask]'") from exc
    _check_chunks(chunks)
    P = plan.x.shape[0]
    starts = list(range(0, P, int(chunks)))
    sizes = tuple(min(int(chunks), P - s) for s in starts)
    name = f"nnft-{which}-{uuid.uuid4().hex}"
    graph: dict = {}
    for i, r0 in enumerate(starts):
        for j, c0 in enumerate(starts):
            if j >= i:
                graph[(name, i, j)] = (_dask_block, plan, which, r0, r0 + sizes[i], c0, c0 + sizes[j])
            else:
                graph[(name, i, j)] = (np.transpose, (name, j, i))
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    return da.Array(hlg, name, chunks=(sizes, sizes), dtype=np.float64, meta=np.empty((0, 0)))


def _check_chunks(chunks) -> None:
    """A positive integer block size, else ValueError."""
    if isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks < 1:
        raise ValueError(f"chunks must be a positive integer block size, got {chunks!r}")


def _swap_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.swapaxes(a, -1, -2))


def _dask_layers(plan: _Plan, keep_all: bool, chunks: int):
    """Lazy (n_kept, P, P) dask arrays K and Θ (None without the NTK) sharing one task per upper-triangle block.

    Block (i, j ≥ i) runs :meth:`_Plan.tile` once for every kept layer and both kernels; block (i, j < i) of
    either array is the transpose of its mirror, as in :func:`_dask_kernel`.
    """
    try:
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph
    except ImportError as exc:  # pragma: no cover - dask is in the [dask] extra
        raise ImportError("chunks= needs dask: pip install 'nnft[dask]'") from exc
    P = plan.x.shape[0]
    starts = list(range(0, P, chunks))
    sizes = tuple(min(chunks, P - s) for s in starts)
    nl = plan.L if keep_all else 1
    token = uuid.uuid4().hex
    pair = f"nnft-kernels-blocks-{token}"
    pair_graph = {
        (pair, i, j): (_dask_layer_block, plan, keep_all, r0, r0 + sizes[i], c0, c0 + sizes[j])
        for i, r0 in enumerate(starts) for j, c0 in enumerate(starts) if j >= i
    }
    out = []
    for k, which in enumerate(("K", "Theta") if plan.ntk else ("K",)):
        name = f"nnft-kernels-{which}-{token}"
        graph: dict = {}
        for i in range(len(starts)):
            for j in range(len(starts)):
                if j >= i:
                    graph[(name, 0, i, j)] = (operator.getitem, (pair, i, j), k)
                else:
                    graph[(name, 0, i, j)] = (_swap_last, (name, 0, j, i))
        hlg = HighLevelGraph(layers={pair: pair_graph, name: graph}, dependencies={pair: set(), name: {pair}})
        out.append(da.Array(hlg, name, chunks=((nl,), sizes, sizes), dtype=np.float64, meta=np.empty((0, 0, 0))))
    return out[0], (out[1] if plan.ntk else None)


def _dask_layer_block(plan: _Plan, keep_all: bool, r0: int, r1: int, c0: int, c1: int):
    """One block (n_kept, R, C) of K and of Θ (None without the NTK), exact diagonals where it meets the diagonal."""
    rows, cols = slice(r0, r1), slice(c0, c1)
    k, t = plan.tile(rows, cols, keep_all=keep_all)
    res = []
    for arr, d in ((k, plan.dK), (t, plan.dT)):
        if arr is None:
            res.append(None)
            continue
        arr = arr if keep_all else arr[None]
        if r0 == c0 and r1 == c1:
            arr = _sym(arr)
        lo, hi = max(r0, c0), min(r1, c1)
        if lo < hi:
            idx = np.arange(lo, hi)
            dd = d if keep_all else d[-1:]
            arr[:, idx - r0, idx - c0] = dd[:, idx]
        res.append(arr)
    return res[0], res[1]


def _dask_block(plan: _Plan, which: str, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """One block of the output kernel, with the exact diagonal where it meets the diagonal."""
    rows, cols = slice(r0, r1), slice(c0, c1)
    k, t = plan.tile(rows, cols, keep_all=False)
    out = k if which == "nngp" else t
    if r0 == c0 and r1 == c1:
        out = _sym(out)
    lo, hi = max(r0, c0), min(r1, c1)
    if lo < hi:
        idx = np.arange(lo, hi)
        d = plan.dK[-1] if which == "nngp" else plan.dT[-1]
        out[idx - r0, idx - c0] = d[idx]
    return out


__all__ = ["Kernels", "layer_kernels", "output_kernel"]
