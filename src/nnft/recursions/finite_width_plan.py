"""Compile what the V and K1 evaluator needs for one activation: the derivatives of ⟨σσ⟩ and the moments ⟨σσσσ⟩.

The numeric evaluator (:mod:`nnft.numeric.finite_width`) runs the recursions of :mod:`.vertex` and
:mod:`.nlo` as array stencils; the activation enters only through

* ``⟨σ_aσ_b⟩_K`` and its first and second derivatives in the symmetric entries ``K_aa, K_ab, K_bb``
  (sympy's derivatives of the two-point average, Price's theorem inside ⟨…⟩), generated as one module
  with a joint CSE — the same derivatives the symbolic recursions display;
* the four-variable moments ``⟨σ_aσ_bσ_cσ_d⟩_K``, by coincidence class of the indices (``aaaa``, ``aaab``,
  ``aabb``, ``aabc``, ``abcd``): a generated closed form where :func:`nnft.gaussian.expect` finds one
  (Isserlis for polynomials, the arc-cosine and erf rules for two-variable classes), otherwise the fast
  numerical method of :mod:`nnft.numeric.moments4`.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import sympy as sp

from nnft.activations import Activation, z
from nnft.codegen.module import FunctionSpec, compile_function, compile_module
from nnft.errors import ActivationError
from nnft.gaussian import Kaa, Kab, Kbb, expect_pair, expect_single, is_closed
from nnft.numeric.bivariate import SeparableTwoPoint
from nnft.numeric.finite_width import FiniteWidthPlan
from nnft.numeric.moments4 import QUADRUPLE_PATTERNS, moments4_entries, pattern_codes, sigma_moments4_entries
from nnft.numeric.orthant_moments import piecewise_linear_moments
from nnft.numeric.quadrature_nd import gauss_nd
from nnft.recursions.fluctuation import K, four_point_average

#: Multiplicity classes of a sorted index quadruple, with their representative labels.
MOMENT_CLASSES = {(4,): "aaaa", (3, 1): "aaab", (2, 2): "aabb", (2, 1, 1): "aabc", (1, 1, 1, 1): "abcd"}
_KINDS = {"K_aa": "row", "K_ab": "entry", "K_bb": "col"}


def _check(act: Activation) -> None:
    if act.has_distributional_derivative:
        raise ActivationError(
            f"the 1/n corrections of {act.name!r} are undefined: σ jumps, so the derivatives of ⟨σ_aσ_b⟩ in the "
            "metric that V and K1 propagate through (σ' and σ'') are Dirac deltas; use a continuous activation, "
            "or Monte Carlo (nnft.montecarlo.estimate) for the finite-width statistics of this one"
        )


def pair_specs(f: sp.Expr, pair: str = "pair", single: str = "single") -> list[FunctionSpec]:
    """FunctionSpecs ``pair`` (⟨f_af_b⟩ and its 9 derivatives in K_aa, K_ab, K_bb) and ``single`` (⟨f²⟩, its two
    derivatives in K_aa, and ⟨f⁴⟩) for a function f(z) — σ for V/K1, σ' for the NTK statistics."""
    S = expect_pair(f, f)
    v = {"A": Kaa, "C": Kab, "B": Kbb}
    outs = {"S": S}
    for name in ("A", "C", "B"):
        outs[name] = sp.diff(S, v[name])
    for x, y in ("AA", "AC", "AB", "CC", "CB", "BB"):
        outs[x + y] = sp.diff(S, v[x], v[y])
    s1 = expect_single(f, f)
    one = {"S": s1, "A": sp.diff(s1, Kaa), "AA": sp.diff(s1, Kaa, 2), "M4": expect_single(f**2, f**2)}
    return [FunctionSpec(pair, outs, (Kaa, Kab, Kbb), dict(_KINDS)),
            FunctionSpec(single, one, (Kaa,), {"K_aa": "entry"})]


def two_point_specs(act: Activation) -> list[FunctionSpec]:
    """FunctionSpecs ``pair`` (S and its 9 derivatives), ``single`` (⟨σ²⟩, 2 derivatives, ⟨σ⁴⟩), ``variance`` (⟨σ²⟩)."""
    specs = pair_specs(act.expr)
    return [*specs, FunctionSpec("variance", {"S": specs[1].outputs["S"]}, (Kaa,), {"K_aa": "entry"})]


def pair_callable(act: Activation, specs: list[FunctionSpec], mod, backend: str, prefix: str = ""):
    """The compiled pair map of ``specs[0]``: on one bivariate rule per entry when its averages separate, else as is."""
    pair = getattr(mod, specs[0].name)
    sep = separable_spec(specs[0], f"{specs[0].name}_separable")
    if sep is None:
        return pair
    spec, fa, fb, terms = sep
    fast = compile_module(f"{prefix}two_point_separable", [spec], backend,
                          key=f"{prefix}two_point_separable|{act.key()}")
    ca = compile_function(fa, (z,), name=f"{prefix}price_a_{act.name}")
    cb = compile_function(fb, (z,), name=f"{prefix}price_b_{act.name}")
    return SeparableTwoPoint(getattr(fast, spec.name), [getattr(ca, k) for k in fa], [getattr(cb, k) for k in fb],
                             terms, pair)


