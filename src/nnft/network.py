"""The network description: a multilayer perceptron as a sequence of layer descriptions.

Conventions (CONVENTIONS.md, PDLT §2): ``z^{(1)} = b^{(1)} + W^{(1)} x``, ``z^{(ℓ+1)} = b^{(ℓ+1)} +
W^{(ℓ+1)} σ(z^{(ℓ)})`` with ``b ~ N(0, C_b)`` and ``W ~ N(0, C_W / n_{ℓ-1})``. ``depth`` L counts weight
layers, so there are L − 1 hidden layers of widths ``n_1 … n_{L-1}`` and an output layer of width
``n_out`` (= m). The NTK learning-rate tensor is ``λ_b``, ``λ_W / n_{ℓ-1}``; by default ``λ = C``,
which makes Θ the NTK of neural-tangents' ``stax.Dense`` in NTK parameterisation.

The description is pure data; kernels, Monte Carlo and symbolic maps are computed by the modules
they belong to and reached through the methods below.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence, Sized
from dataclasses import dataclass

import numpy as np

from nnft.activations import Activation, activation
from nnft.errors import NetworkError


@dataclass(frozen=True)
class Layer:
    """One weight layer ℓ: ``z^{(ℓ)} = b + W φ(z^{(ℓ-1)})`` with φ = identity on the inputs (ℓ = 1).

    ``n_in`` is ``n_{ℓ-1}`` (``None`` for the first layer, whose fan-in is the input dimension n_0),
    ``n_out`` is ``n_ℓ``; ``activation`` is the σ applied to this layer's inputs (``None`` for ℓ = 1).
    """

    index: int
    n_in: int | None
    n_out: int
    C_b: float
    C_W: float
    lambda_b: float
    lambda_W: float
    activation: Activation | None


def _real(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real | np.ndarray) or (isinstance(v, np.ndarray) and (
            v.ndim != 0 or not np.isrealobj(v))):
        raise NetworkError(f"{name} must be a real number (or a list with one per layer), got {v!r}")
    return float(v)


def _per_layer(name: str, value, depth: int, *, positive: bool = False) -> tuple[float, ...]:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, numbers.Real | np.integer | np.floating) and not isinstance(value, bool):
        vals = [_real(name, value)] * depth
    elif isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        vals = [_real(name, v) for v in value]
        if len(vals) != depth:
            raise NetworkError(f"{name} has {len(vals)} entries but the network has depth {depth}: give one per layer")
    else:
        raise NetworkError(f"{name} must be a number or a list of {depth} numbers, got {value!r}")
    for v in vals:
        if not math.isfinite(v):
            raise NetworkError(f"{name} must be finite, got {v}")
        if v < 0 or (positive and v == 0):
            raise NetworkError(f"{name} must be {'> 0' if positive else '>= 0'} (it is a variance), got {v}")
    return tuple(vals)


class MLP:
    """A fully connected network at initialisation (the prior of CONVENTIONS.md).

    ``MLP(activation="tanh", depth=L, width=n, C_b=0.0, C_W=1.0, n_out=1)``: ``width`` is an int or a
    list of the L − 1 hidden widths; ``C_b``, ``C_W``, ``lambda_b``, ``lambda_W`` are scalars or per-layer
    lists of length L (λ default to C).
    """

    def __init__(
        self,
        activation: str | Activation | object = "relu",
        depth: int = 2,
        width: int | Sequence[int] = 512,
        C_b: float | Sequence[float] = 0.0,
        C_W: float | Sequence[float] = 1.0,
        n_out: int = 1,
        lambda_b: float | Sequence[float] | None = None,
        lambda_W: float | Sequence[float] | None = None,
    ) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int | np.integer):
            raise NetworkError(f"depth must be an integer >= 1, got {depth!r}")
        if depth < 1:
            raise NetworkError(f"depth must be >= 1 (it counts weight layers), got {depth}")
        self.depth = int(depth)
        self.activation = _as_activation(activation)
        if isinstance(width, int | np.integer) and not isinstance(width, bool):
            widths = [int(width)] * (self.depth - 1)
        elif isinstance(width, Sequence | np.ndarray) and not isinstance(width, str):
            widths = [w for w in width]
            if len(widths) != self.depth - 1:
                raise NetworkError(
                    f"width lists the hidden widths n_1..n_(L-1): depth {self.depth} needs {self.depth - 1}, "
                    f"got {len(widths)}"
                )
        else:
            raise NetworkError(f"width must be an int or a list of ints, got {width!r}")
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1:
                raise NetworkError(f"every width must be an integer >= 1, got {w!r}")
        if isinstance(n_out, bool) or not isinstance(n_out, int | np.integer) or n_out < 1:
            raise NetworkError(f"n_out must be an integer >= 1, got {n_out!r}")
        self.widths = tuple(int(w) for w in widths)
        self.n_out = int(n_out)
        self.C_b = _per_layer("C_b", C_b, self.depth)
        self.C_W = _per_layer("C_W", C_W, self.depth)
        self.lambda_b = self.C_b if lambda_b is None else _per_layer("lambda_b", lambda_b, self.depth)
        self.lambda_W = self.C_W if lambda_W is None else _per_layer("lambda_W", lambda_W, self.depth)

    # ------------------------------------------------------------------ description
    @property
    def layers(self) -> tuple[Layer, ...]:
        """The L layer descriptions, ℓ = 1..L."""
        outs = (*self.widths, self.n_out)
        ins = (None, *self.widths)
        return tuple(
            Layer(
                index=i + 1,
                n_in=ins[i],
                n_out=outs[i],
                C_b=self.C_b[i],
                C_W=self.C_W[i],
                lambda_b=self.lambda_b[i],
                lambda_W=self.lambda_W[i],
                activation=None if i == 0 else self.activation,
            )
            for i in range(self.depth)
        )

    def __repr__(self) -> str:
        def short(v):
            return v[0] if len(set(v)) == 1 else list(v)

        w = short(self.widths) if self.widths else []
        return (
            f"MLP(activation={self.activation.name!r}, depth={self.depth}, width={w}, "
            f"C_b={short(self.C_b)}, C_W={short(self.C_W)}, n_out={self.n_out})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{ly.index}</td><td>{ly.n_in if ly.n_in else 'n₀'}</td><td>{ly.n_out}</td>"
            f"<td>{ly.C_b:g}</td><td>{ly.C_W:g}</td><td>{ly.lambda_b:g}</td><td>{ly.lambda_W:g}</td></tr>"
            for ly in self.layers
        )
        return (
            f"<b>MLP</b> σ = {self.activation.name}<table><tr><th>ℓ</th><th>n<sub>ℓ-1</sub></th>"
            f"<th>n<sub>ℓ</sub></th><th>C<sub>b</sub></th><th>C<sub>W</sub></th><th>λ<sub>b</sub></th>"
            f"<th>λ<sub>W</sub></th></tr>{rows}</table>"
        )

    # ------------------------------------------------------------------ kernels
    def kernels(self, x, *, ntk: bool = True, layers: str = "all", backend: str = "numpy",
                chunks: int | None = None):
        """K^{(ℓ)} (and Θ^{(ℓ)}) of every layer ℓ = 1..L for inputs ``x`` of shape (P, n_0).

        Returns a :class:`nnft.numeric.kernels.Kernels` with arrays ``K`` and ``Theta`` of shape (L, P, P);
        ``layers="last"`` keeps only the output layer ((1, P, P)): both output kernels in one pass, the
        fastest way to get ``.nngp`` and ``.ntk`` together. With ``chunks`` (a block size) the arrays are
        lazy Dask arrays computed block by block, as for :meth:`nngp`; without it a request that would not
        fit in memory raises :class:`nnft.errors.ResourceError` before allocating.
        """
        from nnft.numeric.kernels import layer_kernels

        return layer_kernels(self, x, ntk=ntk, layers=layers, backend=backend, chunks=chunks)

    def nngp(self, x, *, chunks: int | None = None, backend: str = "numpy"):
        """The output-layer NNGP kernel K^{(L)} (P × P); a dask array evaluated block by block if ``chunks``."""
        from nnft.numeric.kernels import output_kernel

        return output_kernel(self, x, which="nngp", chunks=chunks, backend=backend)

    def ntk(self, x, *, chunks: int | None = None, backend: str = "numpy"):
        """The output-layer NTK Θ^{(L)} (P × P); a dask array evaluated block by block if ``chunks``."""
        from nnft.numeric.kernels import output_kernel

        return output_kernel(self, x, which="ntk", chunks=chunks, backend=backend)

    # ------------------------------------------------------------------ finite width (order 1/n)
    def four_point(self, x, *, layers: str = "last", packed: bool = False, chunks: int | None = None):
        """The four-point vertex V (P, P, P, P) of the output layer (``layers="all"``: (L, P, P, P, P)).

        ``packed=True``: a :class:`nnft.finite_width.PackedVertex` (each distinct entry once); ``chunks``: a
        Dask array of V blocks. See :func:`nnft.finite_width.four_point`.
        """
        from nnft.finite_width import four_point

        return four_point(self, x, layers=layers, packed=packed, chunks=chunks)

    def nlo_metric(self, x, *, layers: str = "last"):
        """The NLO metric K1 (P, P) of the output layer, ``G = K + K1/n_{L-1}`` (``layers="all"``: (L, P, P))."""
        from nnft.finite_width import nlo_metric

        return nlo_metric(self, x, layers=layers)

    def ntk_statistics(self, x, *, layers: str = "last"):
        """The NTK at order 1/n: Θ1 (P, P) and A, B, D, F (P, P, P, P) of the output layer (``layers="all"``: all).

        ``E[Θ̂_{ii;ab}] = Θ + Θ1/n``; A, B the NTK fluctuations, D, F its correlation with the preactivations, in
        the layouts of :mod:`nnft.ntk_finite_width` (PDLT ch. 8, ``n = n_{L-1}``).
        """
        from nnft.ntk_finite_width import ntk_statistics

        return ntk_statistics(self, x, layers=layers)

    def eft(self, x, *, m: float | None = None, layers: str = "last"):
        """The effective action's couplings γ2 (P, P), γ4 (P, P, P, P) matched at order 1/n (``nnft.effective_action``).

        ``m``: the neurons of the layer described (default: its width); ``layers="all"``: the flow with depth.
        """
        from nnft.effective_action import eft

        return eft(self, x, m=m, layers=layers)

    def cumulants(self, x, order: int = 1, *, layer: int | None = None):
        """G and the connected four-point functions at order 1/n, laid out like ``nnft.montecarlo.estimate``."""
        from nnft.finite_width import cumulants

        return cumulants(self, x, order, layer=layer)

    # ------------------------------------------------------------------ criticality
    def _uniform_init(self, what: str) -> tuple[float, float]:
        C_b, C_W = set(self.C_b[1:] or self.C_b), set(self.C_W[1:] or self.C_W)
        if len(C_b) > 1 or len(C_W) > 1:
            raise NetworkError(f"{what} needs the same (C_b, C_W) in layers 2..L (a fixed point of one map); "
                               f"this network has C_b={self.C_b}, C_W={self.C_W}")
        return C_b.pop(), C_W.pop()

    def criticality(self, **kw):
        """The critical initialisations of this network's activation (:func:`nnft.criticality.criticality`)."""
        from nnft.criticality import criticality

        return criticality(self.activation, **kw)

    def depth_scales(self, x=None, **kw):
        """Phase and depth scales ``ξ_K``, ``ξ_c`` at this network's ``(C_b, C_W)`` (:mod:`nnft.criticality.depth`).

        ``x``: inputs whose first-layer kernel ``K^{(1)} = C_b + C_W x·x/n_0`` (of the first input) starts the flow;
        default ``x·x/n_0 = 1``.
        """
        from nnft.criticality import depth_scales

        C_b, C_W = self._uniform_init("depth_scales()")
        K0 = None
        if x is not None:
            xv = validate_inputs(x)
            K0 = self.C_b[0] + self.C_W[0] * float(xv[0] @ xv[0]) / xv.shape[1]
        return depth_scales(self.activation, C_b, C_W, K0=K0, **kw)

    def depth_to_width_guidance(self, x=None, *, tolerance: float = 0.1):
        """How deep this network may be at its width: ``V/(nK²)`` vs ``ν L/n`` (:mod:`nnft.criticality.guidance`)."""
        from nnft.criticality import depth_to_width_guidance

        return depth_to_width_guidance(self, x, tolerance=tolerance)

    # ------------------------------------------------------------------ symbolic
    def recursion(self, name: str = "nngp"):
        """A symbolic recursion with ``.latex()`` and Jupyter display.

        ``"nngp"``/``"ntk"`` give the one-layer map; ``"V"`` (four-point vertex), ``"K1"`` (NLO metric),
        ``"ntk_var"`` (A, B), ``"ntk_preact"`` (D, F) and ``"ntk_mean_correction"`` (Θ1) a
        :class:`nnft.recursions.pattern.PatternRecursion` with one equation per coincidence pattern of the
        sample indices (``.single`` is the one-input equation of the first object).
        """
        from nnft.recursions import one_layer_map

        if name in ("ntk_var", "ntk_preact", "ntk_mean_correction"):
            from nnft.recursions.ntk_fluctuation import ntk_recursion

            return ntk_recursion(self.activation, name)

        if name in ("V", "K1"):
            from nnft.recursions.finite_width_plan import _check
            from nnft.recursions.nlo import nlo_recursion
            from nnft.recursions.vertex import vertex_recursion

            _check(self.activation)
            return vertex_recursion(self.activation) if name == "V" else nlo_recursion(self.activation)
        return one_layer_map(name, self.activation)


