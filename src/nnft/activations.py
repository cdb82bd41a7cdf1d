"""Activations as data: a sympy expression σ(z) plus the properties the engine reads off it.

An :class:`Activation` holds σ(z) as a sympy expression of the real symbol ``z`` and derives
σ'(z), parity, positive homogeneity and the location of kinks from it. Which closed-form Gaussian
averages exist is decided by the rule table of :mod:`nnft.gaussian` from the expression itself,
never from the name, so a user-written ``sympy.Max(z, 0)`` gets the same arc-cosine closed form as
the built-in ``relu``.

Built-ins (``nnft.activation(name, **params)``): linear, relu, leaky_relu(a), abs, step, sign, erf,
tanh, sigmoid, softplus, gelu, swish (= silu), sin, cos, exp, monomial(k).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import mpmath
import numpy as np
import sympy as sp

from nnft import admissibility
from nnft.errors import ActivationError, ParseError
from nnft.functions import Sigmoid, Softplus, unsafe
from nnft.parsing import FUNCTIONS, MAX_EXPONENT, parse_expression, parse_number, split_call

#: The real variable every activation is written in.
z = sp.Symbol("z", real=True)

_TEST_POINTS = (-2.3, -1.1, -0.37, 0.29, 0.8, 1.7, 3.1)


@dataclass(frozen=True)
class Activation:
    """A pointwise activation function σ(z) with the properties the theory needs.

    ``parity`` is +1 for even σ, -1 for odd σ and 0 otherwise. ``homogeneity`` is the degree k of
    positive homogeneity σ(λz) = λ^k σ(z) for all λ > 0, or ``None``. ``kinks`` are the points where σ
    or σ' is not smooth (used by quadrature to split its domain). ``params`` records the parameters a
    built-in was made with, for display.
    """

    name: str
    expr: sp.Expr
    params: tuple[tuple[str, sp.Expr], ...] = ()
    parity: int = field(init=False)
    homogeneity: int | None = field(init=False)
    kinks: tuple[float, ...] = field(init=False)
    singularities: tuple[admissibility.Singularity, ...] = field(init=False)
    gaussian_growth: float = field(init=False)

    def __post_init__(self) -> None:
        expr = self.expr
        extra = expr.free_symbols - {z}
        if extra:
            raise ActivationError(
                f"activation {self.name!r}: {expr} depends on {', '.join(sorted(map(str, extra)))}; an activation "
                "is a function of z alone (use nnft.activations.z, or pass var= to nnft.activation)"
            )
        if z not in expr.free_symbols:
            raise ActivationError(
                f"activation {self.name!r}: {expr} does not depend on z; a constant is not an activation"
            )
        _check_size(expr, self.name)
        adm = admissibility.check(expr, self.name)
        object.__setattr__(self, "singularities", adm.singularities)
        object.__setattr__(self, "gaussian_growth", admissibility.check_growth(expr, self.name))
        for t in (*_TEST_POINTS, 0.0):
            v = admissibility.evaluate(expr, t, 30)
            if not math.isfinite(_num(expr, t)):
                big = mpmath.isfinite(v) and not isinstance(v, mpmath.mpc)
                why = f"σ({t}) ≈ {mpmath.nstr(v, 3)} overflows float64" if big else f"σ({t}) = {v}"
                raise ActivationError(f"activation {self.name!r} is not finite at z = {t}: {expr} ({why})")
        object.__setattr__(self, "kinks", _find_kinks(expr))
        object.__setattr__(self, "parity", _parity(expr))
        object.__setattr__(self, "homogeneity", _homogeneity(expr))

    @cached_property
    def derivative(self) -> sp.Expr:
        """σ'(z), symbolically (a Piecewise for kinked σ; DiracDelta terms dropped at kinks)."""
        d = sp.diff(self.expr, z)
        d = d.replace(sp.DiracDelta, lambda *a: sp.S.Zero)
        return sp.piecewise_fold(d)

    @cached_property
    def jumps(self) -> tuple[float, ...]:
        """Points (nearest 0 first, |z| <= 12) where σ itself jumps, verified by left and right limits."""
        cands = set(self.kinks)
        for node in sp.preorder_traversal(self.expr):
            if isinstance(node, sp.floor | sp.ceiling | sp.frac):
                cands.update(_integer_crossings(node.args[0]))
        out = []
        for c in sorted(cands, key=abs):
            left, right = _num(self.expr, c - 1e-9), _num(self.expr, c + 1e-9)
            if not (math.isfinite(left) and math.isfinite(right)) or abs(left - right) > 1e-6 * max(1.0, abs(left)):
                out.append(c)
        return tuple(out)

    @cached_property
    def has_distributional_derivative(self) -> bool:
        """True when σ jumps, so σ' contains a Dirac delta (step, sign, floor, …): the NTK is then undefined."""
        d = sp.diff(unsafe(self.expr), z)
        if d.has(sp.DiracDelta) or self.jumps:
            return True
        if d.has(sp.Derivative):
            raise ActivationError(
                f"activation {self.name!r}: sympy cannot differentiate {self.expr} (σ' = {d}); the NTK needs σ'. "
                "Write σ with functions sympy can differentiate, or use the NNGP only"
            )
        return False

    def __call__(self, x):
        """Evaluate σ numerically (numpy, vectorised)."""
        return self.numpy()(x)

    def numpy(self) -> Callable:
        """σ as a vectorised numpy function (through the nnft printer, not sympy's lambdify)."""
        from nnft.codegen.module import compile_function

        return compile_function({"sigma": self.expr}, (z,), name=f"act_{self.name}").sigma

    def latex(self) -> str:
        """LaTeX of σ(z)."""
        return sp.latex(self.expr)

    def _repr_latex_(self) -> str:
        return rf"$\sigma(z) = {self.latex()}$"

    def __repr__(self) -> str:
        return f"Activation({self.name}: {self.expr})"

    def key(self) -> str:
        """A stable text key of the expression (for content hashes of generated code)."""
        return self._key

    @cached_property
    def _key(self) -> str:
        return sp.srepr(self.expr)


