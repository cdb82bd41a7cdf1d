"""Finite width at order 1/n: the four-point vertex V, the NLO metric K1 and the cumulants they predict.

The user-facing layer of the 1/n corrections (reached as ``net.four_point(x)``, ``net.nlo_metric(x)``,
``net.cumulants(x)``): it takes the infinite-width metrics ``K^{(ℓ)}`` from the kernel driver, hands the
compiled plan of :mod:`nnft.recursions.finite_width_plan` to the evaluator :mod:`nnft.numeric.finite_width`
and shapes the result. Conventions (CONVENTIONS.md): ``G^{(ℓ)} = K^{(ℓ)} + K1^{(ℓ)}/n_{ℓ-1}``,
``E[z_{i1;α1} … z_{i4;α4}]_c = (1/n_{ℓ-1}) [δ_{i1i2}δ_{i3i4} V_{(α1α2)(α3α4)} + two pairings]``, V^{(1)} = 0.
"""

from __future__ import annotations

import html
import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np

from nnft.errors import InputError, NetworkError
from nnft.network import MLP, validate_inputs
from nnft.numeric.memory import check_memory, fmt_bytes

LAYER_CHOICES = ("last", "all")


class GaussianLayerWarning(UserWarning):
    """A requested 1/n correction vanishes identically (the first layer is exactly Gaussian)."""


def _layers_arg(layers: str) -> str:
    if layers not in LAYER_CHOICES:
        raise InputError(f"layers must be 'last' or 'all', got {layers!r}")
    return layers