def _as_activation(spec) -> Activation:
    try:
        return activation(spec)
    except ValueError as exc:
        raise NetworkError(str(exc)) from exc


def _is_number(v) -> bool:
    return isinstance(v, numbers.Number | np.number | np.bool_) and not isinstance(v, str)


def _diagnose_inputs(x) -> str:
    """Why ``x`` is not a numeric (P, n_0) array: ragged rows or the first None / non-numeric entry."""
    try:
        obj = np.array(x, dtype=object)
    except (TypeError, ValueError):
        obj = None
    if obj is None or (obj.ndim >= 1 and any(
            isinstance(v, Sequence | np.ndarray) and not isinstance(v, str) for v in obj.reshape(-1))):
        rows = list(x) if isinstance(x, Sequence | np.ndarray) else []
        lengths = [len(r) if isinstance(r, Sized) and not isinstance(r, str) else None for r in rows]
        if lengths and len(set(lengths)) > 1:
            first = lengths[0]
            i = next(k for k, n in enumerate(lengths) if n != first)
            def count(n):
                return "a scalar" if n is None else f"{n} entr{'y' if n == 1 else 'ies'}"

            return (f"inputs are ragged: row 0 has {count(first)} but row {i} has {count(lengths[i])}; every "
                    "input must have the same n_0 features (pad or drop rows first)")
        return "inputs are ragged (nested sequences of unequal lengths); give a rectangular (P, n_0) array"
    for idx, v in np.ndenumerate(obj):
        if not _is_number(v):
            where = "x[" + ", ".join(str(i) for i in idx) + "]"
            return (f"inputs must be a numeric array of shape (P, n_0): None / non-numeric entry {v!r} at {where}; "
                    "replace missing values first")
    return "inputs must be a numeric array of shape (P, n_0)"