def _class_args(labels: str) -> tuple[sp.Symbol, ...]:
    distinct = sorted(set(labels))
    return tuple(K((a, b)) for i, a in enumerate(distinct) for b in distinct[i:])


def moment_specs(act: Activation) -> tuple[list[FunctionSpec], tuple[str, ...]]:
    """Closed-form moment classes as FunctionSpecs (1-D over entries) and the names of those left to quadrature."""
    specs, numeric = [], []
    for labels in MOMENT_CLASSES.values():
        expr = four_point_average(act, tuple(labels))
        if is_closed(expr):
            args = _class_args(labels)
            specs.append(FunctionSpec(f"m_{labels}", {"M": expr}, args, {a.name: "entry" for a in args}))
        else:
            numeric.append(labels)
    return specs, tuple(numeric)


def _sorted_quadruples(P: int) -> np.ndarray:
    return np.array(list(itertools.combinations_with_replacement(range(P), 4)), dtype=np.int64).reshape(-1, 4)


def _class_of(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted quadruples: the multiplicity class key and the distinct indices ordered by multiplicity."""
    code = pattern_codes(q)
    cls = np.empty(q.shape[0], dtype=np.int64)
    reps = np.zeros_like(q)
    for c, (counts, cols) in QUADRUPLE_PATTERNS.items():
        rows = np.flatnonzero(code == c)
        cls[rows] = list(MOMENT_CLASSES).index(counts)
        reps[rows, :len(cols)] = q[rows][:, cols]
    return cls, reps


@lru_cache(maxsize=16)
def _index_plan(P: int):
    q = _sorted_quadruples(P)
    cls, reps = _class_of(q)
    return q, cls, reps


def _scatter(P: int, q: np.ndarray, vals: np.ndarray) -> np.ndarray:
    M = np.empty((P, P, P, P))
    for perm in set(itertools.permutations(range(4))):
        M[q[:, perm[0]], q[:, perm[1]], q[:, perm[2]], q[:, perm[3]]] = vals
    return M


class _Moments:
    """``⟨σ_aσ_bσ_cσ_d⟩_K`` for all quadruples: generated closed forms per class, numerics for the rest."""

    def __init__(self, act: Activation, backend: str) -> None:
        specs, self.numeric = moment_specs(act)
        self.closed = {s.name[2:]: s for s in specs}
        self.mod = compile_module("moments4", specs, backend, key=f"moments4|{act.key()}") if specs else None
        self.sigma = act.numpy() if self.numeric else None
        self.kinks = tuple(float(k) for k in act.kinks)
        self.act = act

    def __call__(self, K_: np.ndarray) -> np.ndarray:
        P = K_.shape[0]
        q, cls, reps = _index_plan(P)
        vals = np.empty(q.shape[0])
        numeric_rows = []
        for c, labels in enumerate(MOMENT_CLASSES.values()):
            rows = np.flatnonzero(cls == c)
            if rows.size == 0:
                continue
            if labels in self.closed:
                k = len(set(labels))
                idx = reps[rows, :k]
                args = [K_[idx[:, i], idx[:, j]] for i in range(k) for j in range(i, k)]
                (out,) = getattr(self.mod, f"m_{labels}")(*args)
                vals[rows] = np.broadcast_to(out, rows.shape)
            else:
                numeric_rows.append(rows)
        if numeric_rows:
            rows = np.concatenate(numeric_rows)
            vals[rows] = _numeric_moments(self.act, self.sigma, K_, q[rows], self.kinks)
        return _scatter(P, q, vals)


def _piecewise_linear_slopes(act: Activation) -> tuple[float, float] | None:
    """(left, right) slopes when σ(z) = right·z (z > 0), left·z (z < 0): relu, leaky relu, abs, linear."""
    if act.homogeneity != 1 or any(k != 0 for k in act.kinks):
        return None
    # positively homogeneous of degree 1 with its only kink at 0: σ(z) = σ(1)·z for z > 0, −σ(−1)·z for z < 0
    right, left = act.expr.subs(z, 1), -act.expr.subs(z, -1)
    if not (right.is_number and left.is_number):
        return None
    return float(left), float(right)


def _numeric_moments(act: Activation, sigma, K_: np.ndarray, quads: np.ndarray, kinks: tuple[float, ...]) -> np.ndarray:
    """The moment classes without a closed form: exact orthant moments for piecewise-linear σ
    (:mod:`nnft.numeric.orthant_moments`), batched product rules for smooth σ (:mod:`nnft.numeric.moments4`),
    and the tensor rule of :mod:`nnft.numeric.quadrature_nd` per entry for other kinked σ."""
    slopes = _piecewise_linear_slopes(act)
    if slopes is not None:
        left, right = slopes
        return moments4_entries(K_, quads, lambda S, p: piecewise_linear_moments(S, left, right, p))
    if not kinks:
        return sigma_moments4_entries(sigma, K_, quads)

    def per_covariance(S: np.ndarray, powers: tuple[int, ...]) -> np.ndarray:
        def f(*zs):
            return np.prod([sigma(zz) ** c for zz, c in zip(zs, powers, strict=True)], axis=0)

        return np.array([float(gauss_nd(f, s, tol=1e-10)) for s in S])

    return moments4_entries(K_, quads, per_covariance)


def _separate(f: sp.Expr, za: sp.Symbol, zb: sp.Symbol, max_terms: int = 48):
    """``f(z_a, z_b)`` as a list of products ``g(z_a)·h(z_b)`` (as is, factored, or expanded), or None."""

    def split(term):
        ga, gb = term.as_independent(zb, as_Add=False)
        return (ga, gb) if ga.free_symbols <= {za} and gb.free_symbols <= {zb} else None

    for cand in (f, sp.factor(f)):
        one = split(cand)
        if one is not None:
            return [one]
    parts = [split(t) for t in sp.Add.make_args(sp.expand(f))]
    if len(parts) > max_terms or any(p is None for p in parts):
        return None
    return parts


def separable_pair_spec(act: Activation) -> tuple[FunctionSpec, dict[str, sp.Expr], dict[str, sp.Expr],
                                                  list[tuple[int, int]]] | None:
    """The pair map with its Gaussian averages as inputs, when each is ⟨f(z_a) g(z_b)⟩ (Price terms of ⟨σσ⟩).

    Returns ``(spec, fa, fb, terms)``: ``spec`` takes ``(K_aa, K_ab, K_bb, E_0, …)``; ``fa``/``fb`` the 1-D
    factors (expressions in z) and ``terms[t] = (i, j)`` the factors of ``E_t``; None when the map is closed
    or an average does not factor.
    """
    return separable_spec(two_point_specs(act)[0])


def separable_spec(pair: FunctionSpec, name: str = "pair_separable") -> (
        tuple[FunctionSpec, dict[str, sp.Expr], dict[str, sp.Expr], list[tuple[int, int]]] | None):
    """:func:`separable_pair_spec` for any pair FunctionSpec in ``(K_aa, K_ab, K_bb)`` (e.g. ⟨σ'σ'⟩'s)."""
    from nnft.gaussian import Expectation

    nodes = sorted(set().union(*(e.atoms(Expectation) for e in pair.outputs.values())), key=sp.srepr)
    if not nodes:
        return None
    fa: dict[str, sp.Expr] = {}
    fb: dict[str, sp.Expr] = {}
    terms: list[tuple[int, int]] = []
    repl, syms = {}, []

    def factor_index(store: dict[str, sp.Expr], expr: sp.Expr) -> int:
        for k, e in store.items():
            if e == expr:
                return int(k[1:])
        store[f"f{len(store)}"] = expr
        return len(store) - 1

    for node in nodes:
        integrand, variables = node.args[0], tuple(node.args[1])
        if len(variables) != 2 or tuple(v.name for v in variables) != ("z_a", "z_b"):
            return None
        za, zb = variables
        pieces = _separate(integrand, za, zb)
        if pieces is None:
            return None
        total = sp.Integer(0)
        for ga, gb in pieces:
            t = len(terms)
            terms.append((factor_index(fa, ga.subs(za, z)), factor_index(fb, gb.subs(zb, z))))
            sym = sp.Symbol(f"E_{t}")
            syms.append(sym)
            total += sym
        repl[node] = total
    outputs = {k: e.xreplace(repl) for k, e in pair.outputs.items()}
    kinds = dict(_KINDS) | {s.name: "entry" for s in syms}
    return FunctionSpec(name, outputs, (Kaa, Kab, Kbb, *syms), kinds), fa, fb, terms


@lru_cache(maxsize=32)
def finite_width_plan(act: Activation, backend: str = "numpy") -> FiniteWidthPlan:
    """The compiled :class:`nnft.numeric.finite_width.FiniteWidthPlan` of activation ``act`` (cached)."""
    _check(act)
    specs = two_point_specs(act)
    mod = compile_module("two_point_derivatives", specs, backend, key=f"two_point_derivatives|{act.key()}")
    two_point = pair_callable(act, specs, mod, backend)
    return FiniteWidthPlan(two_point=two_point, single=mod.single, moments4=_Moments(act, backend),
                           variance=mod.variance)


__all__ = ["MOMENT_CLASSES", "finite_width_plan", "moment_specs", "pair_callable", "pair_specs", "separable_spec",
           "two_point_specs"]
