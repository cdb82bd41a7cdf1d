"""The effective action of a layer: Feynman diagrams of its O(m) theory and couplings matched to cumulants.

:mod:`nnft.eft.diagrams` generates the diagrams; :mod:`nnft.eft.action` sums them into correlators;
:mod:`nnft.eft.matching` matches the couplings γ2, γ4 to the network's K, K1, V at order 1/n.
"""

from nnft.eft.action import Action, Correlator
from nnft.eft.diagrams import Diagram, diagrams
from nnft.eft.matching import Matching, match, matched_couplings

__all__ = ["Action", "Correlator", "Diagram", "Matching", "diagrams", "match", "matched_couplings"]
