"""A recursion written by coincidence pattern of its sample indices, with LaTeX and Jupyter display.

The finite-width objects (V, K1, later the NTK statistics) have one layer-to-layer equation per
coincidence class of their sample indices (``(aa)(aa)``, ``(aa)(bb)``, ``(ab)(ab)``, … for V). A
:class:`PatternRecursion` holds, for every class, the right-hand side in two forms: ``structure``
(derivatives of the two-point map as named symbols, as one writes it by hand) and ``explicit`` (those
derivatives replaced by what sympy derives for the activation: closed forms or Gaussian averages).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from nnft.activations import Activation
from nnft.codegen.printers import latex as nnft_latex


@dataclass(frozen=True)
class PatternRecursion:
    """Layer-to-layer recursion of one finite-width object, one equation per coincidence pattern.

    ``patterns`` are the class names (``"(aa)(bc)"``; two-index objects: ``"aa"``, ``"ab"``);
    ``lhs[p]`` the LaTeX of the left-hand side, ``structure[p]`` and ``explicit[p]`` the right-hand side
    (sympy). ``single`` is the one-input equation (pattern of all indices equal) in ``explicit`` form.
    """

    name: str
    activation: Activation
    patterns: tuple[str, ...]
    lhs: dict[str, str]
    structure: dict[str, sp.Expr]
    explicit: dict[str, sp.Expr]
    where: str

    def __getitem__(self, pattern: str) -> sp.Expr:
        """The explicit right-hand side of ``pattern``."""
        if pattern not in self.explicit:
            raise KeyError(f"{self.name} has the patterns {list(self.patterns)}, not {pattern!r}")
        return self.explicit[pattern]

    @property
    def single(self) -> sp.Expr:
        """The one-input equation (all sample indices equal)."""
        return self.explicit[self.patterns[0]]

    def latex(self, explicit: bool = False) -> str:
        """All patterns as a LaTeX ``aligned`` block (``explicit=True``: derivatives written out)."""
        rows = []
        for p in self.patterns:
            rhs = (self.explicit if explicit else self.structure)[p]
            rows.append(rf"{self.lhs[p]} &= {nnft_latex(rhs)} \\")
        return "\\begin{aligned}\n" + "\n".join(rows) + "\n" + rf"&{self.where}" + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        return f"PatternRecursion({self.name}, σ = {self.activation.name}; patterns {list(self.patterns)})"


__all__ = ["PatternRecursion"]
