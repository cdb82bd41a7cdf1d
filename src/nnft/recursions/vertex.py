"""The four-point vertex V: its layer-to-layer recursion, derived by the 1/n mechanism of :mod:`.fluctuation`.

``V^{(ℓ+1)}_{(α1α2)(α3α4)} = C_W² (⟨σ_{α1}σ_{α2}σ_{α3}σ_{α4}⟩_K − ⟨σ_{α1}σ_{α2}⟩_K ⟨σ_{α3}σ_{α4}⟩_K)
+ (n_ℓ/n_{ℓ-1}) Σ_{p ∋ α1α2, q ∋ α3α4} ∂K'_{α1α2}/∂K_p ∂K'_{α3α4}/∂K_q V^{(ℓ)}_{pq}``, ``V^{(1)} = 0``

(PDLT eq. (4.90) in CONVENTIONS.md form, with ``p`` running over the metric entries ``(α1α1), (α1α2),
(α2α2)`` that the two-point map ``K'_{α1α2} = C_b + C_W⟨σ_{α1}σ_{α2}⟩`` depends on). The first term is the
covariance of ``Ĝ^{(ℓ+1)}`` from its ``n_ℓ`` conditionally independent neurons, the second the
propagated covariance of ``Ĝ^{(ℓ)}`` (law of total covariance). For one input it reads
``V' = C_W²(⟨σ⁴⟩ − ⟨σ²⟩²) + (n_ℓ/n_{ℓ-1}) χ_∥² V`` with ``χ_∥ = C_W d⟨σ²⟩/dK`` (FACTS.md: χ_∥, not χ_⊥).
"""

from __future__ import annotations

from functools import lru_cache

from nnft.activations import Activation, activation
from nnft.recursions.fluctuation import (
    V_SYMMETRIES,
    coincidence_classes,
    fresh_four_point,
    induced_covariance,
    n_ratio,
    pair,
    pattern_name,
)
from nnft.recursions.pattern import PatternRecursion

WHERE = (r"\text{with } K \equiv K^{(\ell)},\ V \equiv V^{(\ell)},\ C \equiv C^{(\ell+1)},\ "
         r"K'_{ab} = C_b + C_W \langle \sigma_a \sigma_b \rangle_K,\ V^{(1)} = 0")


@lru_cache(maxsize=64)
def vertex_recursion(act: Activation | str) -> PatternRecursion:
    """The symbolic recursion of V for activation ``act``, one equation per coincidence pattern (7 classes)."""
    act = activation(act)
    patterns, lhs, structure, explicit = [], {}, {}, {}
    for labels in coincidence_classes(4, V_SYMMETRIES):
        name = pattern_name(labels)
        p, q = pair(*labels[:2]), pair(*labels[2:])
        fresh = fresh_four_point(act, tuple(labels))
        patterns.append(name)
        lhs[name] = rf"V^{{(\ell+1)}}_{{{pattern_name(labels, latex=True)}}}"
        structure[name] = fresh + n_ratio * induced_covariance(None, p, q)
        explicit[name] = fresh + n_ratio * induced_covariance(act, p, q)
    return PatternRecursion("V", act, tuple(patterns), lhs, structure, explicit, WHERE)


__all__ = ["vertex_recursion"]
