"""Bookkeeping of the six-point estimator: which per-network moment features it needs and their names.

The connected six-point function at one input is a signed sum of products of neuron moments
(:func:`nnft.cumulants.neuron_cumulant_terms`) for each pattern of :data:`SIX_POINT_PATTERNS`. Each
network contributes distinct-neuron moment features ``m2``, ``m22``, ``m222`` … (keys are sorted tuples
of exponents); the U-statistics over distinct networks need every product of such features that a set
partition of a term can produce (:func:`_six_monomials`), stored under :func:`_mono_name`.
"""

from __future__ import annotations

from functools import lru_cache

from nnft.cumulants import neuron_cumulant_terms

__all__ = ["SIX_POINT_PATTERNS"]


#: Neuron patterns of the six-point connected function at one input (``six_point.value[k]``).
SIX_POINT_PATTERNS = ("iiiiii", "iiiijj", "iijjkk")
_SIX_TERMS = {p: neuron_cumulant_terms(p) for p in SIX_POINT_PATTERNS}
_SIX_KEYS = sorted({key for terms in _SIX_TERMS.values() for prod in terms for key in prod})


def _mono_name(mono: tuple[tuple[int, ...], ...]) -> str:
    """The feature name of a product of moment features, e.g. ``m2*m22`` for ((2,), (2, 2))."""
    return "*".join("m" + "".join(map(str, k)) for k in mono)


@lru_cache(maxsize=1)
def _six_monomials() -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Every per-network product of moment features the six-point U-statistics need (sorted keys)."""
    from nnft.cumulants import set_partitions

    needed = set()
    for terms in _SIX_TERMS.values():
        for prod in terms:
            for part in set_partitions(len(prod)):
                for block in part:
                    needed.add(tuple(sorted(prod[j] for j in block)))
    return tuple(sorted(needed))
