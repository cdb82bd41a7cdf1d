"""Evaluate sympy expressions that contain sums over eigenmodes, vectorised: each ``Sum`` becomes one numpy sum.

The actions of :mod:`nnft.proportional.action` are written with ``Sum(f(k), (k, 1, P))`` over the modes of
the training kernel. :func:`compile_mode_expressions` replaces every distinct ``Sum`` by a placeholder,
lambdifies its summand as a vectorised function of the per-mode arrays, and lambdifies the outer
expression in the placeholders and the scalar order parameters — so derivatives taken by sympy on the
action evaluate in O(P) per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

__all__ = ["compile_mode_expressions"]


def compile_mode_expressions(exprs: Sequence[sp.Expr], scalars: Sequence[sp.Symbol],
                             per_mode: dict[sp.Indexed, sp.Symbol]) -> Callable[..., np.ndarray]:
    """A function ``(scalar values…, modes: dict[symbol → array]) → array of the expressions' values``.

    ``per_mode`` maps each indexed quantity inside the sums (e.g. ``kappa[k]``) to a plain symbol; the
    returned function takes the arrays keyed by those plain symbols.
    """
    sums = sorted({s for e in exprs for s in e.atoms(sp.Sum)}, key=sp.default_sort_key)
    holders = sp.symbols(f"_sum0:{len(sums)}") if sums else ()
    outer = [e.xreplace(dict(zip(sums, holders, strict=True))) for e in exprs]
    mode_syms = tuple(per_mode.values())
    outer_fn = sp.lambdify((*scalars, *holders), outer, modules="numpy")
    summand_fns = []
    for s in sums:
        (idx, _, _), = s.limits
        body = s.function.xreplace(per_mode)
        if body.has(idx):
            raise ValueError(f"a summand depends on the mode index other than through the per-mode arrays: {s}")
        summand_fns.append(sp.lambdify((*scalars, *mode_syms), body, modules="numpy"))

    def evaluate(*values, modes: dict[sp.Symbol, np.ndarray]) -> np.ndarray:
        arrays = [modes[sym] for sym in mode_syms]
        P = len(arrays[0])
        totals = [float(np.sum(np.broadcast_to(fn(*values, *arrays), (P,)))) for fn in summand_fns]
        return np.asarray(outer_fn(*values, *totals), dtype=np.float64)

    return evaluate
