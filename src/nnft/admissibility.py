"""Whether σ can be an activation: finite on the real line, real, and square-integrable against a Gaussian.

:func:`check` runs when an :class:`nnft.activations.Activation` is created, before any quadrature. It

* finds singular points on the real line symbolically where it can: zeros of a base raised to a negative
  power (``1/(z - a)``), zeros of the argument of ``log``, poles of ``tan``/``cot``/``sec``/``csc`` with a
  linear argument (the one nearest 0 is named); and regions where σ is complex (a fractional power or a
  ``log`` of something negative, an ``asin`` outside [-1, 1]);
* falls back to a grid over [-10, 10] when the expression contains functions it cannot analyse;
* classifies each singular point by the local power law |σ(a + h)| ~ h^-p measured at h = 1e-6 … 1e-10:
  p ≥ 1/2 makes ⟨σ²⟩ diverge for every variance (refused with the point and the reason); a logarithmic
  or weaker singularity is square-integrable, but nnft's quadrature does not resolve it, so it is refused
  with that reason (see :data:`Singularity.kind`);
* checks the growth against the Gaussian: σ growing faster than e^{q z²} for every q (``exp(z**3)``)
  makes ⟨σ²⟩ infinite at every K.

Numerical values come from :func:`evaluate`, a guarded mpmath evaluator of the expression tree that
never asks mpmath for a value whose size would take unbounded work (``exp(exp(exp(exp(z))))`` at
z = 60 is reported as infinite instead of hanging). Results are cached per expression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import mpmath
import sympy as sp
from sympy.core.function import AppliedUndef

from nnft.errors import ActivationError
from nnft.functions import Sigmoid, Softplus

#: Arguments of exp/sinh/cosh beyond this magnitude give ±inf or 0 (their value has > 4e14 decimal digits).
EXP_LIMIT = 1e15
#: Arguments of periodic functions beyond this magnitude are refused (argument reduction would need them).
PERIODIC_LIMIT = 1e60
#: Half-width of the numerical scan used for expressions the symbolic analysis cannot handle.
GRID_HALF_WIDTH = 10.0


class EvaluationError(ActivationError):
    """σ cannot be evaluated at a point within nnft's bounds (an argument of sin, cos, … beyond 1e60)."""


@dataclass(frozen=True)
class Singularity:
    """A point of the real line where σ is not finite: ``kind`` is 'pole', 'log' or 'non-finite'.

    ``order`` is the measured exponent p of |σ(a + h)| ~ |h|^-p (0 for a logarithmic singularity).
    """

    point: float
    kind: str
    order: float
    description: str


@dataclass(frozen=True)
class Admissibility:
    """What :func:`check` found: the singular points (sorted) and the Gaussian growth rate class."""

    singularities: tuple[Singularity, ...]
    complex_where: str | None


# ------------------------------------------------------------------------------------------------
# Guarded numerical evaluation
# ------------------------------------------------------------------------------------------------

def _exp(x):
    if isinstance(x, mpmath.mpf):
        if x > EXP_LIMIT:
            return mpmath.inf
        if x < -EXP_LIMIT:
            return mpmath.mpf(0)
    elif isinstance(x, mpmath.mpc) and abs(x.real) > EXP_LIMIT:
        return mpmath.inf if x.real > 0 else mpmath.mpf(0)
    return mpmath.exp(x)


def _periodic(fn, fname: str):
    def f(x):
        if mpmath.isinf(x) or mpmath.isnan(x):
            return mpmath.nan
        if abs(x) > PERIODIC_LIMIT:
            raise EvaluationError(
                f"σ cannot be evaluated: the argument of {fname} reaches {mpmath.nstr(x, 3)}, beyond "
                f"{PERIODIC_LIMIT:.0e}; rescale the expression"
            )
        return fn(x)

    return f