def _num(expr: sp.Expr, t: float) -> float:
    return admissibility.value(expr, t, 30)


def _check_size(expr: sp.Expr, name: str) -> None:
    """Refuse expressions too large to analyse quickly, or with a power of z beyond the parser's limit."""
    n = sp.count_ops(expr, visual=False) if len(str(expr)) < 20000 else math.inf
    if n > 500:
        raise ActivationError(f"activation {name!r} is too large ({n} operations; the limit is 500)")
    for p in expr.atoms(sp.Pow):
        if p.exp.is_number and p.base.has(z) and not abs(p.exp) <= MAX_EXPONENT:
            raise ActivationError(
                f"activation {name!r} contains the power {p}, beyond the limit |exponent| <= {MAX_EXPONENT}"
            )


def _parity(expr: sp.Expr) -> int:
    even = odd = True
    for t in _TEST_POINTS:
        a, b = _num(expr, t), _num(expr, -t)
        scale = max(1.0, abs(a), abs(b))
        even &= abs(a - b) <= 1e-12 * scale
        odd &= abs(a + b) <= 1e-12 * scale
    if even and odd:
        return 0
    return 1 if even else (-1 if odd else 0)


def _homogeneity(expr: sp.Expr) -> int | None:
    """Degree k with σ(λz) = λ^k σ(z) for λ > 0, checked numerically at several z and λ."""
    pos = [t for t in _TEST_POINTS if abs(_num(expr, t)) > 1e-12]
    if not pos:
        return None
    t0 = pos[0]
    ratio = _num(expr, 2 * t0) / _num(expr, t0)
    if ratio <= 0:
        return None
    k = round(math.log2(ratio))
    if abs(2.0**k - ratio) > 1e-10 * ratio:
        return None
    for lam in (0.5, 3.0, 7.3):
        for t in _TEST_POINTS:
            a = _num(expr, lam * t)
            b = lam**k * _num(expr, t)
            if abs(a - b) > 1e-10 * max(1.0, abs(a)):
                return None
    return k


