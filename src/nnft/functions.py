"""Symbolic functions that carry their own numerically safe printing.

Each class here is a sympy ``Function`` that behaves like its textbook definition for symbolic work
(differentiation, ``rewrite(exp)``, ``evalf``) but prints to code as a call into the hand-written
runtime (``nnft.runtime``), so that generated modules never evaluate an expression that overflows,
divides 0/0 or leaves the domain of ``arccos`` through round-off.

Printers look for the methods ``_numpycode`` (vectorised numpy) and ``_numbacode`` (scalar code
compiled by numba); both print a call ``_rt.<name>(...)`` into the runtime module imported as ``_rt``.
"""

from __future__ import annotations

import sympy as sp


class _RuntimeFunction(sp.Function):
    """A sympy function printed to code as ``_rt.<runtime_name>(args)``."""

    runtime_name: str = ""
    latex_name: str = ""

    def _numpycode(self, printer) -> str:
        args = ", ".join(printer._print(a) for a in self.args)
        return f"_rt.{self.runtime_name}({args})"

    def _numbacode(self, printer) -> str:
        args = ", ".join(printer._print(a) for a in self.args)
        return f"_rt.{self.runtime_name}_s({args})"

    def _latex(self, printer, exp=None) -> str:
        args = ", ".join(printer._print(a) for a in self.args)
        base = rf"\operatorname{{{self.latex_name}}}\left({args}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class Sigmoid(_RuntimeFunction):
    """Logistic sigmoid ``1 / (1 + e^{-x})``, printed as an overflow-free ``expit``."""

    nargs = 1
    runtime_name = "sigmoid"
    latex_name = "sigmoid"

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0]) * (1 - Sigmoid(self.args[0]))

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_evalf(self, prec):
        return (1 / (1 + sp.exp(-self.args[0]))).evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real


class Softplus(_RuntimeFunction):
    """Softplus ``log(1 + e^x)``, printed as an overflow-free ``logaddexp(0, x)``."""

    nargs = 1
    runtime_name = "softplus"
    latex_name = "softplus"

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        return sp.log(1 + sp.exp(self.args[0])).evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real


class Corr(_RuntimeFunction):
    """Correlation coefficient ``c = K_ab / D`` with ``D = sqrt(K_aa K_bb)``, clipped into [-1, 1].

    ``Corr(K_ab, D)`` takes the denominator as an argument so that common-subexpression elimination
    shares ``D`` with the prefactor ``sqrt(K_aa K_bb)`` of the arc-cosine kernels. Build it with
    :func:`corr`, which forms ``D = SafeSqrt(K_aa*K_bb)`` (exactly ``K_aa`` on the diagonal, so ``c == 1``
    there, see docs/architecture.md). Printed as ``_rt.corr``: clipped, and the 0/0 of a zero-variance input is
    defined as ``c = 0`` (consistent with ``Heaviside(0) = 1/2``).
    """

    nargs = 2
    runtime_name = "corr"
    latex_name = "corr"

    def _eval_evalf(self, prec):
        kab, den = self.args
        return (kab / unsafe(den)).evalf(prec)

    def fdiff(self, argindex=1):
        kab, den = self.args
        return 1 / den if argindex == 1 else -kab / den**2

    def _latex(self, printer, exp=None) -> str:
        kab, den = (printer._print(a) for a in self.args)
        base = rf"\frac{{{kab}}}{{{den}}}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


class GeoMean(_RuntimeFunction):
    """``sqrt(a b)`` for a, b ≥ 0, printed as a runtime call that neither underflows nor overflows.

    Formed as ``sqrt(a*b)`` (exactly ``a`` when ``a == b``: IEEE ``sqrt(k*k) == k``), except where the product
    leaves the normal range (kernels below ~1e-154 or above ~1e154, e.g. deep networks in the ordered phase),
    where ``sqrt(a)·sqrt(b)`` is used instead.
    """

    nargs = 2
    runtime_name = "geomean"
    latex_name = "sqrt"

    def fdiff(self, argindex=1):
        a, b = self.args
        return GeoMean(a, b) / (2 * (a if argindex == 1 else b))

    def _eval_evalf(self, prec):
        a, b = self.args
        return sp.sqrt(unsafe(a) * unsafe(b)).evalf(prec)

    def _eval_is_nonnegative(self):
        return True

    def _latex(self, printer, exp=None) -> str:
        a, b = (printer._print(x) for x in self.args)
        base = rf"\sqrt{{{a} {b}}}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


def corr(kab: sp.Expr, kaa: sp.Expr, kbb: sp.Expr) -> Corr:
    """The clipped correlation ``K_ab / sqrt(K_aa K_bb)`` as a :class:`Corr` node."""
    return Corr(kab, GeoMean(kaa, kbb))


def _is_clipped(x: sp.Expr) -> bool:
    """True when ``x`` is a Corr node (or ±Corr), whose value is already in [-1, 1]."""
    return isinstance(x, Corr) or (isinstance(-x, Corr))


