"""The one-layer map: a symbolic object for K^{(ℓ)} → K^{(ℓ+1)} (and Θ) with LaTeX and generated code.

A :class:`OneLayerMap` holds the off-diagonal map (entries αβ, given K_αα, K_αβ, K_ββ) and the
diagonal map (entries αα, from the single-input average), each as a dict of named sympy
expressions, and the arguments they depend on. It compiles itself through :mod:`nnft.codegen.module`
into a module with functions ``offdiag(*offdiag_args)`` and ``diag(*diag_args)`` returning tuples in
the order of the dicts, and differentiates itself with respect to its input kernel (``jacobian``),
which the saddle-point and backward equations of the posterior theories need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

import sympy as sp

from nnft.activations import Activation
from nnft.codegen.module import FunctionSpec, compile_module
from nnft.codegen.printers import latex as nnft_latex
from nnft.functions import SafeAcos, SafeSqrt, corr
from nnft.gaussian import Kaa, Kab, Kbb, is_closed

#: Layer parameters as symbols (per layer; the numeric driver passes the values of layer ℓ + 1).
C_b, C_W = sp.symbols("C_b C_W", nonnegative=True)
lambda_b, lambda_W = sp.symbols("lambda_b lambda_W", nonnegative=True)
Theta_aa = sp.Symbol("Theta_aa", nonnegative=True)
Theta_ab = sp.Symbol("Theta_ab", real=True)
Theta_bb = sp.Symbol("Theta_bb", nonnegative=True)


@dataclass(frozen=True)
class Equation:
    """One displayed equation: ``lhs = definition = closed`` (LaTeX strings and the closed expression)."""

    lhs: str
    definition: str
    closed: sp.Expr


@dataclass(frozen=True)
class OneLayerMap:
    """Symbolic layer-to-layer map of kernels for one activation (CONVENTIONS.md recursions)."""

    name: str
    activation: Activation
    offdiag: dict[str, sp.Expr]
    offdiag_args: tuple[sp.Symbol, ...]
    diag: dict[str, sp.Expr]
    diag_args: tuple[sp.Symbol, ...]
    equations: tuple[Equation, ...] = field(default=())
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        """True when every output is a closed form (no quadrature)."""
        return all(is_closed(e) for e in (*self.offdiag.values(), *self.diag.values()))

    def latex(self) -> str:
        """The map as a LaTeX ``aligned`` block: definition, then closed form (or ⟨…⟩ for quadrature).

        The correlation ``ρ_αβ = K_αβ/√(K_αα K_ββ)`` and the angle ``θ_αβ = arccos ρ_αβ`` are named, so the
        arc-cosine kernels read as in the papers.
        """
        rho, theta = sp.Symbol("rho_ab"), sp.Symbol("theta_ab")
        c = corr(Kab, Kaa, Kbb)
        rows = []
        named = False
        for eq in self.equations:
            expr = eq.closed.xreplace({SafeAcos(c): theta, SafeAcos(-c): sp.pi - theta})
            expr = expr.xreplace({c: rho, SafeSqrt(1 - c**2): sp.sin(theta)})
            named |= expr.has(rho) or expr.has(theta)
            rows.append(rf"{eq.lhs} &= {eq.definition} \\")
            rows.append(rf" &= {nnft_latex(expr)} \\")
        body = "\n".join(rows).rstrip("\\ \n")
        where = (r"\text{with } K \equiv K^{(\ell)},\ \Theta \equiv \Theta^{(\ell)},\ "
                 r"C \equiv C^{(\ell+1)},\ \lambda \equiv \lambda^{(\ell+1)}")
        if named:
            where += (r",\ \rho_{\alpha\beta} = \frac{K_{\alpha\beta}}{\sqrt{K_{\alpha\alpha} K_{\beta\beta}}},\ "
                      r"\theta_{\alpha\beta} = \arccos \rho_{\alpha\beta}")
        return "\\begin{aligned}\n" + body + r" \\" + "\n" + rf"&{where}" + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        kind = "closed form" if self.closed else "quadrature"
        return f"OneLayerMap({self.name}, σ = {self.activation.name}, {kind}; outputs {list(self.offdiag)})"

    def jacobian(self) -> dict[tuple[str, str], sp.Expr]:
        """``∂ output / ∂ input`` for every off-diagonal output and argument (Price's theorem for ⟨…⟩)."""
        return {
            (out, arg.name): sp.diff(expr, arg)
            for out, expr in self.offdiag.items()
            for arg in self.offdiag_args
            if expr.has(arg)
        }

    def function_specs(self) -> list[FunctionSpec]:
        """The functions ``offdiag`` and ``diag`` for the code generator."""
        return [
            FunctionSpec("offdiag", dict(self.offdiag), self.offdiag_args, dict(self.kinds)),
            FunctionSpec("diag", dict(self.diag), self.diag_args, {a.name: "row" if a.name.endswith("aa") else "scalar"
                                                                 for a in self.diag_args}),
        ]

    def cache_key(self) -> str:
        return f"{self.name}|{self.activation.key()}"

    def compile(self, backend: str = "numpy") -> ModuleType:
        """The generated module (cached on disk): ``offdiag(...)`` and ``diag(...)``."""
        return compile_module(f"{self.name}_map", self.function_specs(), backend, key=self.cache_key())