def _real_roots(arg: sp.Expr) -> list[float]:
    try:
        sols = sp.solve(sp.Eq(arg, 0), z)
    except (NotImplementedError, TypeError):
        return []
    out = []
    for s in sols:
        if s.is_real:
            out.append(float(s))
    return out


#: Half-width of the window in which the jumps of floor/ceiling/frac are looked for (|z| <= 12).
_JUMP_WINDOW = 12.0
_MAX_JUMPS = 49


def _integer_crossings(arg: sp.Expr) -> list[float]:
    """Points z with |z| <= 12 where a linear ``arg = a z + b`` is an integer (the jumps of floor(arg))."""
    if not arg.has(z) or not arg.is_polynomial(z) or sp.degree(arg, z) != 1:
        return []
    a, b = (float(c) for c in sp.Poly(arg, z).all_coeffs())
    lo, hi = sorted((a * -_JUMP_WINDOW + b, a * _JUMP_WINDOW + b))
    ns = range(math.ceil(lo), math.floor(hi) + 1)
    if len(ns) > _MAX_JUMPS:
        ns = range(round(b) - 2, round(b) + 3)  # dense jumps: a few near z = 0 are enough to detect them
    return [(n - b) / a for n in ns]


def _find_kinks(expr: sp.Expr) -> tuple[float, ...]:
    """Points where σ or σ' may be non-smooth, read off Piecewise, Heaviside, Abs, sign, Max, Min."""
    pts: set[float] = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Piecewise):
            for _, cond in node.args:
                for rel in cond.atoms(sp.core.relational.Relational):
                    pts.update(_real_roots(rel.lhs - rel.rhs))
        elif isinstance(node, sp.Heaviside | sp.Abs | sp.sign | sp.DiracDelta):
            pts.update(_real_roots(node.args[0]))
        elif isinstance(node, sp.Max | sp.Min):
            a = node.args
            for i in range(len(a)):
                for j in range(i + 1, len(a)):
                    pts.update(_real_roots(a[i] - a[j]))
    return tuple(sorted(round(p, 15) for p in pts))


# ----------------------------------------------------------------------------------------------
# Built-in registry: name -> (factory(**params) -> sympy expr, default params, one-line description)
# ----------------------------------------------------------------------------------------------