def _sinh(x):
    return _exp(x) / 2 - _exp(-x) / 2 if abs(x) > 1 else mpmath.sinh(x)


def _cosh(x):
    return _exp(x) / 2 + _exp(-x) / 2


def _tanh(x):
    if mpmath.isinf(x):
        return mpmath.sign(x)
    return mpmath.tanh(x) if abs(x) < EXP_LIMIT else mpmath.sign(x)


def _sigmoid(x):
    if isinstance(x, mpmath.mpf) and x < 0:
        e = _exp(x)
        return e / (1 + e)
    return 1 / (1 + _exp(-x))


def _softplus(x):
    if isinstance(x, mpmath.mpf) and x > 40:
        return x + mpmath.log1p(_exp(-x))
    return mpmath.log1p(_exp(x))


def _sign(x):
    return mpmath.sign(x)


def _heaviside(x, h0=None):
    h0 = mpmath.mpf(0.5) if h0 is None else h0
    return mpmath.mpf(1) if x > 0 else (mpmath.mpf(0) if x < 0 else h0)


def _pow(b, e):
    if b == 0:
        return mpmath.inf if e < 0 else (mpmath.mpf(1) if e == 0 else mpmath.mpf(0))
    try:
        size = abs(e) * abs(mpmath.log(abs(b))) if not mpmath.isinf(b) else mpmath.inf
    except (ValueError, ZeroDivisionError):
        size = mpmath.inf
    if size > EXP_LIMIT:
        grows = (abs(b) > 1) == (e > 0)
        if not grows:
            return mpmath.mpf(0)
        if b > 0 or (isinstance(e, mpmath.mpf) and e == int(e)):
            return mpmath.inf
        return mpmath.nan
    return mpmath.power(b, e)


_FUNCS = {
    sp.exp: _exp,
    sp.sin: _periodic(mpmath.sin, "sin"),
    sp.cos: _periodic(mpmath.cos, "cos"),
    sp.tan: _periodic(mpmath.tan, "tan"),
    sp.cot: _periodic(mpmath.cot, "cot"),
    sp.sec: _periodic(mpmath.sec, "sec"),
    sp.csc: _periodic(mpmath.csc, "csc"),
    sp.tanh: _tanh,
    sp.sinh: _sinh,
    sp.cosh: _cosh,
    sp.erf: lambda x: mpmath.erf(x) if not mpmath.isinf(x) else mpmath.sign(x),
    sp.erfc: lambda x: mpmath.erfc(x) if not mpmath.isinf(x) else 1 - mpmath.sign(x),
    sp.atan: mpmath.atan,
    sp.asinh: mpmath.asinh,
    sp.log: lambda x: mpmath.log(x) if x != 0 else -mpmath.inf,
    sp.Abs: abs,
    sp.sign: _sign,
    sp.floor: lambda x: mpmath.floor(x) if mpmath.isfinite(x) else x,
    sp.ceiling: lambda x: mpmath.ceil(x) if mpmath.isfinite(x) else x,
    Sigmoid: _sigmoid,
    Softplus: _softplus,
}


def evaluate(expr: sp.Basic, t: float, dps: int = 30):
    """σ(t) with mpmath at ``dps`` digits, guarded so that no node takes unbounded work (may return inf/nan)."""
    with mpmath.workdps(dps):
        return _ev(expr, mpmath.mpf(t), dps)


