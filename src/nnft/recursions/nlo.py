"""The NLO metric K1: its layer-to-layer recursion, derived by the 1/n mechanism of :mod:`.fluctuation`.

``K1^{(ℓ+1)}_{α1α2} = (n_ℓ/n_{ℓ-1}) [Σ_p ∂K'_{α1α2}/∂K_p K1^{(ℓ)}_p
+ ½ Σ_{p,q} ∂²K'_{α1α2}/∂K_p∂K_q V^{(ℓ)}_{pq}]``, ``K1^{(1)} = 0``

(PDLT eq. (4.115) in CONVENTIONS.md form, ``G^{(ℓ)} = K^{(ℓ)} + K1^{(ℓ)}/n_{ℓ-1}``): the mean of the next
metric ``E[K'(Ĝ^{(ℓ)})]`` expanded to second order in the fluctuation ``Ĝ^{(ℓ)} − K^{(ℓ)}`` (mean
``K1/n_{ℓ-1}``, covariance ``V/n_{ℓ-1}``). The ½ V term is the Edgeworth correction of the quartic
cumulant (for one input ``(κ₄/24)⟨σ''''⟩`` with ``κ₄ = 3V/n``, since ``∂/∂K = ½∂_z²``).
"""

from __future__ import annotations

from functools import lru_cache

from nnft.activations import Activation, activation
from nnft.codegen.printers import greek
from nnft.recursions.fluctuation import PAIR_SYMMETRIES, coincidence_classes, mean_shift, n_ratio, pair
from nnft.recursions.pattern import PatternRecursion

WHERE = (r"\text{with } K \equiv K^{(\ell)},\ K^{\{1\}} \equiv K^{\{1\}(\ell)},\ V \equiv V^{(\ell)},\ "
         r"C \equiv C^{(\ell+1)},\ K'_{ab} = C_b + C_W \langle \sigma_a \sigma_b \rangle_K,\ K^{\{1\}(1)} = 0")


@lru_cache(maxsize=64)
def nlo_recursion(act: Activation | str) -> PatternRecursion:
    """The symbolic recursion of K1 for activation ``act``, one equation per pattern (``aa``, ``ab``)."""
    act = activation(act)
    patterns, lhs, structure, explicit = [], {}, {}, {}
    for labels in coincidence_classes(2, PAIR_SYMMETRIES):
        p = pair(*labels)
        patterns.append(labels)
        lhs[labels] = rf"K^{{\{{1\}}(\ell+1)}}_{{{greek(labels)}}}"
        structure[labels] = n_ratio * mean_shift(None, p)
        explicit[labels] = n_ratio * mean_shift(act, p)
    return PatternRecursion("K1", act, tuple(patterns), lhs, structure, explicit, WHERE)


__all__ = ["nlo_recursion"]