def validate_inputs(x) -> np.ndarray:
    """Return ``x`` as a float64 (P, n_0) array, or raise a clear error for bad shapes or values.

    Ragged nested lists and None / non-numeric entries are named with their position (a None is not
    silently read as NaN); complex, NaN and inf inputs are refused.
    """
    numeric = isinstance(x, np.ndarray) and x.dtype.kind in "biufc"
    try:
        complex_ = np.iscomplexobj(x)
    except (TypeError, ValueError) as exc:
        raise NetworkError(_diagnose_inputs(x)) from exc
    if complex_:
        raise NetworkError("inputs must be real; got a complex array (take .real or the modulus first)")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetworkError(f"{_diagnose_inputs(x)} ({exc})") from exc
    if not numeric and arr.dtype == np.float64 and np.isnan(arr).any():
        # np.asarray reads None as NaN: report the entry that is really missing
        msg = _diagnose_inputs(x)
        if "non-numeric" in msg:
            raise NetworkError(msg)
    if arr.ndim != 2:
        hint = " (for a single input use x[None, :])" if arr.ndim == 1 else ""
        raise NetworkError(f"inputs must have shape (P, n_0), got shape {arr.shape}{hint}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise NetworkError(f"inputs must have at least one sample and one feature, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NetworkError(f"inputs contain NaN or inf (first at x[{bad[0]}, {bad[1]}]); clean the data first")
    return arr


__all__ = ["MLP", "Layer", "NetworkError", "validate_inputs"]