def _ev(e: sp.Basic, t, dps: int):
    if e.is_Symbol:
        return t
    if e.is_Number or e.is_NumberSymbol:
        if e is sp.zoo or e is sp.nan:
            return mpmath.nan
        if e is sp.oo:
            return mpmath.inf
        if e is sp.S.NegativeInfinity:
            return -mpmath.inf
        return mpmath.mpf(sp.Float(e, dps)._mpf_) if e.is_real else mpmath.mpc(complex(e))
    if e is sp.S.ImaginaryUnit:
        return mpmath.mpc(0, 1)
    if e.is_Add:
        return mpmath.fsum(_ev(a, t, dps) for a in e.args)
    if e.is_Mul:
        out = mpmath.mpf(1)
        for a in e.args:
            out = out * _ev(a, t, dps)
        return out
    if e.is_Pow:
        return _pow(_ev(e.base, t, dps), _ev(e.exp, t, dps))
    if isinstance(e, sp.Piecewise):
        for val, cond in e.args:
            if _cond(cond, t, dps):
                return _ev(val, t, dps)
        return mpmath.nan
    if isinstance(e, sp.Max | sp.Min):
        vals = [_ev(a, t, dps) for a in e.args]
        return max(vals) if isinstance(e, sp.Max) else min(vals)
    if isinstance(e, sp.Heaviside):
        args = [_ev(a, t, dps) for a in e.args]
        return _heaviside(*args)
    if isinstance(e, sp.DiracDelta):
        return mpmath.inf if _ev(e.args[0], t, dps) == 0 else mpmath.mpf(0)
    f = _FUNCS.get(e.func)
    if f is not None:
        return f(*(_ev(a, t, dps) for a in e.args))
    # anything else: sympy's own evalf on numeric arguments (bounded: they went through the guards above)
    args = [_ev(a, t, dps) for a in e.args]
    if any(not mpmath.isfinite(a) for a in args):
        return mpmath.nan
    v = e.func(*[sp.Float(a, dps) if isinstance(a, mpmath.mpf) else sp.sympify(complex(a)) for a in args])
    v = v.evalf(dps)
    try:
        return mpmath.mpf(float(v)) if v.is_real else mpmath.mpc(complex(v))
    except TypeError:
        return mpmath.nan


def _cond(c: sp.Basic, t, dps: int) -> bool:
    if c is sp.true:
        return True
    if c is sp.false:
        return False
    if isinstance(c, sp.And):
        return all(_cond(a, t, dps) for a in c.args)
    if isinstance(c, sp.Or):
        return any(_cond(a, t, dps) for a in c.args)
    if isinstance(c, sp.Not):
        return not _cond(c.args[0], t, dps)
    if isinstance(c, sp.core.relational.Relational):
        a, b = _ev(c.lhs, t, dps), _ev(c.rhs, t, dps)
        ops = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}
        return bool(ops[c.rel_op])
    raise ActivationError(f"cannot evaluate the Piecewise condition {c}")


def value(expr: sp.Basic, t: float, dps: int = 30) -> float:
    """σ(t) as a float: nan when σ is complex or undefined there, ±inf when it overflows float64."""
    v = evaluate(expr, t, dps)
    if isinstance(v, mpmath.mpc):
        if v.imag != 0:
            return math.nan
        v = v.real
    try:
        return float(v)
    except (OverflowError, TypeError, ValueError):
        return math.nan


# ------------------------------------------------------------------------------------------------
# Symbolic search for singular points
# ------------------------------------------------------------------------------------------------

_SAFE = (
    sp.exp, sp.sin, sp.cos, sp.tanh, sp.sinh, sp.cosh, sp.erf, sp.erfc, sp.atan, sp.asinh, sp.Abs, sp.sign,
    sp.floor, sp.ceiling, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise, Sigmoid, Softplus,
)


def _z(expr: sp.Basic) -> sp.Symbol | None:
    syms = list(expr.free_symbols)
    return syms[0] if len(syms) == 1 else None


def _roots(arg: sp.Expr, z: sp.Symbol) -> tuple[list[float], bool]:
    """Real zeros of ``arg`` (as floats) and whether the list is known to be complete."""
    if not arg.has(z):
        return [], True
    if arg.is_positive or arg.is_negative:
        return [], True
    try:
        if arg.is_polynomial(z):
            return sorted({float(r) for r in sp.Poly(arg, z).real_roots()}), True
        sols = sp.solve(sp.Eq(arg, 0), z)
    except (NotImplementedError, TypeError, ValueError, sp.PolynomialError):
        return [], False
    out = []
    for s in sols:
        if not s.is_real:
            continue
        try:
            out.append(float(s))
        except TypeError:
            return out, False
    return sorted(set(out)), True


