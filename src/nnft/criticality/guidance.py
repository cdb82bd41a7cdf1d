"""How deep a network of width n may be: the aspect ratio L/n and the finite-width correction ν L/n.

At criticality the normalised vertex of the output grows linearly with depth, ``V/(nK²) ≈ ν L/n``
(:mod:`.universality`): the depth-to-width ratio ``r = L/n`` is the expansion parameter of the 1/n
theory, and ``ν r`` measures how far the output distribution is from Gaussian (PDLT ch. 3 for deep
linear networks, ch. 5 and §5.4 for general activations). Keeping ``ν L/n ≤ ε`` gives the largest depth
``L_max = ε n/ν`` for width n, and the smallest width ``n_min = ν L/ε`` for depth L. The guidance below
also evaluates ``V/(nK²)`` of the actual network from the V recursion (:func:`nnft.finite_width.four_point`),
so it holds off criticality too, where V/(nK²) saturates (ordered) or grows as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnft.criticality.points import CriticalPoint, criticality
from nnft.errors import InputError


@dataclass(frozen=True)
class DepthToWidth:
    """Aspect-ratio guidance for one network: ``r = L/n``, ``V/(nK²)`` at the output, ν and the depth/width limits."""

    depth: int
    width: int
    aspect_ratio: float
    vertex_ratio: float
    critical_point: CriticalPoint | None
    nu: float | None
    tolerance: float
    max_depth: int | None
    min_width: int | None
    advice: str

    def _repr_html_(self) -> str:
        return f"<p>{self.advice}</p>"

    def __str__(self) -> str:
        return self.advice


def _matching(net, points) -> CriticalPoint | None:
    C_b, C_W = net.C_b[1:], net.C_W[1:]
    if len(set(C_b)) > 1 or len(set(C_W)) > 1:
        return None
    for cp in points:
        if abs(C_W[0] - cp.C_W) <= 1e-6 * cp.C_W and abs(C_b[0] - cp.C_b) <= 1e-6 * max(cp.C_b, 1e-3):
            return cp
    return None


def depth_to_width_guidance(net, x=None, *, tolerance: float = 0.1) -> DepthToWidth:
    """Guidance on depth and width for ``net``: ``V/(nK²)`` of its output for input ``x`` (default: unit norm).

    ``tolerance`` ε bounds the finite-width correction ``ν L/n`` (or ``V/(nK²)`` off criticality).
    """
    from nnft.finite_width import four_point

    if not (isinstance(tolerance, float | int) and 0 < tolerance < math.inf):
        raise InputError(f"tolerance must be a positive number, got {tolerance!r}")
    if net.depth < 2:
        raise InputError("a network of depth 1 is exactly Gaussian: there is no depth-to-width trade-off")
    x1 = np.ones((1, 1)) if x is None else np.asarray(x, dtype=np.float64)[:1]
    n = min(net.widths)
    V = float(four_point(net, x1)[0, 0, 0, 0])
    K = float(net.kernels(x1, ntk=False).K[-1, 0, 0])
    ratio = V / (n * K ** 2)
    r = net.depth / n
    cp = _matching(net, criticality(net.activation))
    nu = cp.nu if cp is not None else None
    if cp is not None and cp.universality_class == "half-stable" and net.depth < cp.coefficients["crossover_depth"]:
        nu = cp.coefficients["nu_preasymptotic"]  # the depth is below the crossover: the marginal (linear) law holds
    if nu:
        max_depth, min_width = int(tolerance * n / nu), math.ceil(nu * net.depth / tolerance)
        where = (f"at the critical point ({cp.universality_class} class) V/(nK²) ≈ ν L/n with ν = {nu:.4g}: "
                 f"ν L/n = {nu * r:.3g}")
    else:
        per_layer = ratio * n / net.depth
        max_depth = int(tolerance / per_layer * n) if per_layer > 0 else None
        min_width = math.ceil(ratio * n / tolerance) if ratio > 0 else None
        where = "off criticality (the depth scales of depth_scales() govern the growth)"
    regime = ("perturbative: the 1/n expansion is accurate" if ratio <= tolerance else
              "beyond the tolerance: finite-width effects are large" if ratio < 1 else
              "strongly coupled (V/(nK²) ≥ 1): the 1/n expansion is unreliable at this depth and width")
    advice = (f"depth L = {net.depth}, width n = {n}: aspect ratio L/n = {r:.3g}; the output's V/(nK²) = {ratio:.3g} "
              f"from the V recursion; {where}. {regime.capitalize()}."
              + (f" For ε = {tolerance:g}: keep L ≤ {max_depth} at this width" if max_depth is not None else "")
              + (f", or use n ≥ {min_width} at this depth." if min_width is not None else "."))
    return DepthToWidth(net.depth, n, r, ratio, cp, nu, float(tolerance), max_depth, min_width, advice)


__all__ = ["DepthToWidth", "depth_to_width_guidance"]
