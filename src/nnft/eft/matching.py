"""Match the couplings of the effective action to the network's cumulants order by order in 1/n.

Derived, not typed in: the action's connected two- and four-point functions are the diagram sums of
:mod:`.action`; with ``γ2 = K^{-1} + γ2^{(1)}/n`` and ``γ4 = γ4^{(1)}/n`` (γ4 starts at 1/n) they are set equal
to the network's ``G = K + K1/n`` and ``E[zzzz]_c = (1/n)[δδ V + …]`` (CONVENTIONS.md) and solved at order 1/n.

* one sample: sympy solves the two equations for γ2^{(1)}, γ4^{(1)} as polynomials in m (:func:`match`);
* several samples: the tree diagram of the four-point function is ``Σ G G G G γ4`` with weight 1 per neuron
  pattern, so ``γ4 = G^{-1}G^{-1}G^{-1}G^{-1} V / n`` (amputation); the first-order two-point diagrams, with that
  γ4 substituted (each propagator between two vertex slots becomes an inverse metric ``G^{-1}`` contracted with
  V), give ``T1``, and ``γ2 = G^{-1} + G^{-1} T1 G^{-1}`` expanded to 1/n (:func:`matched_couplings`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from nnft.eft.action import Action
from nnft.eft.diagrams import coupling, g0, m
from nnft.errors import InputError

K, K1, V, n = sp.symbols("K K1 V n", positive=True)
eps = sp.Symbol("epsilon", positive=True)  # 1/n
gamma2 = sp.Symbol(r"\gamma_2", positive=True)


@dataclass(frozen=True)
class Matching:
    """Matched couplings for one sample (sympy, in K, K1, V, n, m) and their LaTeX, and the index-form LaTeX."""

    order: int
    gamma2: sp.Expr
    gamma4: sp.Expr
    index_form: str

    def latex(self) -> str:
        return (r"\begin{aligned}" + rf"\gamma_2 &= {sp.latex(self.gamma2)} \\ \gamma_4 &= {sp.latex(self.gamma4)}"
                + r" \\ &\text{several samples: } " + self.index_form + r"\end{aligned}")

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"


def match(order: int = 1) -> Matching:
    """γ2 and γ4 at order 1/n from K, K1, V (one sample, with the m dependence), derived from the diagram sums."""
    if order != 1:
        raise InputError(f"order={order!r}: matching is derived at order 1/n (order=1) in this version; the 1/n² "
                         "couplings (γ6 and the next corrections) are not built yet")
    a, b = sp.symbols("a b")
    act = Action()
    two = act.correlator(2, 1).scalar()
    four = act.correlator(4, 1).by_pattern()[((0, 1), (2, 3))]
    subs = {g0: 1 / (1 / K + eps * a), coupling[2]: eps * b}
    eq2 = sp.series(two.xreplace(subs) - (K + eps * K1), eps, 0, 2).removeO().coeff(eps, 1)
    eq4 = sp.series(four.xreplace(subs) - eps * V, eps, 0, 2).removeO().coeff(eps, 1)
    sol = sp.solve([eq2, eq4], [a, b], dict=True)[0]
    g2 = 1 / K + sp.factor(sol[a]) / n
    g4 = sp.factor(sol[b]) / n
    idx = (r"\gamma_4^{(\alpha_1\alpha_2)(\alpha_3\alpha_4)} = \frac{1}{n} G^{\alpha_1\beta_1}G^{\alpha_2\beta_2}"
           r"G^{\alpha_3\beta_3}G^{\alpha_4\beta_4} V_{(\beta_1\beta_2)(\beta_3\beta_4)},\ "
           r"\gamma_2^{\alpha\beta} = G^{\alpha\beta} + \frac{1}{n} G^{\alpha\alpha'}G^{\beta\beta'}\Big[\frac{m}{2} "
           r"V_{(\alpha'\beta')(\gamma\delta)} + V_{(\alpha'\gamma)(\beta'\delta)}\Big] G^{\gamma\delta},\ "
           r"G^{-1} = K^{-1} - \frac{1}{n} K^{-1} K^{\{1\}} K^{-1}")
    return Matching(order, g2, g4, idx)


def _amputate(T: np.ndarray, Ginv: np.ndarray) -> np.ndarray:
    """Contract every index of T with G^{-1}."""
    return np.einsum("ai,bj,ck,dl,ijkl->abcd", Ginv, Ginv, Ginv, Ginv, T, optimize=True)


def two_point_first_order(Ginv: np.ndarray, V: np.ndarray, m_: float) -> np.ndarray:
    """``T1_{αβ}`` (times n) with γ4 = G^{-4}V substituted, from the first-order two-point diagrams.

    Each diagram ``Σ G G G γ4`` (two legs on external points, one propagator between vertex slots) becomes, after
    substituting γ4 and cancelling G against G^{-1}, V with the two external indices in the external slots' places
    and the inner pair contracted with G^{-1}; weights (m/2 for the index loop, 1 otherwise) from the diagrams.
    """
    out = np.zeros(Ginv.shape)
    for d in Action().correlator(2, 1).diagrams:
        if not d.vertices:
            continue
        spec, ops = d.einsum()
        # replace: external propagators G[x, s] → identity on s (x takes the slot's place), inner G[s, t] → G^{-1}
        ins, out_idx = spec.split("->")
        terms = ins.split(",")
        vert = terms[-1]
        mapping, inner = {}, []
        for t in terms[:-1]:
            a, b = t
            if a in out_idx:
                mapping[b] = a
            elif b in out_idx:
                mapping[a] = b
            else:
                inner.append(a + b)
        vterm = "".join(mapping.get(ch, ch) for ch in vert)
        w = float(d.weight.subs({m: m_, coupling[2]: 1}))
        out += w * np.einsum(",".join([vterm, *inner]) + "->" + out_idx, V, *([Ginv] * len(inner)), optimize=True)
    return out


def matched_couplings(K_: np.ndarray, K1_: np.ndarray, V_: np.ndarray, n_: float, m_: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(γ2, γ4, γ2^{(1)}, γ4^{(1)})`` at order 1/n for metrics K, K1 (P, P), vertex V (P,)*4, width n, m neurons.

    ``γ2 = K^{-1} + γ2^{(1)}/n``, ``γ4 = γ4^{(1)}/n`` with ``γ4^{(1)} = K^{-4}V`` and
    ``γ2^{(1)} = −K^{-1}K1K^{-1} + K^{-1} T1(K^{-1}, V) K^{-1}``.
    """
    Kinv = np.linalg.inv(K_)
    Kinv = 0.5 * (Kinv + Kinv.T)
    g4 = _amputate(V_, Kinv)
    T1 = two_point_first_order(Kinv, V_, m_)
    g2 = -Kinv @ K1_ @ Kinv + Kinv @ T1 @ Kinv
    g2 = 0.5 * (g2 + g2.T)
    return Kinv + g2 / n_, g4 / n_, g2, g4


__all__ = ["Matching", "match", "matched_couplings", "two_point_first_order"]