def _one_minus_square_of_clipped(x: sp.Expr) -> bool:
    """True when ``x`` is ``1 - c**2`` for a clipped correlation c (so x ≥ 0 exactly in floating point)."""
    c2 = 1 - x
    return c2.is_Pow and c2.exp == 2 and _is_clipped(c2.base)


class SafeAcos(_RuntimeFunction):
    """``arccos`` whose argument is clipped into [-1, 1] before evaluation (no clip for a Corr argument)."""

    nargs = 1
    runtime_name = "acos_clip"
    latex_name = "arccos"

    def _numpycode(self, printer) -> str:
        if _is_clipped(self.args[0]):
            return f"numpy.arccos({printer._print(self.args[0])})"
        return super()._numpycode(printer)

    def fdiff(self, argindex=1):
        return -1 / SafeSqrt(1 - self.args[0] ** 2)

    def _eval_rewrite_as_acos(self, x, **kwargs):
        return sp.acos(x)

    def _eval_evalf(self, prec):
        return sp.acos(self.args[0]).evalf(prec)

    def _latex(self, printer, exp=None) -> str:
        base = rf"\arccos\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class SafeAsin(_RuntimeFunction):
    """``arcsin`` whose argument is clipped into [-1, 1] before evaluation."""

    nargs = 1
    runtime_name = "asin_clip"
    latex_name = "arcsin"

    def fdiff(self, argindex=1):
        return 1 / SafeSqrt(1 - self.args[0] ** 2)

    def _eval_rewrite_as_asin(self, x, **kwargs):
        return sp.asin(x)

    def _eval_evalf(self, prec):
        return sp.asin(self.args[0]).evalf(prec)

    def _latex(self, printer, exp=None) -> str:
        base = rf"\arcsin\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class SafeSqrt(_RuntimeFunction):
    """``sqrt(max(x, 0))``: a square root of a quantity that is non-negative up to round-off."""

    nargs = 1
    runtime_name = "sqrt_pos"
    latex_name = "sqrt"

    def _numpycode(self, printer) -> str:
        if _one_minus_square_of_clipped(self.args[0]):
            return f"numpy.sqrt({printer._print(self.args[0])})"
        return super()._numpycode(printer)

    def fdiff(self, argindex=1):
        return 1 / (2 * SafeSqrt(self.args[0]))

    def _eval_evalf(self, prec):
        return sp.sqrt(self.args[0]).evalf(prec)

    def _eval_rewrite_as_sqrt(self, x, **kwargs):
        return sp.sqrt(x)

    def _latex(self, printer, exp=None) -> str:
        base = rf"\sqrt{{{printer._print(self.args[0])}}}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


class AsinGap(_RuntimeFunction):
    """``arcsin(num/r)`` given also ``gap = r² − num² ≥ 0`` in a cancellation-free form, printed as ``_rt.asin_gap``.

    Near ``|num/r| → 1`` (nearly parallel inputs of the arcsine kernel) ``arcsin`` of the rounded ratio is
    only accurate to √eps; with the gap, ``arcsin|t| = π/2 − 2 arcsin(√(u/2))``, ``u = 1 − |t| = gap/(r(r + |num|))``,
    is accurate to eps. The value does not depend on ``gap`` (its derivative there is 0): it is a numerical aid.
    """

    nargs = 3
    runtime_name = "asin_gap"
    latex_name = "arcsin"

    def fdiff(self, argindex=1):
        num, r, gap = self.args
        if argindex == 1:
            return 1 / SafeSqrt(gap)
        if argindex == 2:
            return -num / (r * SafeSqrt(gap))
        return sp.S.Zero

    def _latex(self, printer, exp=None) -> str:
        base = rf"\arcsin\left({printer._print(self.args[0] / self.args[1])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"

    def _eval_evalf(self, prec):
        return sp.asin(self.args[0] / self.args[1]).evalf(prec)

    def _eval_is_real(self):
        return True


def unsafe(expr: sp.Expr) -> sp.Expr:
    """Rewrite every safe runtime function of ``expr`` into plain sympy (for checks and simplification)."""
    return expr.replace(Sigmoid, lambda x: 1 / (1 + sp.exp(-x))).replace(
        Softplus, lambda x: sp.log(1 + sp.exp(x))
    ).replace(Corr, lambda kab, den: kab / den).replace(
        SafeAcos, sp.acos
    ).replace(SafeAsin, sp.asin).replace(
        AsinGap, lambda n, r, g: sp.asin(n / r)
    ).replace(SafeSqrt, sp.sqrt).replace(GeoMean, lambda a, b: sp.sqrt(a * b))


__all__ = ["AsinGap", "Corr", "GeoMean", "corr", "SafeAcos", "SafeAsin", "SafeSqrt", "Sigmoid", "Softplus", "unsafe"]
