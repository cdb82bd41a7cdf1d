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
from nnft.functions import GeoMean, SafeAcos, SafeSqrt, corr
from nnft.gaussian import AngleFromGap, Kaa, Kab, Kbb, decorrelation, expect_single, is_closed

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
    #: The same off-diagonal map with the angle θ_ab as an extra input and output (``offdiag_angle``), for the
    #: kinked arc-cosine family, whose degree-0 terms need θ to eps where arccos(K_ab/√(K_aa K_bb)) gives √eps
    #: (nearly parallel inputs); empty when the map has no such term. Its outputs: those of ``offdiag`` and
    #: ``theta_ab`` of the next layer (:func:`angle_update`).
    angle: dict[str, sp.Expr] = field(default_factory=dict)
    angle_args: tuple[sp.Symbol, ...] = ()

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
        """The functions ``offdiag``, ``diag`` (and ``offdiag_angle`` if the map carries θ) for the code generator."""
        specs = [
            FunctionSpec("offdiag", dict(self.offdiag), self.offdiag_args, dict(self.kinds)),
            FunctionSpec("diag", dict(self.diag), self.diag_args, {a.name: "row" if a.name.endswith("aa") else "scalar"
                                                                 for a in self.diag_args}),
        ]
        if self.angle:
            specs.append(FunctionSpec("offdiag_angle", dict(self.angle), self.angle_args, dict(self.kinds)))
        return specs

    @property
    def carries_angle(self) -> bool:
        """True when the map has an ``offdiag_angle`` form (θ_ab carried across layers)."""
        return bool(self.angle)

    def cache_key(self) -> str:
        return f"{self.name}|{self.activation.key()}"

    def compile(self, backend: str = "numpy") -> ModuleType:
        """The generated module (cached on disk): ``offdiag(...)`` and ``diag(...)``."""
        return compile_module(f"{self.name}_map", self.function_specs(), backend, key=self.cache_key())


def angle_update(sigma: sp.Expr) -> sp.Expr | None:
    """θ_ab of the next layer, ``arccos(K'_ab/√(K'_aa K'_bb))``, without cancellation; None outside the family.

    ``1 − cos θ' = (√(K'_aa K'_bb) − K'_ab)/√(K'_aa K'_bb)`` with ``K' = C_b + C_W ⟨σσ⟩``; the numerator splits into
    ``C_b (√α − √β)² / (√(K'_aa K'_bb) + C_b + √(αβ))`` (α, β = C_W⟨σ²⟩ at K_aa, K_bb: the inputs' norms differ)
    plus ``C_W (√(⟨σ²⟩_aa ⟨σ²⟩_bb) − ⟨σ_a σ_b⟩)`` (:func:`nnft.gaussian.decorrelation`), both sums of
    non-negative terms, so θ' is accurate to eps in absolute terms even where 1 − cos θ' < eps.
    """
    gap = decorrelation(sigma)
    if gap is None:
        return None
    e_aa = expect_single(sigma, sigma)
    e_bb = e_aa.subs(Kaa, Kbb)
    alpha, beta = C_W * e_aa, C_W * e_bb
    den = GeoMean(C_b + alpha, C_b + beta)
    norms = C_b * (SafeSqrt(alpha) - SafeSqrt(beta)) ** 2 / (den + C_b + GeoMean(alpha, beta))
    return AngleFromGap(norms + C_W * gap, den)
