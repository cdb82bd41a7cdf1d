"""Layer-to-layer recursions, one module per object: nngp (K), ntk (K, Θ); later vertex (V), nlo (K1)."""

from __future__ import annotations

from nnft.activations import Activation, activation
from nnft.recursions.base import OneLayerMap
from nnft.recursions.nngp import nngp_map
from nnft.recursions.ntk import NTKUndefinedError, ntk_map

MAPS = {"nngp": nngp_map, "ntk": ntk_map}


def one_layer_map(name: str, act: Activation | str) -> OneLayerMap:
    """The symbolic one-layer map ``name`` ("nngp" or "ntk") for an activation."""
    key = name.lower()
    if key not in MAPS:
        raise ValueError(f"unknown recursion {name!r}; available: {sorted(MAPS)}")
    return MAPS[key](activation(act))


__all__ = ["MAPS", "NTKUndefinedError", "OneLayerMap", "nngp_map", "ntk_map", "one_layer_map"]