def _periodic_poles(node: sp.Basic, z: sp.Symbol) -> tuple[list[float], bool]:
    """Poles of tan/cot/sec/csc with a linear argument a z + b: the one nearest 0 (there are infinitely many)."""
    arg = node.args[0]
    shift = sp.pi / 2 if isinstance(node, sp.tan | sp.sec) else sp.S.Zero
    p = sp.Poly(arg, z) if arg.is_polynomial(z) else None
    if p is None or p.degree() != 1:
        return [], False
    a, b = (float(c) for c in p.all_coeffs())
    # arg = shift + k pi  <=>  z = (shift + k pi - b) / a; the z nearest 0 has k near (b - shift) / pi
    k0 = round((b - float(shift)) / math.pi)
    cands = [(float(shift) + k * math.pi - b) / a for k in (k0 - 1, k0, k0 + 1)]
    return [min(cands, key=lambda c: (abs(c), -c))], True


def _complex_region(expr: sp.Basic, z: sp.Symbol) -> str | None:
    """A description of where σ is complex (fractional power or log of a negative base), or None."""
    for node in sp.preorder_traversal(expr):
        base = None
        if node.is_Pow and node.exp.is_number and not node.exp.is_integer and node.base.has(z):
            base, what = node.base, f"the base of the fractional power {node}"
        elif isinstance(node, sp.log) and node.args[0].has(z):
            base, what = node.args[0], f"the argument of {node}"
        if base is None or base.is_nonnegative:
            continue
        for t in _SCAN:
            bv = value(base, t)
            if bv < 0:
                return f"{what} is negative at z = {t:g}, so σ is complex there"
    return None


_SCAN = tuple(x / 8 for x in range(-80, 81))


def _candidates(expr: sp.Basic, z: sp.Symbol) -> tuple[list[tuple[float, str]], bool]:
    """Candidate singular points with a reason, and whether the symbolic search covered every node."""
    out: list[tuple[float, str]] = []
    complete = True
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, sp.Basic) or not node.has(z) or node.is_Symbol:
            continue
        if node.is_Add or node.is_Mul:
            continue
        if node.is_Pow:
            if node.exp.is_number:
                if node.exp.is_negative:
                    pts, ok = _roots(node.base, z)
                    out += [(p, f"{node.base} = 0 in {node}") for p in pts]
                    complete &= ok
            elif not (node.base.is_number and node.base.is_positive):
                complete = False
            continue
        if isinstance(node, sp.log):
            pts, ok = _roots(node.args[0], z)
            out += [(p, f"the argument of {node} vanishes") for p in pts]
            complete &= ok
            continue
        if isinstance(node, sp.tan | sp.cot | sp.sec | sp.csc):
            pts, ok = _periodic_poles(node, z)
            out += [(p, f"{node} has poles (one every π/|a| along the real line)") for p in pts]
            complete &= ok
            continue
        if isinstance(node, _SAFE) or isinstance(node, sp.Piecewise):
            continue
        complete = False
    return out, complete