def _dedupe(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique input rows and the index of each original row among them (duplicates share every statistic)."""
    uniq, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep first-appearance order
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inverse.reshape(-1)]


def _check_request(P: int, L: int, *, keep_all: bool, packed: bool) -> None:
    p4 = 8 * P**4
    stored = (L if keep_all else 1) * (p4 // 8 if packed else p4)
    need = stored + 7 * p4  # the layer's V, the stencil temporaries and the moments
    check_memory(
        need, f"the four-point vertex of P = {P} inputs ({'all' if keep_all else 'the output'} layer(s))",
        f"pass packed=True (stores each distinct entry once, {fmt_bytes(stored // 8 if not packed else stored)}), "
        "chunks=<block size> for a Dask array of V blocks computed block by block, or fewer inputs",
    )


@dataclass
class PackedVertex:
    """V stored once per distinct entry: ``(a ≤ b), (c ≤ d), (ab) ≤ (cd)`` — 1/8 of the (P, P, P, P) array.

    ``values`` has shape (..., N) with ``N = M(M+1)/2``, ``M = P(P+1)/2`` (leading axis: layers when
    packed with ``layers="all"``). ``expand()`` gives the full array, ``v[a, b, c, d]`` one entry.
    """

    P: int
    values: np.ndarray
    pairs: np.ndarray = field(repr=False)  # (M, 2) index pairs a ≤ b
    slots: np.ndarray = field(repr=False)  # (N, 2) pair indices p ≤ q

    @classmethod
    def pack(cls, V: np.ndarray) -> PackedVertex:
        P = V.shape[-1]
        pairs = np.array([(a, b) for a in range(P) for b in range(a, P)], dtype=np.int64)
        M = pairs.shape[0]
        iu = np.triu_indices(M)
        slots = np.stack(iu, axis=1)
        p, q = pairs[slots[:, 0]], pairs[slots[:, 1]]
        vals = V[..., p[:, 0], p[:, 1], q[:, 0], q[:, 1]]
        return cls(P=P, values=np.ascontiguousarray(vals), pairs=pairs, slots=slots)

    def _pair_index(self, a, b):
        a, b = np.minimum(a, b), np.maximum(a, b)
        return a * self.P - a * (a - 1) // 2 + (b - a)

    def __getitem__(self, key):
        if not (isinstance(key, tuple) and len(key) == 4):
            raise InputError("index a packed V with four sample indices: v[a, b, c, d]")
        a, b, c, d = (np.asarray(k) for k in key)
        for k in (a, b, c, d):
            if np.any((k < 0) | (k >= self.P)):
                raise InputError(f"sample indices run over 0..{self.P - 1}")
        p, q = self._pair_index(a, b), self._pair_index(c, d)
        p, q = np.minimum(p, q), np.maximum(p, q)
        M = self.pairs.shape[0]
        slot = p * M - p * (p - 1) // 2 + (q - p)
        return self.values[..., slot]

    def expand(self) -> np.ndarray:
        """The full symmetric array (..., P, P, P, P)."""
        P = self.P
        out = np.empty(self.values.shape[:-1] + (P, P, P, P))
        p, q = self.pairs[self.slots[:, 0]], self.pairs[self.slots[:, 1]]
        for (i, j), (k, m), swap in itertools.product(((0, 1), (1, 0)), ((0, 1), (1, 0)), (False, True)):
            u, w = (q, p) if swap else (p, q)
            out[..., u[:, i], u[:, j], w[:, k], w[:, m]] = self.values
        return out

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


def _prepare(net: MLP, x, what: str):
    if not isinstance(net, MLP):
        raise NetworkError(f"{what} needs an nnft.MLP, got {type(net).__name__}")
    x = validate_inputs(x)
    from nnft.recursions.finite_width_plan import finite_width_plan

    plan = finite_width_plan(net.activation)
    return x, plan


def _run(net: MLP, x: np.ndarray, *, keep_all: bool, packed: bool = False):
    from nnft.numeric.finite_width import finite_width_recursion
    from nnft.recursions.finite_width_plan import finite_width_plan

    plan = finite_width_plan(net.activation)
    xu, inv = _dedupe(x)
    P = xu.shape[0]
    _check_request(P, net.depth, keep_all=keep_all, packed=packed)
    if P == 1:  # one input: the metric by a scalar loop over the generated ⟨σ²⟩ (no kernel driver)
        from nnft.numeric.finite_width import single_input_metrics

        k1 = net.C_b[0] + net.C_W[0] * float(xu[0] @ xu[0]) / xu.shape[1]
        Ks = single_input_metrics(plan, k1, net.C_b, net.C_W).reshape(-1, 1, 1)
    else:
        Ks = np.asarray(net.kernels(xu, ntk=False).K)
    V_all, K1_all, V, K1 = finite_width_recursion(plan, Ks, net.C_W, net.widths, keep_all=keep_all)
    return inv, Ks, V_all, K1_all, V, K1


def _expand4(V: np.ndarray, inv: np.ndarray) -> np.ndarray:
    if inv.size == V.shape[-1] and np.array_equal(inv, np.arange(inv.size)):
        return V
    i = inv
    return V[..., i[:, None, None, None], i[None, :, None, None], i[None, None, :, None], i[None, None, None, :]]


def _expand2(K: np.ndarray, inv: np.ndarray) -> np.ndarray:
    if inv.size == K.shape[-1] and np.array_equal(inv, np.arange(inv.size)):
        return K
    return K[..., inv[:, None], inv[None, :]]


def _warn_depth_one(net: MLP, what: str) -> None:
    if net.depth == 1:
        warnings.warn(f"{what} of a depth-1 network is exactly 0: its only layer is a Gaussian field of the inputs "
                      "(V^(1) = K1^(1) = 0); the 1/n corrections start at layer 2", GaussianLayerWarning, stacklevel=3)


def four_point(net: MLP, x, *, layers: str = "last", packed: bool = False, chunks: int | None = None):
    """The four-point vertex ``V^{(ℓ)}_{(α1α2)(α3α4)}`` of the inputs ``x`` (P, n_0).

    ``layers="last"``: the output layer, (P, P, P, P); ``"all"``: every layer, (L, P, P, P, P) (index ℓ − 1,
    layer 1 is 0). ``packed=True`` returns a :class:`PackedVertex` (each distinct entry once, 1/8 of the
    memory); ``chunks=c`` a Dask array of (c, c, c, c) blocks of the output layer's V, each computed from the
    inputs it involves only. A request whose arrays would not fit in memory raises
    :class:`nnft.errors.ResourceError` before allocating.
    """
    layers = _layers_arg(layers)
    x, _ = _prepare(net, x, "four_point")
    _warn_depth_one(net, "V")
    if chunks is not None:
        if layers != "last" or packed:
            raise InputError("chunks= gives the output layer's V as a Dask array: "
                             "use it with layers='last', packed=False")
        return _dask_vertex(net, x, chunks)
    inv, _, V_all, _, V, _ = _run(net, x, keep_all=layers == "all", packed=packed)
    out = _expand4(V_all if layers == "all" else V, inv)
    return PackedVertex.pack(out) if packed else out


def nlo_metric(net: MLP, x, *, layers: str = "last") -> np.ndarray:
    """The NLO metric ``K1^{(ℓ)}_{αβ}`` (``G = K + K1/n_{ℓ-1}``): (P, P), or (L, P, P) with ``layers="all"``."""
    layers = _layers_arg(layers)
    x, _ = _prepare(net, x, "nlo_metric")
    _warn_depth_one(net, "K1")
    inv, _, _, K1_all, _, K1 = _run(net, x, keep_all=layers == "all")
    return _expand2(K1_all if layers == "all" else K1, inv)


@dataclass
class Cumulants:
    """The predicted statistics of layer ℓ at order 1/n, laid out like :func:`nnft.montecarlo.estimate`'s.

    ``G = K + K1/n`` (P, P); ``four_point_same[a1..a4] = (V_{(12)(34)} + V_{(13)(24)} + V_{(14)(23)})/n`` and
    ``four_point_cross[a1..a4] = V_{(12)(34)}/n`` (P, P, P, P), with ``n = n_{ℓ-1}``; ``K``, ``K1``, ``V`` the
    coefficients. The NTK entries ``ntk_mean``, ``ntk_var``, ``ntk_cov_cross``, ``ntk_offdiag`` and
    ``ntk_preact_same/cross/offdiag`` (and ``.ntk``, the :class:`nnft.ntk_finite_width.NTKStatistics` with Θ1, A, B,
    D, F) are computed on first use. ``zscores(mc)`` compares with a :class:`nnft.montecarlo.MonteCarloResult`
    (same x, layer), the NTK entries too when the run estimated them (``statistics=("ntk", ...)``).
    """

    layer: int
    n: int
    K: np.ndarray
    K1: np.ndarray
    V: np.ndarray
    order: int = 1
    source: tuple | None = field(default=None, repr=False)  # (network truncated at this layer, inputs)
    _ntk: object = field(default=None, repr=False)

    @property
    def ntk(self):
        """The order-1/n NTK statistics of this layer (:func:`nnft.ntk_finite_width.ntk_statistics`, cached)."""
        if self._ntk is None:
            if self.source is None:
                raise InputError("these cumulants carry no network; use net.ntk_statistics(x)")
            from nnft.ntk_finite_width import ntk_statistics

            net, x = self.source
            self._ntk = ntk_statistics(net, x)
        return self._ntk

    def __getattr__(self, name: str):
        if name.startswith("ntk_"):
            return getattr(self.ntk, name)
        raise AttributeError(name)

    @property
    def G(self) -> np.ndarray:
        return self.K + self.K1 / self.n

    @property
    def four_point_cross(self) -> np.ndarray:
        return self.V / self.n

    @property
    def four_point_same(self) -> np.ndarray:
        V = self.V
        return (V + np.transpose(V, (0, 2, 1, 3)) + np.transpose(V, (0, 3, 2, 1))) / self.n

    def zscores(self, mc) -> dict[str, np.ndarray]:
        """``(estimate − prediction)/stderr`` for G, four_point_same and four_point_cross of a Monte Carlo result."""
        stats = mc.at(self.layer) if hasattr(mc, "at") else mc
        out = {}
        for name in ("G", "four_point_same", "four_point_cross"):
            try:
                s = getattr(stats, name)
            except (AttributeError, KeyError):
                continue
            out[name] = s.zscore(getattr(self, name))
        if self.layer >= 2 and "ntk_mean" in getattr(stats, "keys", lambda: ())():
            out.update(self.ntk.zscores(stats))
        return out

    def __repr__(self) -> str:
        P = self.K.shape[0]
        return (f"Cumulants(layer {self.layer}, order 1/n, n = {self.n}, P = {P}; G, four_point_same, "
                f"four_point_cross, K, K1, V)")

    def _repr_html_(self) -> str:
        P = self.K.shape[0]
        rows = "".join(
            f"<tr><td>{a},{b}</td><td>{self.K[a, b]:.6g}</td><td>{self.K1[a, b]:.6g}</td>"
            f"<td>{self.G[a, b]:.6g}</td><td>{self.V[a, a, b, b]:.6g}</td></tr>"
            for a in range(min(P, 6)) for b in range(a, min(P, 6))
        )
        return (f"<b>{html.escape(repr(self))}</b><table><tr><th>αβ</th><th>K</th><th>K1</th>"
                f"<th>G = K + K1/n</th><th>V<sub>(αα)(ββ)</sub></th></tr>{rows}</table>")


def cumulants(net: MLP, x, order: int = 1, *, layer: int | None = None) -> Cumulants:
    """The order-1/n prediction of G and of the connected four-point functions at ``layer`` (default: L)."""
    if order != 1:
        raise InputError(f"order={order!r}: nnft predicts the cumulants at order 1/n (order=1) so far")
    x, _ = _prepare(net, x, "cumulants")
    ell = net.depth if layer is None else int(layer)
    if not 1 <= ell <= net.depth:
        raise InputError(f"layer must be in 1..{net.depth}, got {layer}")
    n = net.widths[ell - 2] if ell >= 2 else None
    if n is not None and n < 2:
        raise NetworkError(
            f"layer {ell} is fed by a hidden layer of width n = {n}: an expansion in 1/n at n = 1 is no expansion; "
            "use Monte Carlo (nnft.montecarlo.estimate) for such narrow networks"
        )
    if ell == 1:
        P = x.shape[0]
        K = np.asarray(net.kernels(x, ntk=False).K)[0]
        return Cumulants(layer=1, n=1, K=K, K1=np.zeros((P, P)), V=np.zeros((P, P, P, P)))
    sub = net if ell == net.depth else _truncate(net, ell)
    inv, Ks, _, _, V, K1 = _run(sub, x, keep_all=False)
    return Cumulants(layer=ell, n=int(n), K=_expand2(Ks[-1], inv), K1=_expand2(K1, inv), V=_expand4(V, inv),
                     source=(sub, x))


def _truncate(net: MLP, ell: int) -> MLP:
    """The first ``ell`` layers of ``net`` as a network of depth ell (its output layer is ℓ)."""
    return MLP(net.activation, depth=ell, width=list(net.widths[: ell - 1]), C_b=list(net.C_b[:ell]),
               C_W=list(net.C_W[:ell]), lambda_b=list(net.lambda_b[:ell]), lambda_W=list(net.lambda_W[:ell]),
               n_out=(net.widths[ell - 1] if ell - 1 < len(net.widths) else net.n_out))


def _dask_vertex(net: MLP, x: np.ndarray, chunks: int):
    """V of the output layer as a Dask array: block (A, B, C, D) from the inputs A ∪ B ∪ C ∪ D alone.

    V^{(ℓ+1)} at (a, b, c, d) involves only V^{(ℓ)} at indices in {a, b} × {a, b} × {c, d} × {c, d} and the
    metric among a, b, c, d, so a block is the full computation restricted to the inputs it touches.
    """
    import dask
    import dask.array as da

    if isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks < 1:
        raise InputError(f"chunks must be a positive integer block size, got {chunks!r}")
    P = x.shape[0]
    edges = list(range(0, P, int(chunks))) + [P]
    spans = list(zip(edges[:-1], edges[1:], strict=False))
    check_memory(8 * (4 * chunks) ** 4 * 8, f"one V block of chunks={chunks}", "use a smaller chunks=")

    def block(s0, s1, s2, s3):
        idx = [np.arange(*s) for s in (s0, s1, s2, s3)]
        union = np.unique(np.concatenate(idx))
        inv, _, _, _, V, _ = _run(net, x[union], keep_all=False)
        Vu = _expand4(V, inv)
        pos = [np.searchsorted(union, i) for i in idx]
        return Vu[np.ix_(*pos)]

    blocks = [[[[da.from_delayed(dask.delayed(block)(a, b, c, d), shape=(a[1] - a[0], b[1] - b[0], c[1] - c[0],
                                                                     d[1] - d[0]), dtype=np.float64)
                 for d in spans] for c in spans] for b in spans] for a in spans]
    return da.block(blocks)


__all__ = ["Cumulants", "GaussianLayerWarning", "PackedVertex", "cumulants", "four_point", "nlo_metric"]
