"""The NTK at order 1/n: its mean correction Θ1, its fluctuations (A, B) and its correlation with the
preactivations (D, F), reached as ``net.ntk_statistics(x)``.

Layouts (the interface; PDLT ch. 8 normalisation, ``n = n_{ℓ-1}``, i, j neurons of layer ℓ):

* ``Theta1`` (P, P): ``E[Θ̂_{ii;ab}] = Θ_ab + Theta1_ab / n``;
* ``A``, ``B`` (P, P, P, P): ``E[ΔΘ̂_{i1i2;a1a2} ΔΘ̂_{i3i4;a3a4}] = (1/n)[δ_{i1i2}δ_{i3i4} A_{a1a2a3a4}
  + δ_{i1i3}δ_{i2i4} B_{a1a3a2a4} + δ_{i1i4}δ_{i2i3} B_{a1a4a2a3}]``;
* ``D``, ``F`` (P, P, P, P): ``E[ΔΘ̂_{i1i2;a1a2} z_{i3;a3} z_{i4;a4}] = (1/n)[δ_{i1i2}δ_{i3i4} D_{a1a2a3a4}
  + δ_{i1i3}δ_{i2i4} F_{a1a3a2a4} + δ_{i1i4}δ_{i2i3} F_{a1a4a2a3}]``.

The recursions are derived in :mod:`nnft.recursions.ntk_fluctuation` and evaluated by
:mod:`nnft.numeric.ntk_finite_width`; :meth:`NTKStatistics.zscores` compares with a Monte Carlo run
(``nnft.montecarlo.estimate(..., statistics=("ntk",))``) in the estimators' layout.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from nnft.errors import InputError, NetworkError
from nnft.finite_width import _check_request, _dedupe, _expand2, _expand4, _layers_arg, _warn_depth_one
from nnft.network import MLP, validate_inputs


@dataclass
class NTKStatistics:
    """The order-1/n NTK statistics of one layer (or every layer: leading axis L with ``layers="all"``).

    Arrays: ``Theta``, ``Theta1`` (P, P); ``A``, ``B``, ``D``, ``F`` (P, P, P, P) in the layouts of the module
    docstring; also ``K``, ``K1``, ``V`` of the same layer. ``n`` is the width n_{ℓ-1} that normalises the 1/n
    terms. The ``ntk_*`` properties are the predictions at width n in the layout of the Monte Carlo estimators.
    """

    layer: int | str
    n: int | None
    Theta: np.ndarray
    Theta1: np.ndarray
    A: np.ndarray
    B: np.ndarray
    D: np.ndarray
    F: np.ndarray
    K: np.ndarray
    K1: np.ndarray
    V: np.ndarray

    def _n(self) -> int:
        if self.n is None or isinstance(self.layer, str):
            raise InputError("predictions at a width need one layer: use layers='last'")
        return self.n

    @property
    def ntk_mean(self) -> np.ndarray:
        """``E[Θ̂_{ii;ab}] = Θ + Θ1/n``."""
        return self.Theta + self.Theta1 / self._n()

    @property
    def ntk_cov_cross(self) -> np.ndarray:
        """``Cov(Θ̂_{ii;ab}, Θ̂_{jj;cd}) = A_abcd/n`` (i ≠ j)."""
        return self.A / self._n()

    @property
    def ntk_offdiag(self) -> np.ndarray:
        """``E[Θ̂_{ij;ab} Θ̂_{ij;cd}] = B_acbd/n`` (i ≠ j)."""
        return np.einsum("acbd->abcd", self.B) / self._n()

    @property
    def ntk_var(self) -> np.ndarray:
        """``Cov(Θ̂_{ii;ab}, Θ̂_{ii;cd}) = (A_abcd + B_acbd + B_adbc)/n``."""
        return (self.A + np.einsum("acbd->abcd", self.B) + np.einsum("adbc->abcd", self.B)) / self._n()

    @property
    def ntk_preact_cross(self) -> np.ndarray:
        """``E[ΔΘ̂_{ii;ab} z_{j;c} z_{j;d}] = D_abcd/n`` (i ≠ j)."""
        return self.D / self._n()

    @property
    def ntk_preact_offdiag(self) -> np.ndarray:
        """``E[Θ̂_{ij;ab} z_{i;c} z_{j;d}] = F_acbd/n`` (i ≠ j)."""
        return np.einsum("acbd->abcd", self.F) / self._n()

    @property
    def ntk_preact_same(self) -> np.ndarray:
        """``E[ΔΘ̂_{ii;ab} z_{i;c} z_{i;d}] = (D_abcd + F_acbd + F_adbc)/n``."""
        return (self.D + np.einsum("acbd->abcd", self.F) + np.einsum("adbc->abcd", self.F)) / self._n()

    PREDICTIONS = ("ntk_mean", "ntk_var", "ntk_cov_cross", "ntk_offdiag", "ntk_preact_same", "ntk_preact_cross",
                   "ntk_preact_offdiag")

    def zscores(self, mc) -> dict[str, np.ndarray]:
        """``(estimate − prediction)/stderr`` for every NTK statistic a Monte Carlo result holds (same x, layer)."""
        stats = mc.at(self.layer) if hasattr(mc, "at") else mc
        out = {}
        for name in self.PREDICTIONS:
            try:
                s = getattr(stats, name)
            except (AttributeError, KeyError):
                continue
            out[name] = s.zscore(getattr(self, name))
        return out

    def __repr__(self) -> str:
        P = self.Theta.shape[-1]
        return (f"NTKStatistics(layer {self.layer}, order 1/n, n = {self.n}, P = {P}; Theta, Theta1, A, B, D, F; "
                f"K, K1, V)")

    def _repr_html_(self) -> str:
        if isinstance(self.layer, str):
            return f"<b>{html.escape(repr(self))}</b>"
        P = self.Theta.shape[0]
        rows = "".join(
            f"<tr><td>{a},{b}</td><td>{self.Theta[a, b]:.6g}</td><td>{self.Theta1[a, b]:.6g}</td>"
            f"<td>{self.A[a, b, a, b]:.6g}</td><td>{self.B[a, a, b, b]:.6g}</td><td>{self.D[a, b, a, b]:.6g}</td>"
            f"<td>{self.F[a, a, b, b]:.6g}</td></tr>"
            for a in range(min(P, 6)) for b in range(a, min(P, 6))
        )
        return (f"<b>{html.escape(repr(self))}</b><table><tr><th>αβ</th><th>Θ</th><th>Θ<sup>{{1}}</sup></th>"
                f"<th>A<sub>(αβ)(αβ)</sub></th><th>B<sub>ααββ</sub></th><th>D<sub>(αβ)(αβ)</sub></th>"
                f"<th>F<sub>ααββ</sub></th></tr>{rows}</table>")


def ntk_statistics(net: MLP, x, *, layers: str = "last") -> NTKStatistics:
    """Θ1, A, B, D, F (and K, K1, V, Θ) of the output layer (``layers="all"``: every layer, leading axis L)."""
    if not isinstance(net, MLP):
        raise NetworkError(f"ntk_statistics needs an nnft.MLP, got {type(net).__name__}")
    layers = _layers_arg(layers)
    x = validate_inputs(x)
    from nnft.numeric.ntk_finite_width import ntk_finite_width_recursion
    from nnft.recursions.ntk_plan import ntk_finite_width_plan

    plan = ntk_finite_width_plan(net.activation)
    _warn_depth_one(net, "The NTK statistics")
    xu, inv = _dedupe(x)
    P = xu.shape[0]
    keep_all = layers == "all"
    _check_request(P, net.depth, keep_all=keep_all, packed=False)
    kern = net.kernels(xu, ntk=True)
    Ks, Thetas = np.asarray(kern.K), np.asarray(kern.Theta)
    out = ntk_finite_width_recursion(plan, Ks, Thetas, net.C_W, net.lambda_W, net.widths, keep_all=keep_all)
    fields = {k: (_expand4(v, inv) if v.ndim - keep_all == 4 else _expand2(v, inv)) for k, v in out.items()}
    Th, K = (Thetas, Ks) if keep_all else (Thetas[-1], Ks[-1])
    n = int(net.widths[-1]) if net.depth >= 2 else None
    return NTKStatistics(layer="all" if keep_all else net.depth, n=None if keep_all else n, Theta=_expand2(Th, inv),
                         K=_expand2(K, inv), **fields)


__all__ = ["NTKStatistics", "ntk_statistics"]