def _order(expr: sp.Basic, a: float) -> tuple[float, float, bool]:
    """Local behaviour of |σ| near ``a``: exponent p of |σ(a ± h)| ~ h^-p, growth of |σ|, and whether it is a log.

    Measured at h = 1e-6, 1e-10, 1e-14 (40 digits): a power law has the same p on both decades, a logarithm
    a p that shrinks (log 1e-14 / log 1e-10 < 1e-10 / 1e-6 on a log scale).
    """
    worst_p, worst_g, log_like = -math.inf, -math.inf, True
    for sgn in (1, -1):
        v = [abs(evaluate(expr, a + sgn * h, 40)) for h in (1e-6, 1e-10, 1e-14)]
        if not all(mpmath.isfinite(x) for x in v):
            return math.inf, math.inf, False
        if v[0] == 0 or v[1] == 0:
            continue
        p1 = float(mpmath.log(v[1] / v[0]) / mpmath.log(1e4))
        p2 = float(mpmath.log(v[2] / v[1]) / mpmath.log(1e4)) if v[2] > 0 else -math.inf
        if p2 > worst_p:
            worst_p, log_like = p2, p2 < 0.8 * p1
        worst_g = max(worst_g, float(v[2] - v[0]))
    return worst_p, worst_g, log_like


def _refine_sign_change(expr: sp.Basic, lo: float, hi: float) -> float:
    flo = value(expr, lo, 20)
    for _ in range(45):
        mid = (lo + hi) / 2
        fm = value(expr, mid, 20)
        if not math.isfinite(fm):
            return mid
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return (lo + hi) / 2


def _refine_max(expr: sp.Basic, lo: float, hi: float) -> float:
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        fa, fb = abs(value(expr, a, 20)), abs(value(expr, b, 20))
        if not math.isfinite(fa):
            return a
        if not math.isfinite(fb):
            return b
        if fa > fb:
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


def _grid_candidates(expr: sp.Basic):
    """Candidate singular points from a grid over [-10, 10] (nearest 0 first): non-finite values, sign changes
    and local maxima of |σ|, each refined by bisection or golden-section search."""
    n = 321
    ts = [-GRID_HALF_WIDTH + 2 * GRID_HALF_WIDTH * i / (n - 1) + 1e-3 for i in range(n)]
    vals = []
    for t in ts:
        v = evaluate(expr, t, 20)
        if isinstance(v, mpmath.mpc) and v.imag != 0:
            raise ActivationError(f"σ = {expr} is complex at z = {t:.4g} (found by a grid scan); write a real form")
        vals.append(value(expr, t, 20))
    why = "found by a scan of [-10, 10]"
    order = sorted(range(n), key=lambda i: abs(ts[i]))
    for i in order:
        t, v = ts[i], vals[i]
        if not math.isfinite(v):
            yield t, f"σ is not finite here ({why})"
            continue
        if i + 1 < n and math.isfinite(vals[i + 1]) and (v > 0) != (vals[i + 1] > 0) and v != 0 and vals[i + 1] != 0:
            yield _refine_sign_change(expr, t, ts[i + 1]), f"σ changes sign with a jump here ({why})"
        if 0 < i < n - 1 and abs(v) > abs(vals[i - 1]) and abs(v) > abs(vals[i + 1]):
            yield _refine_max(expr, ts[i - 1], ts[i + 1]), f"|σ| peaks here ({why})"


def _ordered(cands: list[tuple[float, str]]) -> list[tuple[float, str]]:
    return sorted(cands, key=lambda c: (abs(c[0]), -c[0]))


def _classify(expr: sp.Basic, a: float, why: str) -> Singularity | None:
    """The singularity of σ at ``a``, or None when σ is bounded near ``a`` (removable, a jump, a maximum)."""
    p, g, log_like = _order(expr, a)
    if p <= 0.01 and g < 1e-3:
        return None
    if log_like and p < 0.5:
        return Singularity(round(a, 12), "log", 0.0, why)
    return Singularity(round(a, 12), "pole", max(p, 0.0), why)