def _rational(v) -> sp.Expr:
    if isinstance(v, sp.Basic):
        return v
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        return sp.Integer(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if not math.isfinite(v):
            raise ActivationError(f"activation parameter must be finite, got {v}")
        return sp.Rational(repr(v))
    if isinstance(v, str):
        return _parse_number(v)
    raise ActivationError(f"activation parameter must be a number, got {v!r}")


_DEFAULT_LEAK = sp.Rational(1, 100)


def _relu(**_):
    return sp.Piecewise((sp.S.Zero, z < 0), (z, True))


def _leaky(a=_DEFAULT_LEAK, **_):
    return sp.Piecewise((a * z, z < 0), (z, True))


def _step(**_):
    return sp.Piecewise((sp.S.Zero, z < 0), (sp.S.Half, sp.Eq(z, 0)), (sp.S.One, True))


def _monomial(k=2, **_):
    return z ** _monomial_degree(k)


REGISTRY: dict[str, tuple[Callable[..., sp.Expr], dict, str]] = {
    "linear": (lambda **_: z, {}, "σ(z) = z"),
    "relu": (_relu, {}, "σ(z) = max(z, 0)"),
    "leaky_relu": (_leaky, {"a": sp.Rational(1, 100)}, "σ(z) = z for z ≥ 0, a z otherwise"),
    "abs": (lambda **_: sp.Abs(z), {}, "σ(z) = |z|"),
    "step": (_step, {}, "σ(z) = Θ(z) (Heaviside, Θ(0) = 1/2)"),
    "sign": (lambda **_: sp.sign(z), {}, "σ(z) = sign(z)"),
    "erf": (lambda **_: sp.erf(z), {}, "σ(z) = erf(z)"),
    "tanh": (lambda **_: sp.tanh(z), {}, "σ(z) = tanh(z)"),
    "sigmoid": (lambda **_: Sigmoid(z), {}, "σ(z) = 1/(1 + e^{-z})"),
    "softplus": (lambda **_: Softplus(z), {}, "σ(z) = log(1 + e^z)"),
    "gelu": (lambda **_: z * (1 + sp.erf(z / sp.sqrt(2))) / 2, {}, "σ(z) = z Φ(z)"),
    "swish": (lambda **_: z * Sigmoid(z), {}, "σ(z) = z / (1 + e^{-z}) (also silu)"),
    "sin": (lambda **_: sp.sin(z), {}, "σ(z) = sin z"),
    "cos": (lambda **_: sp.cos(z), {}, "σ(z) = cos z"),
    "exp": (lambda **_: sp.exp(z), {}, "σ(z) = e^z"),
    "monomial": (_monomial, {"k": 2}, "σ(z) = z^k"),
}
ALIASES = {"silu": "swish", "identity": "linear", "heaviside": "step", "leaky": "leaky_relu"}


class ActivationParseError(ParseError, ActivationError):
    """An activation string that the restricted parser refuses (both a ParseError and an ActivationError)."""


def _parse_number(text: str) -> sp.Expr:
    """An activation parameter such as ``"0.1"`` or ``"a=0.1"``, read by the restricted parser."""
    text = text.split("=", 1)[1].strip() if "=" in text else text
    try:
        return parse_number(text)
    except ParseError as exc:
        raise ActivationParseError(f"cannot read activation parameter {text[:80]!r}: {exc}") from None


def _monomial_degree(k) -> int:
    """The degree of ``monomial(k)``: a positive integer, never a silently truncated float."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer | sp.Integer | sp.Rational | float | np.floating):
        raise ActivationError(f"monomial degree k must be an integer >= 1, got {k!r}")
    q = k if isinstance(k, sp.Basic) else _rational(k)
    if not (q.is_Integer and 1 <= int(q) <= _MAX_DEGREE):
        extra = (
            f"; for a non-integer power write an expression such as 'Abs(z)**({q})' or 'Max(z, 0)**({q})' "
            f"(z**({q}) itself is complex for z < 0 and is refused)"
            if not q.is_Integer and q > 0 else ""
        )
        raise ActivationError(f"monomial degree k must be an integer >= 1 (at most {_MAX_DEGREE}), got {k}{extra}")
    return int(q)


_MAX_DEGREE = 100


def _builtin(base: str, params: dict) -> Activation:
    factory, defaults, _ = REGISTRY[base]
    unknown = set(params) - set(defaults)
    if unknown:
        raise ActivationError(
            f"activation {base!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(defaults)}"
        )
    merged = {**defaults, **{k: _rational(v) if not isinstance(v, int) or isinstance(v, bool) else v
                             for k, v in params.items()}}
    if base == "monomial":
        merged["k"] = _monomial_degree(merged["k"])
    shown = tuple((k, sp.sympify(merged[k], strict=True)) for k in defaults)
    label = base if not defaults else base + "(" + ", ".join(f"{k}={merged[k]}" for k in defaults) + ")"
    return Activation(label, factory(**merged), shown)


def _unknown_name(text: str) -> ActivationError:
    close = difflib.get_close_matches(text.lower(), list(REGISTRY) + list(ALIASES), n=3)
    hint = f"; did you mean {close}?" if close else ""
    return ActivationError(
        f"unknown activation {text!r}{hint} Built-ins: {sorted(REGISTRY)}; or pass an expression of z "
        "such as 'z*tanh(z)'"
    )


def _numeric_args(pos: list[str], kw: dict[str, str]) -> tuple[list[sp.Expr], dict[str, sp.Expr]] | None:
    """The call arguments as numbers, or None when any of them is not a number (then it is an expression)."""
    try:
        return [parse_number(v) for v in pos], {k: parse_number(v) for k, v in kw.items()}
    except ParseError:
        return None


def _from_string(text: str, var: sp.Symbol | None, params: dict) -> Activation:
    """An activation from a registry name, a registry call string or an expression string (never evaluated)."""
    if not isinstance(text, str):
        raise ActivationError(f"expected a string, got {type(text).__name__}")
    name = text.strip()
    low = name.lower()
    base = ALIASES.get(low, low)
    if base in REGISTRY:
        return _builtin(base, params)
    try:
        call = split_call(name)
    except ParseError as exc:
        raise ActivationParseError(f"cannot parse activation expression: {exc}") from None
    if call is not None:
        head, pos, kw = call
        hl = ALIASES.get(head.lower(), head.lower())
        numbers = _numeric_args(pos, kw)
        if hl in REGISTRY and numbers is not None:
            keys = list(REGISTRY[hl][1])
            if not keys and head in FUNCTIONS:
                raise ActivationError(
                    f"activation {name!r} is a constant (its argument is a number): a constant is not an activation; "
                    f"write {head}(z), or just {hl!r}"
                )
            if len(pos) > len(keys):
                raise ActivationError(f"{hl} takes at most {len(keys)} parameter(s) {keys}, got {pos}")
            given = dict(zip(keys, numbers[0], strict=False)) | numbers[1]
            for k, v in given.items():
                params.setdefault(k, v)
            return _builtin(hl, params)
        if hl in REGISTRY and head not in FUNCTIONS:
            raise ActivationParseError(
                f"unknown function {head!r} in {name!r}: built-ins are written by name alone (e.g. {hl!r}) or "
                f"with numeric parameters (e.g. 'leaky_relu(0.1)', 'monomial(k=3)'); an expression of z uses "
                f"the functions {sorted(FUNCTIONS)}"
            )
    if params:
        raise ActivationError(f"parameters {sorted(params)} only apply to registry names, not to {name!r}")
    names = {"z": z} if var is None else {"z": z, str(var): z}
    try:
        expr = parse_expression(name, names, free_symbols=True)
    except ParseError as exc:
        if name.isidentifier():
            raise _unknown_name(name) from None
        raise ActivationParseError(f"cannot parse activation expression: {exc}") from None
    if not expr.free_symbols:
        raise ActivationError(
            f"activation {name!r} is a constant: a constant is not an activation; write a function of z "
            "(e.g. 'tanh(z)') or a built-in name"
        )
    others = sorted(str(s) for s in expr.free_symbols - {z})
    if others and name.isidentifier():
        if len(name) > 3 or difflib.get_close_matches(low, list(REGISTRY) + list(ALIASES), n=1):
            raise _unknown_name(name)
    if others:
        example = re.sub(rf"\b{others[0]}\b", "z", name)
        raise ActivationError(
            f"activation {name!r} depends on {', '.join(others)}: an activation is a function of z alone; "
            f"write it in z (e.g. {example!r}) or pass var=sympy.Symbol({others[0]!r})"
        )
    return activation(expr)


def activation(spec: str | sp.Expr | Activation, var: sp.Symbol | None = None, **params) -> Activation:
    """Return the :class:`Activation` for a registry name, a call string, or a sympy expression of z.

    Examples: ``activation("tanh")``, ``activation("leaky_relu", a=0.1)``, ``activation("leaky_relu(0.1)")``,
    ``activation(sympy.tanh(z) + z / 10)``, ``activation("z*tanh(z)")``. An expression in another symbol is
    accepted with ``var=that_symbol``. Strings are read by the restricted parser :mod:`nnft.parsing`, which
    never evaluates code.
    """
    if isinstance(spec, Activation):
        if params:
            raise ActivationError("parameters cannot be applied to an existing Activation")
        return spec
    if isinstance(spec, str):
        return _from_string(spec, var, params)
    if isinstance(spec, sp.Basic):
        if params:
            raise ActivationError("parameters only apply to registry names; substitute them into the expression")
        expr = spec
        if var is not None:
            expr = expr.subs(var, z)
        else:
            # accept a user's own Symbol('z') regardless of its assumptions
            expr = expr.subs({s: z for s in expr.free_symbols if s.name == "z" and s != z})
        return Activation(str(expr), expr)
    raise ActivationError(f"an activation is a name or a sympy expression of z, not {type(spec).__name__}")


def builtin_names() -> list[str]:
    """Names of the built-in activations."""
    return sorted(REGISTRY)


__all__ = ["Activation", "ActivationError", "ActivationParseError", "REGISTRY", "activation", "builtin_names", "z"]
