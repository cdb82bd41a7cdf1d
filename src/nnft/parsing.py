"""A restricted parser that turns user strings into sympy expressions without ever evaluating code.

Every string nnft receives from a user, a file or the command line (activation expressions such as
``"z*tanh(z)"``, parameters such as ``"0.1"`` in ``"leaky_relu(a=0.1)"``, config values) goes through
:func:`parse_expression` or :func:`parse_number`. The text is parsed by Python's ``ast`` module in
``eval`` mode (syntax only, nothing runs), and the tree is walked by this module, which accepts only

* numeric literals (int, float; no complex, no strings, no bytes),
* the names of the allowed variables and the constants ``pi`` and ``E``,
* ``+ - * / **``, unary ``+``/``-``, parentheses,
* calls of the whitelisted functions :data:`FUNCTIONS` with positional arguments,
* inside ``Piecewise((expr, cond), ...)`` only: tuples, comparisons (``<``, ``<=``, ``>``, ``>=``,
  chained) and ``True``,

and builds the sympy expression with its own code. Everything else (attribute access, subscripts,
lambdas, comprehensions, keywords, f-strings, dunder names, unknown functions) raises
:class:`nnft.errors.ParseError` naming the offending piece and the allowed vocabulary.

Denial of service is bounded too: the text length (:data:`MAX_LENGTH`), the nesting depth
(:data:`MAX_DEPTH`), the digits of a literal (:data:`MAX_DIGITS`), the size of a number built from
literals by ``**`` (:data:`MAX_RESULT_DIGITS`) and the exponent of a non-numeric base
(:data:`MAX_EXPONENT`) are checked *before* sympy is asked to build the node, so ``9**9**9**9`` or
``z**(10**10)`` are refused at once instead of exhausting memory.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterable, Mapping

import sympy as sp

from nnft.errors import ParseError
from nnft.functions import Sigmoid, Softplus

#: Longest accepted expression string, in characters.
MAX_LENGTH = 2000
#: Deepest accepted nesting of operations and calls.
MAX_DEPTH = 40
#: Most significant characters in one numeric literal.
MAX_DIGITS = 60
#: Largest decimal size (log10 of the magnitude) of a number built by ``**`` from constants.
MAX_RESULT_DIGITS = 400
#: Largest |exponent| allowed on a base that depends on a variable (``z**100`` is accepted, ``z**101`` not).
MAX_EXPONENT = 100


_UNBOUNDED = -1


def _arity(lo: int, hi: int | None = None) -> tuple[int, int | None]:
    return (lo, lo if hi is None else (None if hi == _UNBOUNDED else hi))


#: The callable vocabulary: name -> (sympy constructor, (min args, max args or None for unbounded)).
FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], tuple[int, int | None]]] = {
    "tanh": (sp.tanh, _arity(1)),
    "sinh": (sp.sinh, _arity(1)),
    "cosh": (sp.cosh, _arity(1)),
    "erf": (sp.erf, _arity(1)),
    "erfc": (sp.erfc, _arity(1)),
    "exp": (sp.exp, _arity(1)),
    "log": (sp.log, _arity(1)),
    "sin": (sp.sin, _arity(1)),
    "cos": (sp.cos, _arity(1)),
    "tan": (sp.tan, _arity(1)),
    "atan": (sp.atan, _arity(1)),
    "asinh": (sp.asinh, _arity(1)),
    "sqrt": (sp.sqrt, _arity(1)),
    "Abs": (sp.Abs, _arity(1)),
    "abs": (sp.Abs, _arity(1)),
    "sign": (sp.sign, _arity(1)),
    "Heaviside": (sp.Heaviside, _arity(1, 2)),
    "Max": (sp.Max, _arity(2, _UNBOUNDED)),
    "max": (sp.Max, _arity(2, _UNBOUNDED)),
    "Min": (sp.Min, _arity(2, _UNBOUNDED)),
    "min": (sp.Min, _arity(2, _UNBOUNDED)),
    "floor": (sp.floor, _arity(1)),
    "ceiling": (sp.ceiling, _arity(1)),
    "sigmoid": (Sigmoid, _arity(1)),
    "softplus": (Softplus, _arity(1)),
    "Sigmoid": (Sigmoid, _arity(1)),  # how sympy prints them: str(activation.expr) parses back
    "Softplus": (Softplus, _arity(1)),
}

#: Named constants.
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_CMPOPS = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}

# Human names for the syntax nnft refuses, used in error messages.
_NODE_NAMES = {
    ast.Attribute: "attribute access ('.')",
    ast.Subscript: "subscript ('[...]')",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.List: "list",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "assignment expression (':=')",
    ast.IfExp: "conditional expression ('if ... else')",
    ast.BoolOp: "'and'/'or'",
    ast.Starred: "starred argument",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.Slice: "slice",
}


def vocabulary(variables: Iterable[str] = ("z",), functions: Mapping | None = None) -> str:
    """A one-line description of what a parsed expression may contain (for error messages)."""
    funcs = sorted(FUNCTIONS if functions is None else functions)
    return (
        f"allowed: numbers, the variable(s) {sorted(variables)}, the constants {sorted(CONSTANTS)}, "
        f"+ - * / ** and parentheses, and the functions {funcs} (plus Piecewise((expr, condition), ...))"
    )


class _Builder:
    """Walks an ``ast`` tree and builds the sympy expression, refusing anything outside the vocabulary."""

    def __init__(self, text: str, variables: Mapping[str, sp.Symbol], functions: Mapping,
                 free_symbols: bool) -> None:
        self.text = text if len(text) <= 120 else text[:100] + "..."
        self.source = text
        self.variables = variables
        self.functions = functions
        self.free_symbols = free_symbols
        self.extra: dict[str, sp.Symbol] = {}

    def fail(self, what: str) -> ParseError:
        return ParseError(
            f"cannot parse {self.text!r}: {what} is not allowed in an expression; "
            f"{vocabulary(self.variables, self.functions)}"
        )

    def segment(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.source, node)
        return seg if seg is not None else type(node).__name__

    def build(self, node: ast.AST, depth: int = 0, *, condition: bool = False) -> sp.Basic:
        if depth > MAX_DEPTH:
            raise ParseError(
                f"cannot parse expression: nested deeper than {MAX_DEPTH} levels (a limit against runaway input)"
            )
        if isinstance(node, ast.Expression):
            return self.build(node.body, depth)
        if isinstance(node, ast.Constant):
            return self.constant(node, condition)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, depth + 1)
            raise self.fail(f"the operator in {self.segment(node)!r}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult):
            return self.chain(node, depth)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail(f"the operator in {self.segment(node)!r} (only + - * / ** are)")
            a = self.build(node.left, depth + 1)
            b = self.build(node.right, depth + 1)
            return self.binop(op, a, b, node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Compare) and condition:
            return self.compare(node, depth)
        if isinstance(node, ast.Compare):
            raise self.fail(f"the comparison {self.segment(node)!r} outside a Piecewise condition")
        kind = _NODE_NAMES.get(type(node), f"the construct {type(node).__name__}")
        return self._raise(kind, node)

    def chain(self, node: ast.BinOp, depth: int) -> sp.Basic:
        """A left-associated chain ``a + b - c + ...`` or ``a * b * ...`` counts as one level of nesting."""
        group = (ast.Add, ast.Sub) if isinstance(node.op, ast.Add | ast.Sub) else (ast.Mult,)
        rights: list[tuple[str, ast.AST]] = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, group):
            rights.append((_BINOPS[type(node.op)], node.right))
            node = node.left
        terms = [self.build(node, depth + 1)]
        for op, right in reversed(rights):
            t = self.build(right, depth + 1)
            for x in (terms[0], t):
                if not isinstance(x, sp.Expr):
                    raise self.fail(f"a condition used as a number in {self.segment(right)!r}")
            terms.append(-t if op == "-" else t)
        return sp.Mul(*terms) if group == (ast.Mult,) else sp.Add(*terms)

    def _raise(self, kind: str, node: ast.AST):
        raise self.fail(f"{kind} in {self.segment(node)!r}")

    def constant(self, node: ast.Constant, condition: bool) -> sp.Basic:
        v = node.value
        if isinstance(v, bool):
            if condition and v is True:
                return sp.true
            raise self.fail(f"the keyword {v!r}")
        if isinstance(v, int):
            text = self.segment(node)
            if len(text) > MAX_DIGITS:
                raise ParseError(f"cannot parse {self.text[:80]!r}: a number with more than {MAX_DIGITS} digits")
            return sp.Integer(v)
        if isinstance(v, float):
            text = self.segment(node)
            if len(text) > MAX_DIGITS:
                raise ParseError(f"cannot parse {self.text[:80]!r}: a number with more than {MAX_DIGITS} digits")
            if not math.isfinite(v):
                raise ParseError(f"cannot parse {self.text!r}: the number {text} overflows float64")
            return sp.Float(v)  # the double itself: no decimal-string conversion of a huge exponent
        if isinstance(v, complex):
            raise self.fail(f"the complex number {self.segment(node)!r}")
        if isinstance(v, str | bytes):
            raise self.fail(f"the string {self.segment(node)[:40]!r}")
        raise self.fail(f"the literal {self.segment(node)[:40]!r}")

    def name(self, node: ast.Name) -> sp.Basic:
        n = node.id
        if n.startswith("_"):
            raise self.fail(f"the name {n!r} (names starting with '_')")
        if n in self.variables:
            return self.variables[n]
        if n in CONSTANTS:
            return CONSTANTS[n]
        if n in self.functions:
            raise self.fail(f"the function name {n!r} without arguments (write e.g. {n}(z))")
        if self.free_symbols and n.isidentifier() and n.isascii():
            return self.extra.setdefault(n, sp.Symbol(n, real=True))
        raise self.fail(f"the name {n!r}")

    def binop(self, op: str, a: sp.Basic, b: sp.Basic, node: ast.AST) -> sp.Basic:
        for x in (a, b):
            if not isinstance(x, sp.Expr):
                raise self.fail(f"a condition used as a number in {self.segment(node)!r}")
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        self.check_power(a, b, node)
        return a**b

    def check_power(self, a: sp.Basic, b: sp.Basic, node: ast.AST) -> None:
        """Refuse powers whose automatic evaluation would build huge numbers or huge polynomials."""
        if not b.is_number:
            return
        try:
            e = abs(complex(sp.N(b, 15)))
        except (TypeError, ValueError) as exc:
            raise ParseError(f"cannot parse {self.text[:80]!r}: the exponent of {self.segment(node)[:60]!r} "
                             "is not a number") from exc
        if a.is_number:
            if a == 0 or e == 0:
                return
            try:
                size = e * abs(math.log10(abs(complex(sp.N(a, 15)))))
            except (TypeError, ValueError, OverflowError):
                size = math.inf
            if size > MAX_RESULT_DIGITS or not math.isfinite(e):
                raise ParseError(
                    f"cannot parse {self.text[:80]!r}: {self.segment(node)[:60]!r} is a number of about "
                    f"10^{size:.3g}, beyond the limit 10^{MAX_RESULT_DIGITS} for constants"
                )
        elif not e <= MAX_EXPONENT:
            raise ParseError(
                f"cannot parse {self.text[:80]!r}: the exponent in {self.segment(node)[:60]!r} has magnitude "
                f"{e:.6g}, beyond the limit {MAX_EXPONENT} for a power of a variable"
            )

    def call(self, node: ast.Call, depth: int) -> sp.Basic:
        if not isinstance(node.func, ast.Name):
            kind = _NODE_NAMES.get(type(node.func), "a call of something that is not a plain function name")
            return self._raise(kind, node.func)
        fname = node.func.id
        if fname.startswith("_"):
            raise self.fail(f"the name {fname!r} (names starting with '_')")
        if node.keywords:
            kw = node.keywords[0]
            raise self.fail(f"the keyword argument {kw.arg or '**'}= in {fname}(...)")
        if fname == "Piecewise":
            return self.piecewise(node, depth)
        if fname not in self.functions:
            raise ParseError(
                f"cannot parse {self.text!r}: unknown function {fname!r}; "
                f"{vocabulary(self.variables, self.functions)}"
            )
        ctor, (lo, hi) = self.functions[fname]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise ParseError(f"cannot parse {self.text!r}: {fname} takes {want} argument(s), got {n}")
        args = [self.build(a, depth + 1) for a in node.args]
        for a in args:
            if not isinstance(a, sp.Expr):
                raise self.fail(f"a condition as an argument of {fname}")
        return ctor(*args)

    def compare(self, node: ast.Compare, depth: int) -> sp.Basic:
        left = self.build(node.left, depth + 1)
        parts = []
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            rel = _CMPOPS.get(type(op))
            if rel is None:
                raise self.fail(f"the comparison operator in {self.segment(node)!r} (only < <= > >= are)")
            right = self.build(right_node, depth + 1)
            parts.append(rel(left, right))
            left = right
        return sp.And(*parts)

    def piecewise(self, node: ast.Call, depth: int) -> sp.Basic:
        if not node.args:
            raise ParseError(f"cannot parse {self.text!r}: Piecewise needs (expr, condition) pairs")
        pieces = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise ParseError(
                    f"cannot parse {self.text!r}: each Piecewise argument must be a pair (expr, condition), "
                    f"got {self.segment(arg)[:60]!r}"
                )
            e = self.build(arg.elts[0], depth + 2)
            c = self.build(arg.elts[1], depth + 2, condition=True)
            if not isinstance(c, sp.logic.boolalg.Boolean):
                raise ParseError(f"cannot parse {self.text!r}: {self.segment(arg.elts[1])!r} is not a condition")
            pieces.append((e, c))
        try:
            return sp.Piecewise(*pieces)
        except (TypeError, ValueError) as exc:
            raise ParseError(f"cannot parse {self.text!r}: invalid Piecewise: {exc}") from exc


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise ParseError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression of {len(text)} characters is longer than the limit {MAX_LENGTH}")
    for i, ch in enumerate(text):
        if not (ch.isascii() and (ch.isprintable() or ch in " \t")):
            raise ParseError(
                f"cannot parse {text[:80]!r}: character {ch!r} (U+{ord(ch):04X}) at position {i} is not allowed; "
                "expressions are plain ASCII"
            )
    return text.strip()


def _tree(text: str) -> ast.Expression:
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ParseError(f"cannot parse {text!r}: invalid syntax ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ParseError(f"cannot parse {text[:80]!r}: {type(exc).__name__}") from None


def parse_expression(
    text: str,
    variables: Mapping[str, sp.Symbol] | Iterable[str] = ("z",),
    functions: Mapping[str, tuple[Callable[..., sp.Expr], tuple[int, int | None]]] | None = None,
    *,
    free_symbols: bool = False,
) -> sp.Expr:
    """Parse ``text`` into a sympy expression using only the restricted vocabulary; nothing is evaluated.

    ``variables`` maps names to sympy symbols (a list of names makes real symbols of them). ``functions``
    replaces the default whitelist :data:`FUNCTIONS`. With ``free_symbols=True`` other plain names become
    real symbols too (the caller then reports them, e.g. "depends on x"); by default they are refused.
    Raises :class:`nnft.errors.ParseError` for anything else.
    """
    text = _check_text(text)
    if not text:
        raise ParseError("cannot parse an empty expression")
    if not isinstance(variables, Mapping):
        variables = {v: sp.Symbol(v, real=True) for v in variables}
    builder = _Builder(text, variables, FUNCTIONS if functions is None else functions, free_symbols)
    try:
        out = builder.build(_tree(text))
    except ParseError:
        raise
    except RecursionError:
        raise ParseError(f"cannot parse {text[:80]!r}: nested too deeply") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ParseError(f"cannot parse {text[:80]!r}: {exc}") from None
    if not isinstance(out, sp.Expr):
        raise ParseError(f"cannot parse {text!r}: it is a condition, not an expression")
    return out


def parse_number(text: str) -> sp.Expr:
    """Parse a real number written as a literal or a constant expression (``"0.1"``, ``"1/10"``, ``"pi/4"``).

    Decimal literals become exact rationals (``"0.1"`` is 1/10). Raises :class:`nnft.errors.ParseError`
    for anything that is not a finite real number.
    """
    text = _check_text(text)
    try:
        return sp.Rational(text) if text and _plain_decimal(text) else _number_expr(text)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"cannot read the number {text!r}") from None


_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE]([+-]?\d+))?")


def _plain_decimal(text: str) -> bool:
    """True for a decimal literal with at most MAX_DIGITS characters and an exponent of at most 400."""
    m = _DECIMAL.fullmatch(text)
    if m is None:
        return False
    if len(text) > MAX_DIGITS or (m.group(3) is not None and abs(int(m.group(3))) > MAX_RESULT_DIGITS):
        raise ParseError(
            f"the number {text[:80]!r} is too long or its exponent too large (limit 1e±{MAX_RESULT_DIGITS})"
        )
    return True


def _number_expr(text: str) -> sp.Expr:
    value = parse_expression(text, variables={})
    if not value.is_number:
        raise ParseError(f"{text!r} is not a number")
    try:
        f = complex(sp.N(value, 20))
    except (TypeError, ValueError) as exc:
        raise ParseError(f"{text!r} is not a finite real number") from exc
    if f.imag != 0 or not math.isfinite(f.real):
        raise ParseError(f"{text!r} is not a finite real number (it evaluates to {value})")
    return value


def split_call(text: str) -> tuple[str, list[str], dict[str, str]] | None:
    """Split a call string ``"name(1, a=0.1)"`` into its name and argument source texts (no evaluation).

    Returns ``None`` when ``text`` is not a call of a plain name. Argument texts are returned verbatim,
    for :func:`parse_number` or :func:`parse_expression`.
    """
    text = _check_text(text)
    tree = _tree(text)
    node = tree.body
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise ParseError(f"cannot parse {text!r}: starred arguments are not allowed")
    seg = ast.get_source_segment
    args = [seg(text, a) or "" for a in node.args]
    kwargs = {k.arg: seg(text, k.value) or "" for k in node.keywords if k.arg is not None}
    return node.func.id, args, kwargs


__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_RESULT_DIGITS",
    "parse_expression",
    "parse_number",
    "split_call",
    "vocabulary",
]