def _refuse(name: str, s: Singularity) -> None:
    at = f"z = {s.point:.6g}" + (f" (π/2 ≈ {math.pi / 2:.6g})" if abs(s.point - math.pi / 2) < 1e-9 else "")
    if s.order >= 0.5 - 1e-3:
        raise ActivationError(
            f"activation {name!r} is singular (not finite) at {at}: {s.description}; |σ| grows like "
            f"|z - a|^-{s.order:.2g} there, so ⟨σ²⟩ diverges (σ is not square-integrable against any Gaussian) "
            "and no kernel exists. "
            "Use an activation that is finite on the whole real line"
        )
    kind = "logarithmic" if s.kind == "log" else f"weak (|z - a|^-{s.order:.2g})"
    raise ActivationError(
        f"activation {name!r} has an integrable {kind} singularity at {at}: {s.description}. σ is square-integrable, "
        "but nnft's quadrature assumes σ finite on the real line and would return an inaccurate kernel, and σ' "
        "(for the NTK) is not square-integrable there; regularise it, e.g. replace |z - a| by |z - a| + 1e-3"
    )


@lru_cache(maxsize=1024)
def check(expr: sp.Expr, name: str) -> Admissibility:
    """Analyse σ = ``expr`` (a function of one real symbol); raise :class:`ActivationError` if it is not usable."""
    z = _z(expr)
    if z is None:
        return Admissibility((), None)
    undefined = sorted({str(f.func) for f in expr.atoms(AppliedUndef)})
    if undefined:
        raise ActivationError(
            f"activation {name!r} uses the undefined function(s) {undefined}: nnft can neither evaluate nor print "
            "them; write σ with known functions (tanh, erf, exp, sin, Max, Piecewise, …)"
        )
    where = _complex_region(expr, z)
    if where is not None:
        raise ActivationError(
            f"activation {name!r} is not real-valued on the real line: {where}. Write a real form, e.g. "
            "Abs(z)**(5/2) or Max(z, 0)**(5/2) instead of z**(5/2), or log(Abs(...)) instead of log(...)"
        )
    cands, complete = _candidates(expr, z)
    sings = [s for s in (_classify(expr, a, why) for a, why in _ordered(cands)) if s is not None]
    for s in sings:
        _refuse(name, s)
    if not complete:
        for a, why in _grid_candidates(expr):
            s = _classify(expr, a, why)
            if s is not None:
                _refuse(name, s)
    return Admissibility(tuple(sings), None)


def growth_rates(expr: sp.Expr) -> tuple[float, float, float]:
    """log|σ(t)| / t² at |t| = 60, 120 and 240 (max over ±t; -1 where σ vanishes; inf where it overflows)."""
    out = []
    for radius in (60.0, 120.0, 240.0):
        best = -1.0
        for t in (radius, -radius):
            v = evaluate(expr, t, 50)
            if isinstance(v, mpmath.mpc):
                v = abs(v)
            if mpmath.isnan(v):
                continue
            if mpmath.isinf(v):
                best = math.inf
                continue
            if v != 0:
                best = max(best, float(mpmath.log(abs(v))) / radius**2)
        out.append(best)
    return out[0], out[1], out[2]


def check_growth(expr: sp.Expr, name: str) -> float:
    """The Gaussian growth rate q of σ (|σ| ~ e^{q z²}); refuse σ that grows faster than every e^{q z²}."""
    q60, q120, q240 = growth_rates(expr)
    d1, d2 = q120 - q60, q240 - q120
    if math.isinf(q240) or (q240 > 1e-3 and d2 > 0 and d2 > 0.5 * d1):
        raise ActivationError(
            f"activation {name!r} grows faster than exp(q z²) for every q (log|σ(z)|/z² = {q60:.3g}, {q120:.3g}, "
            f"{q240:.3g} at |z| = 60, 120, 240), so ⟨σ²⟩ diverges at every variance K: no kernel exists"
        )
    # e^{q z²}·(polynomial) gives log|σ|/z² → q at both radii; e^{a z} gives a/z, halving from 60 to 120
    return q120 if q120 > 1e-3 and q120 > 0.8 * q60 else 0.0


__all__ = [
    "Admissibility", "EvaluationError", "Singularity", "check", "check_growth", "evaluate", "growth_rates", "value",
]
