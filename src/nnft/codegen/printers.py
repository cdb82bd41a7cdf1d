"""Code printers: sympy expressions → vectorised numpy, scalar numba, and LaTeX.

The stock sympy printers have traps for this work (DESIGN.md, issue 3): ``NumPyPrinter`` prints
``erf`` as the scalar ``math.erf``, ``Piecewise`` as an eager ``numpy.select``, and scipy.special does
not compile under numba. These subclasses fix them:

* :class:`NumpyPrinter` — ``erf`` → ``scipy.special.erf``; ``Piecewise`` → nested ``numpy.where``
  (evaluated under ``numpy.errstate(all="ignore")`` by the module, so the discarded branch cannot warn);
  ``Heaviside(x)`` → ``numpy.heaviside(x, 0.5)``; ``Max``/``Min`` → ``numpy.maximum``/``minimum``;
  the safe functions of :mod:`nnft.functions` → ``_rt.*`` (the numpy runtime).
* :class:`NumbaPrinter` — scalar ``math`` code (``math.erf`` is right here), ``Piecewise`` → a lazy
  conditional expression, safe functions → ``_rt.*_s`` (njit scalar helpers of the numba runtime).

Expectation nodes are printed by the module builder (:mod:`nnft.codegen.module`), which turns them
into quadrature calls; a printer meeting one raises.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from nnft.errors import ActivationError


class _ClearRefusals:
    """Printer mixin: anything the printer cannot print raises an ActivationError that names it."""

    def _print_not_supported(self, expr):
        head = getattr(expr, "func", type(expr))
        name = getattr(head, "__name__", str(head))
        raise ActivationError(
            f"nnft cannot generate code for {name} (in {str(expr)[:120]}): the {type(self).__name__} has no "
            "translation for it. Write σ with supported functions (tanh, erf, exp, log, sin, cos, sqrt, Abs, Max, "
            "Min, sign, Heaviside, Piecewise, sigmoid, softplus, floor, ceiling, …)"
        )

    def _print_Derivative(self, expr):
        raise ActivationError(
            f"nnft cannot generate code for the unevaluated derivative {str(expr)[:120]}: sympy could not "
            "differentiate it. If σ jumps (floor, ceiling, …), σ' is a Dirac delta and the NTK is undefined"
        )


class NumpyPrinter(_ClearRefusals, SciPyPrinter):
    """Vectorised numpy/scipy printer with safe special functions and lazy-safe Piecewise."""

    printmethod = "_numpycode"

    def __init__(self, settings=None):
        super().__init__(settings or {"fully_qualified_modules": True, "allow_unknown_functions": False})

    def _print_Pi(self, expr):
        return "numpy.pi"

    def _print_Exp1(self, expr):
        return "numpy.e"

    def _print_erf(self, expr):
        self.module_imports["scipy.special"].add("erf")
        return f"scipy.special.erf({self._print(expr.args[0])})"

    def _print_erfc(self, expr):
        self.module_imports["scipy.special"].add("erfc")
        return f"scipy.special.erfc({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"numpy.heaviside({self._print(expr.args[0])}, {self._print(h0)})"

    def _print_Max(self, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.maximum({out}, {a})"
        return out

    def _print_Min(self, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.minimum({out}, {a})"
        return out

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        if pieces[-1][1] == sp.true:
            out = self._print(pieces[-1][0])
            pieces = pieces[:-1]
        else:
            out = "numpy.nan"
        for e, c in reversed(pieces):
            out = f"numpy.where({self._print(c)}, {self._print(e)}, {out})"
        return out

    def _print_Expectation(self, expr):  # pragma: no cover - the module builder replaces these first
        raise TypeError("an Expectation node reached the printer: compile it through nnft.codegen.module")

    def _print_DiracDelta(self, expr):
        raise ValueError(
            "a Dirac delta cannot be evaluated pointwise (the derivative of a jump, e.g. of step or sign): "
            "this quantity is not a function"
        )


class NumbaPrinter(_ClearRefusals, PythonCodePrinter):
    """Scalar printer for code compiled by numba's ``njit``: math functions, lazy Piecewise."""

    printmethod = "_numbacode"

    def __init__(self, settings=None):
        super().__init__(settings or {"fully_qualified_modules": True, "allow_unknown_functions": False})

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        x = self._print(expr.args[0])
        return f"_rt.heaviside_s({x}, {self._print(h0)})"

    def _print_sign(self, expr):
        return f"_rt.sign_s({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Expectation(self, expr):
        raise TypeError(
            "the numba backend evaluates closed forms only; this map contains a Gaussian average with no "
            "closed form (quadrature): use backend='numpy'"
        )

    def _print_DiracDelta(self, expr):
        raise ValueError("a Dirac delta cannot be evaluated pointwise (derivative of a jump)")


#: LaTeX names of the sample labels a, b, c, d (CONVENTIONS.md: α, β, γ, δ).
GREEK = {"a": r"\alpha", "b": r"\beta", "c": r"\gamma", "d": r"\delta"}
_SAMPLE_SYMBOL = re.compile(r"(K|z|Theta)_([abcd]{1,2})")


def greek(labels: str) -> str:
    """``"ab"`` → ``"\\alpha\\beta"``: sample labels in the LaTeX of CONVENTIONS.md."""
    return "".join(GREEK.get(c, c) for c in labels)


class NnftLatexPrinter(LatexPrinter):
    """LaTeX printer with the sample-index names of CONVENTIONS.md (α, β for the symbols K_aa, …)."""

    def __init__(self, settings=None):
        super().__init__(settings)

    def _print_Symbol(self, expr, style="plain"):
        names = {
            "K_aa": r"K_{\alpha\alpha}",
            "K_ab": r"K_{\alpha\beta}",
            "K_bb": r"K_{\beta\beta}",
            "Theta_aa": r"\Theta_{\alpha\alpha}",
            "Theta_ab": r"\Theta_{\alpha\beta}",
            "Theta_bb": r"\Theta_{\beta\beta}",
            "z_a": r"z_{\alpha}",
            "rho_ab": r"\rho_{\alpha\beta}",
            "theta_ab": r"\theta_{\alpha\beta}",
            "z_b": r"z_{\beta}",
            "C_b": r"C_b",
            "C_W": r"C_W",
            "lambda_b": r"\lambda_b",
            "lambda_W": r"\lambda_W",
        }
        if expr.name in names:
            return names[expr.name]
        m = _SAMPLE_SYMBOL.fullmatch(expr.name)
        if m:  # K_cd, z_c, Theta_ad … of the n-variable averages and the finite-width patterns
            base = {"Theta": r"\Theta"}.get(m.group(1), m.group(1))
            return base + "_{" + "".join(GREEK[c] for c in m.group(2)) + "}"
        return super()._print_Symbol(expr, style=style)


def latex(expr: sp.Basic, **settings) -> str:
    """LaTeX of ``expr`` with nnft's symbol names (α, β sample indices)."""
    return NnftLatexPrinter(settings).doprint(expr)


__all__ = ["GREEK", "NnftLatexPrinter", "NumbaPrinter", "NumpyPrinter", "greek", "latex"]
