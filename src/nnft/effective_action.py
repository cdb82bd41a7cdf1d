"""The effective action of a network's layer at order 1/n: the matched couplings γ2, γ4 (``net.eft(x, m=...)``).

``S[z] = ½ γ2^{α1α2} z_{α1}·z_{α2} − ⅛ γ4^{(α1α2)(α3α4)} (z_{α1}·z_{α2})(z_{α3}·z_{α4})`` (CONVENTIONS.md) with
the couplings matched to ``G = K + K1/n`` and V by :mod:`nnft.eft.matching` (derived from the diagram sums of
:mod:`nnft.eft.action`); ``m`` is the number of neurons of the layer described (default: its width).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from nnft.errors import InputError, NetworkError
from nnft.network import MLP, validate_inputs


@dataclass
class EFTCouplings:
    """γ2 (P, P) and γ4 (P, P, P, P) of one layer, or of every layer ℓ ≥ 1 (leading axis) with ``layers="all"``.

    ``gamma2_1``, ``gamma4_1`` are the 1/n coefficients (``γ2 = K^{-1} + gamma2_1/n``, ``γ4 = gamma4_1/n``);
    ``n`` the width n_{ℓ-1} feeding the layer (a list with ``layers="all"``), ``m`` the neurons described.
    """

    layer: int | str
    m: float
    n: int | list
    gamma2: np.ndarray
    gamma4: np.ndarray
    gamma2_1: np.ndarray
    gamma4_1: np.ndarray

    def __repr__(self) -> str:
        P = self.gamma2.shape[-1]
        return f"EFTCouplings(layer {self.layer}, order 1/n, m = {self.m:g}, n = {self.n}, P = {P}; gamma2, gamma4)"

    def _repr_html_(self) -> str:
        if self.gamma2.ndim != 2:
            return f"<b>{html.escape(repr(self))}</b>"
        P = self.gamma2.shape[0]
        rows = "".join(f"<tr><td>{a},{b}</td><td>{self.gamma2[a, b]:.6g}</td>"
                       f"<td>{self.gamma4[a, a, b, b]:.6g}</td></tr>"
                       for a in range(min(P, 6)) for b in range(a, min(P, 6)))
        return (f"<b>{html.escape(repr(self))}</b><table><tr><th>αβ</th><th>γ2<sup>αβ</sup></th>"
                f"<th>γ4<sup>(αα)(ββ)</sup></th></tr>{rows}</table>")


def eft(net: MLP, x, *, m: float | None = None, layers: str = "last") -> EFTCouplings:
    """The matched couplings of the output layer (``layers="all"``: every layer; layer 1 is Gaussian, γ4 = 0)."""
    from nnft.eft.matching import matched_couplings
    from nnft.finite_width import _layers_arg

    if not isinstance(net, MLP):
        raise NetworkError(f"eft needs an nnft.MLP, got {type(net).__name__}")
    layers = _layers_arg(layers)
    x = validate_inputs(x)
    K = np.asarray(net.kernels(x, ntk=False).K)
    L = net.depth
    if L >= 2:
        import warnings

        from nnft.finite_width import GaussianLayerWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GaussianLayerWarning)
            V = net.four_point(x, layers="all")
            K1 = net.nlo_metric(x, layers="all")
    else:
        P = x.shape[0]
        V, K1 = np.zeros((1, P, P, P, P)), np.zeros((1, P, P))
    widths = list(net.widths) + [net.n_out]
    ells = range(1, L + 1) if layers == "all" else [L]
    out = {k: [] for k in ("g2", "g4", "g2_1", "g4_1")}
    ns = []
    for ell in ells:
        cond = np.linalg.cond(K[ell - 1])
        if not np.isfinite(cond) or cond > 1e12:
            raise InputError(f"the metric K^({ell}) is singular or nearly so (condition number {cond:.3g}): the "
                             "action's propagator γ2 = K^{-1} does not exist; drop duplicate or parallel inputs (or "
                             "inputs that span fewer dimensions than there are inputs, with C_b = 0)")
        n_ = net.widths[ell - 2] if ell >= 2 else np.inf
        m_ = float(widths[ell - 1] if m is None else m)
        if m is not None and (not np.isfinite(m_) or m_ <= 0):
            raise InputError(f"m must be a positive number of neurons, got {m!r}")
        if ell == 1:
            Kinv = np.linalg.inv(K[0])
            P = Kinv.shape[0]
            vals = (Kinv, np.zeros((P,) * 4), np.zeros((P, P)), np.zeros((P,) * 4))
        else:
            vals = matched_couplings(K[ell - 1], K1[ell - 1], V[ell - 1], float(n_), m_)
        for key, v in zip(("g2", "g4", "g2_1", "g4_1"), vals, strict=True):
            out[key].append(v)
        ns.append(None if ell == 1 else int(n_))
    mm = float(widths[L - 1] if m is None else m)
    if layers == "all":
        return EFTCouplings("all", mm, ns, *(np.stack(out[k]) for k in ("g2", "g4", "g2_1", "g4_1")))
    return EFTCouplings(L, mm, ns[0], *(out[k][0] for k in ("g2", "g4", "g2_1", "g4_1")))


__all__ = ["EFTCouplings", "eft"]
