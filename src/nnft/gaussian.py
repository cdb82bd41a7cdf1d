"""Symbolic Gaussian expectations ⟨f(z_a, z_b, …)⟩_K: closed forms first, an unevaluated node otherwise.

The engine never names an activation. Averages over any number of variables go through :func:`expect`
(Isserlis' theorem for polynomials, factorisation over independent blocks, the rules below for one and
two variables, an :class:`Expectation` node otherwise). Two-variable averages ⟨f(z_a) g(z_b)⟩ over a zero-mean Gaussian
with covariance ``[[K_aa, K_ab], [K_ab, K_bb]]`` are found by a table of *rules*, each of which
recognises a class of functions from the expression itself:

* :class:`HomogeneousRule` — piecewise monomials ``c₊ z^n Θ(z) + c₋ (−z)^n Θ(−z)``, n ∈ {0, 1, 2}
  (linear, relu, leaky relu, |z|, step, sign, z²): the arc-cosine kernels of Cho & Saul (NIPS 2009),
  ``⟨Θ(z_a)Θ(z_b) z_a^n z_b^n⟩ = (K_aa K_bb)^{n/2} J_n(θ) / (2π)``, ``θ = arccos(K_ab/√(K_aa K_bb))``,
  ``J_0 = π − θ``, ``J_1 = sin θ + (π − θ) cos θ``, ``J_2 = 3 sin θ cos θ + (π − θ)(1 + 2 cos²θ)``;
  the mixed-sign pieces follow from ``K_ab → −K_ab``, i.e. ``θ → π − θ``.
* :class:`PolyGaussExpRule` — finite sums of ``c z^m exp(q z² + a z)`` with Re q ≤ 0 and complex a
  (polynomials, exp, sin, cos, sinh, cosh, Gaussian bumps such as erf′): completing the square,
  ``⟨p(z) e^{−½ zᵀAz + aᵀz}⟩_K = det(1 + KA)^{−1/2} e^{½ aᵀK′a} ⟨p(y)⟩_{N(K′a, K′)}``, ``K′ = (1 + KA)^{−1}K``,
  and the remaining polynomial moment by Isserlis' theorem.
* :class:`ErfRule` — sums of ``c z^m e^{q z²} erf(b z)`` (erf, GELU, erf′): Stein's lemma and completing the
  square reduce them to ``⟨erf(b z_a) erf(b′ z_b)⟩ = (2/π) arcsin(2bb′K_ab /
  √((1 + 2b²K_aa)(1 + 2b′²K_bb)))`` (Williams, NIPS 1996).

Everything else stays an :class:`Expectation` node, which prints to LaTeX as ⟨…⟩_K and to code as a
call into numerical quadrature. Price's theorem (``∂⟨f⟩/∂K_ab = ⟨∂_a∂_b f⟩``, ``∂⟨f⟩/∂K_aa = ½⟨∂_a² f⟩``)
differentiates the node. Numerically delicate pieces print as runtime calls (:mod:`nnft.functions`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache, lru_cache

import sympy as sp

from nnft.activations import _find_kinks, z
from nnft.errors import InputError
from nnft.functions import AsinGap, GeoMean, SafeAcos, SafeSqrt, _RuntimeFunction, corr, unsafe

#: Covariance entries of the two-variable average: variances K_aa, K_bb > 0 and covariance K_ab.
Kaa = sp.Symbol("K_aa", positive=True)
Kbb = sp.Symbol("K_bb", positive=True)
Kab = sp.Symbol("K_ab", real=True)
#: The angle θ_ab = arccos(K_ab/√(K_aa K_bb)) ∈ [0, π] when it is carried as a state of its own (see
#: :func:`expect_pair_angle`): K_ab alone fixes θ only to √eps near θ = 0 and θ = π.
theta_ab = sp.Symbol("theta_ab", nonnegative=True)
#: Integration variables of the two-variable average.
za = sp.Symbol("z_a", real=True)
zb = sp.Symbol("z_b", real=True)


def _upper_pairs(k: int) -> list[tuple[int, int]]:
    """Index pairs (i, j), i ≤ j, of the upper triangle of a k × k matrix, row by row."""
    return [(i, j) for i in range(k) for j in range(i, k)]


def _canonical_cov(cov, k: int) -> tuple[sp.Expr, ...]:
    """The upper triangle (row by row) of a symmetric k × k covariance given as a matrix or already flat."""
    if isinstance(cov, sp.MatrixBase) or (
        isinstance(cov, list | tuple) and cov and all(isinstance(r, list | tuple) for r in cov)
    ):
        M = sp.Matrix(cov)
        if M.shape != (k, k):
            raise InputError(f"covariance has shape {M.shape}, need ({k}, {k}) for {k} variables")
        for i, j in _upper_pairs(k):
            if i != j and sp.expand(M[i, j] - M[j, i]) != 0:
                raise InputError(
                    f"covariance is not symmetric: entry ({i}, {j}) is {M[i, j]} but ({j}, {i}) is {M[j, i]}; "
                    "pass a symmetric matrix"
                )
        return tuple(sp.sympify(M[i, j], strict=True) for i, j in _upper_pairs(k))
    flat = tuple(sp.sympify(c, strict=True) for c in cov)
    if len(flat) != k * (k + 1) // 2:
        raise InputError(
            f"Expectation over {k} variable(s) takes a {k}×{k} symmetric matrix or its upper triangle row by row "
            f"({k * (k + 1) // 2} entries; one variable: (K,), two: (K_aa, K_ab, K_bb)); got {len(flat)} entries"
        )
    return flat


class Expectation(sp.Expr):
    """An unevaluated Gaussian average ``⟨f(z_1, …, z_k)⟩_K`` over z ~ N(0, K), any number k ≥ 1 of variables.

    ``Expectation(f, (z_a, z_b), (K_aa, K_ab, K_bb))``; with a single variable,
    ``Expectation(f, (z_a,), (K_aa,))``; in general ``Expectation(f, variables, K)`` with ``K`` a k × k
    symmetric sympy matrix (or nested list), or its upper triangle row by row. The covariance is stored
    as that upper triangle (:attr:`cov`), so equal averages are equal nodes whichever form built them.
    The covariance entries may be any sympy expressions. Differentiation with respect to a symbol
    inside the covariance uses Price's theorem (:meth:`_eval_derivative`).
    """

    is_commutative = True
    is_real = True

    def __new__(cls, integrand, variables, cov):
        variables = sp.Tuple(*variables)
        k = len(variables)
        if k < 1:
            raise InputError("Expectation needs at least one integration variable")
        if len(set(variables)) != k:
            raise InputError(f"Expectation variables must be distinct, got {tuple(variables)}")
        cov = sp.Tuple(*_canonical_cov(cov, k))
        return super().__new__(cls, sp.sympify(integrand, strict=True), variables, cov)

    @property
    def integrand(self) -> sp.Expr:
        return self.args[0]

    @property
    def variables(self) -> tuple[sp.Symbol, ...]:
        return tuple(self.args[1])

    @property
    def cov(self) -> tuple[sp.Expr, ...]:
        """The covariance entries: the upper triangle row by row (``(K,)``; ``(K_aa, K_ab, K_bb)``; …)."""
        return tuple(self.args[2])

    @property
    def cov_matrix(self) -> sp.Matrix:
        """The covariance as a symmetric k × k matrix."""
        k = len(self.variables)
        M = sp.zeros(k, k)
        for (i, j), c in zip(_upper_pairs(k), self.cov, strict=True):
            M[i, j] = M[j, i] = c
        return M

    def _eval_derivative(self, s):
        """Price's theorem: ``∂⟨f⟩/∂K_ij = ⟨∂_i∂_j f⟩`` (i ≠ j, K_ij = K_ji one variable), ``½⟨∂_i² f⟩`` for i = j."""
        f, v = self.integrand, self.variables
        out = sp.S.Zero
        if len(v) == 1:
            dk = sp.diff(self.cov[0], s)
            if dk != 0:
                out += dk * Expectation(sp.diff(f, v[0], 2) / 2, v, self.cov)
            return out
        pairs = _upper_pairs(len(v))
        # two variables: the historical order (K_aa, K_bb, K_ab); the sum does not depend on it
        order = [0, 2, 1] if len(v) == 2 else range(len(pairs))
        for p in order:
            i, j = pairs[p]
            dk = sp.diff(self.cov[p], s)
            if dk != 0:
                d2 = sp.diff(f, v[i], 2) / 2 if i == j else sp.diff(f, v[i], v[j])
                out += dk * Expectation(d2, v, self.cov)
        if s not in v and f.has(s):  # an integrand that depends on s itself
            out += Expectation(sp.diff(f, s), v, self.cov)
        return out

    def _eval_subs(self, old, new):
        if old in self.variables:
            return self
        return None

    def _latex(self, printer, exp=None) -> str:
        f = printer._print(self.integrand)
        if len(self.variables) == 1:
            sub = printer._print(self.cov[0])
        elif len(self.variables) == 2:
            sub = printer._print(sp.Matrix([[self.cov[0], self.cov[1]], [self.cov[1], self.cov[2]]]))
            sub = "K" if self.cov == (Kaa, Kab, Kbb) else sub
        else:
            named = all(isinstance(v, sp.Symbol) and v.name.startswith("z_") and v.name != "z_" for v in self.variables)
            standard = named and self.cov_matrix == covariance_matrix(self.variables)
            sub = "K" if standard else printer._print(self.cov_matrix)
        base = rf"\left\langle {f} \right\rangle_{{{sub}}}"
        return base if exp is None else rf"{base}^{{{exp}}}"

    def _sympystr(self, printer) -> str:
        return f"E[{printer._print(self.integrand)}; cov={printer._print(self.args[2])}]"

    def separable(self) -> tuple[sp.Expr, ...] | None:
        """``(f_1(z), …, f_k(z))`` when the integrand is ``f_1(z_1)⋯f_k(z_k)`` (k ≥ 2), else ``None``."""
        if len(self.variables) == 1:
            return None
        v = self.variables
        parts = [sp.S.One] * len(v)
        for factor in sp.Mul.make_args(self.integrand):
            fs = factor.free_symbols
            inside = [i for i, x in enumerate(v) if x in fs]
            if len(inside) > 1:
                return None
            parts[inside[0] if inside else 0] *= factor
        return tuple(p.subs(x, z) for p, x in zip(parts, v, strict=True))

    def kinks(self) -> tuple[tuple[float, ...], ...]:
        """Points where the integrand is non-smooth, per variable (for quadrature)."""
        return tuple(_find_kinks(self.integrand.subs(v, z)) for v in self.variables)

    def doit(self, **hints):
        return self


# ------------------------------------------------------------------------------------------------
# Isserlis / Wick for polynomials
# ------------------------------------------------------------------------------------------------

def isserlis(poly: sp.Expr, variables: tuple[sp.Symbol, ...], cov, mean=None) -> sp.Expr:
    """``E[poly(z)]`` for z ~ N(mean, cov) by Isserlis' (Wick's) theorem, any number of variables.

    ``cov`` is a square sympy matrix (or nested list) indexed like ``variables``; ``mean`` an optional
    vector. For zero mean, ``E[z_{i1}…z_{i2k}] = Σ_{pairings} Π K_{ij}``, implemented by the recursion
    ``E[z_i F] = Σ_j K_ij E[∂_j F]`` (Stein), which sums all pairings without listing them.
    """
    cov = sp.Matrix(cov)
    n = len(variables)
    if cov.shape != (n, n):
        raise ValueError(f"covariance has shape {cov.shape}, need ({n}, {n}) for variables {variables}")
    expr = sp.expand(poly)
    if mean is not None:
        expr = sp.expand(expr.subs({v: v + m for v, m in zip(variables, mean, strict=True)}, simultaneous=True))
    p = sp.Poly(expr, *variables)

    @cache
    def moment(powers: tuple[int, ...]) -> sp.Expr:
        if sum(powers) == 0:
            return sp.S.One
        if sum(powers) % 2:
            return sp.S.Zero
        i = next(k for k, e in enumerate(powers) if e)
        rest = list(powers)
        rest[i] -= 1
        total = sp.S.Zero
        for j in range(n):
            if rest[j]:
                lower = list(rest)
                coeff = lower[j]
                lower[j] -= 1
                total += cov[i, j] * coeff * moment(tuple(lower))
        return total

    return sp.expand(sum((c * moment(tuple(m)) for m, c in p.terms()), sp.S.Zero))


# ------------------------------------------------------------------------------------------------
# Rules: each recognises a class of f(z) and averages products of two members in closed form
# ------------------------------------------------------------------------------------------------

_p = sp.Symbol("p", positive=True)


class Rule:
    """A closed-form rule: ``match(f)`` returns data describing f or ``None``; ``pair`` averages."""

    name = "rule"

    def match(self, f: sp.Expr):  # pragma: no cover - interface
        raise NotImplementedError

    def pair(self, da, db) -> sp.Expr | None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class _Homog:
    n: int
    cp: sp.Expr
    cm: sp.Expr


class HomogeneousRule(Rule):
    """Piecewise monomials ``c₊ z^n`` (z > 0), ``c₋ (−z)^n`` (z < 0): arc-cosine kernels (Cho & Saul 2009)."""

    name = "arc-cosine"

    def match(self, f):
        f = unsafe(f)
        if f.has(sp.exp, sp.erf, sp.sin, sp.cos, sp.tanh, sp.log):
            return None
        fp = sp.simplify(f.subs(z, _p))
        fm = sp.simplify(f.subs(z, -_p))
        for n in (0, 1, 2):
            cp = sp.simplify(fp / _p**n)
            cm = sp.simplify(fm / _p**n)
            if not cp.free_symbols and not cm.free_symbols:
                return _Homog(n, cp, cm)
        return None

    def pair(self, da: _Homog, db: _Homog):
        if da.n != db.n:
            return None
        n = da.n
        c_ab = corr(Kab, Kaa, Kbb)
        theta = SafeAcos(c_ab)
        sin_t = SafeSqrt(1 - c_ab**2)
        same = da.cp * db.cp + da.cm * db.cm
        cross = da.cp * db.cm + da.cm * db.cp

        def Jn(sign):
            # J_n at θ (sign=+1) or at π − θ (sign=−1), with cos(π − θ) = −cos θ, sin(π − θ) = sin θ
            c = sign * c_ab
            t = theta if sign > 0 else sp.pi - theta
            if n == 0:
                return sp.pi - t
            if n == 1:
                return sin_t + (sp.pi - t) * c
            return 3 * sin_t * c + (sp.pi - t) * (1 + 2 * c**2)

        scale = c_ab.args[1] ** n if n else sp.S.One  # the shared √(K_aa K_bb) of the correlation
        out = sp.factor_terms(scale / (2 * sp.pi) * (same * Jn(+1) + cross * Jn(-1)))
        if not out.has(SafeAcos):
            # θ cancelled (linear, z²): a polynomial in the covariance entries, K_ab itself for σ = z
            out = sp.expand(sp.simplify(unsafe(out)))
        return out

    def single(self, da: _Homog, db: _Homog, K: sp.Expr) -> sp.Expr:
        """⟨f(z) g(z)⟩_K: the product is a piecewise monomial of degree n + m."""
        k = da.n + db.n
        moment = sp.gamma(sp.Rational(k + 1, 2)) * 2 ** sp.Rational(k, 2) / sp.sqrt(sp.pi)  # E|u|^k
        return sp.simplify((da.cp * db.cp + da.cm * db.cm) / 2 * moment) * K ** sp.Rational(k, 2)  # exact: no nsimplify


def _z_degree(fac: sp.Expr) -> int:
    """k when the factor is z**k (k ≥ 1), else 0."""
    if fac == z:
        return 1
    if fac.is_Pow and fac.base == z and fac.exp.is_Integer and fac.exp > 0:
        return int(fac.exp)
    return 0


@dataclass(frozen=True)
class _PGE:
    terms: tuple[tuple[sp.Expr, int, sp.Expr, sp.Expr], ...]  # (c, m, q, a): c z^m exp(q z^2 + a z)


class PolyGaussExpRule(Rule):
    """Sums of ``c z^m exp(q z² + a z)``, Re q ≤ 0: completing the square plus Isserlis."""

    name = "poly-gauss-exp"

    def match(self, f):
        f = unsafe(f)
        if f.has(sp.Piecewise, sp.Heaviside, sp.Abs, sp.sign, sp.Max, sp.Min, sp.erf, sp.tanh, sp.log):
            return None
        g = sp.powsimp(sp.expand(f.rewrite(sp.exp)), combine="exp")
        g = sp.powsimp(sp.expand(g), combine="exp")
        terms = []
        for term in sp.Add.make_args(g):
            c, m, expo = sp.S.One, 0, sp.S.Zero
            for fac in sp.Mul.make_args(term):
                if not fac.has(z):
                    c *= fac
                elif _z_degree(fac):
                    m += _z_degree(fac)
                elif isinstance(fac, sp.exp):
                    expo += fac.args[0]
                elif fac.is_Pow and isinstance(fac.base, sp.exp) and fac.exp.is_Integer:
                    expo += fac.base.args[0] * fac.exp
                else:
                    return None
            poly = sp.Poly(sp.expand(expo), z) if expo.has(z) else None
            if poly is not None and poly.degree() > 2:
                return None
            q = poly.coeff_monomial(z**2) if poly is not None else sp.S.Zero
            a = poly.coeff_monomial(z) if poly is not None else sp.S.Zero
            c0 = poly.coeff_monomial(1) if poly is not None else sp.S.Zero
            if sp.re(q).is_positive:
                return None
            terms.append((c * sp.exp(c0), m, q, a))
        return _PGE(tuple(terms))

    def pair(self, da: _PGE, db: _PGE, cov=None) -> sp.Expr:
        K = sp.Matrix([[Kaa, Kab], [Kab, Kbb]]) if cov is None else cov
        total = sp.S.Zero
        for (c1, m1, q1, a1), (c2, m2, q2, a2) in itertools.product(da.terms, db.terms):
            total += _pge_pair(c1, m1, q1, a1, c2, m2, q2, a2, K)
        return _realify(total)


def _pge_pair(c1, m1, q1, a1, c2, m2, q2, a2, K) -> sp.Expr:
    A = sp.diag(-2 * q1, -2 * q2)
    M = sp.eye(2) + K * A
    if q1 == 0 and q2 == 0:
        Kp, pref = K, sp.S.One
    else:
        det = sp.factor(sp.expand(M.det()))
        Kp = (M.inv() * K).applyfunc(lambda e: sp.factor(sp.cancel(e)))
        pref = 1 / sp.sqrt(det)
    avec = sp.Matrix([a1, a2])
    mu = Kp * avec
    expo = sp.expand((avec.T * Kp * avec)[0, 0] / 2)
    poly = isserlis(za**m1 * zb**m2, (za, zb), Kp, mean=list(mu))
    return c1 * c2 * pref * sp.exp(expo) * poly


def _realify(expr: sp.Expr) -> sp.Expr:
    expr = sp.expand(expr)
    if expr.has(sp.I):
        expr = sp.expand(sp.re(sp.expand_complex(expr)))
    return sp.powsimp(expr, combine="exp")


@dataclass(frozen=True)
class _Erf:
    terms: tuple[tuple[sp.Expr, int, sp.Expr, sp.Expr | None], ...]  # (c, m, q, b): c z^m e^{q z²} erf(b z)


class ErfRule(Rule):
    """Sums of ``c z^m exp(q z²) erf(b z)^k`` (k ∈ {0, 1}, q ≤ 0) with at least one erf: erf, GELU, erf′ …

    Reduced to the arcsine kernel (Williams 1996) ``⟨erf(α y_a) erf(β y_b)⟩ = (2/π) arcsin(2αβK_ab /
    √((1 + 2α²K_aa)(1 + 2β²K_bb)))`` by two exact steps applied recursively: a Gaussian factor
    ``e^{q_a y_a² + q_b y_b²}`` is absorbed by completing the square (``K → (1 + KA)^{−1}K``, weight
    ``det(1 + KA)^{−1/2}``, ``A = diag(−2q_a, −2q_b)``), and a polynomial factor is lowered by Stein's lemma
    ``⟨y_i F⟩ = Σ_j K_ij ⟨∂_j F⟩``, where ``∂ erf(αy) = (2α/√π) e^{−α²y²}`` feeds back into the first step.
    All means stay zero, so ⟨erf⟩ = 0 and ⟨1⟩ = 1 end the recursion.
    """

    name = "arcsine"

    def match(self, f):
        f = unsafe(f)
        if f.has(sp.Piecewise, sp.Heaviside, sp.Abs, sp.sign, sp.Max, sp.Min, sp.tanh, sp.log, sp.sin, sp.cos):
            return None
        g = sp.powsimp(sp.expand(f), combine="exp")
        terms = []
        for term in sp.Add.make_args(g):
            c, m, q, b = sp.S.One, 0, sp.S.Zero, None
            for fac in sp.Mul.make_args(term):
                if not fac.has(z):
                    c *= fac
                elif _z_degree(fac):
                    m += _z_degree(fac)
                elif isinstance(fac, sp.exp):
                    poly = sp.Poly(sp.expand(fac.args[0]), z)
                    if poly.degree() > 2 or poly.coeff_monomial(z) != 0:
                        return None
                    q += poly.coeff_monomial(z**2)
                    c *= sp.exp(poly.coeff_monomial(1))
                elif isinstance(fac, sp.erf) and b is None:
                    b = sp.simplify(fac.args[0] / z)
                    if b.has(z) or b == 0:
                        return None
                else:
                    return None
            if not (q.is_real and (q <= 0) == sp.true):
                return None
            terms.append((c, m, q, b))
        if not any(t[3] is not None for t in terms):
            return None
        return _Erf(tuple(terms))

    def pair(self, da: _Erf, db: _Erf, cov=None) -> sp.Expr:
        K = sp.Matrix([[Kaa, Kab], [Kab, Kbb]]) if cov is None else cov
        total = sp.S.Zero
        for (c1, m1, q1, b1), (c2, m2, q2, b2) in itertools.product(da.terms, db.terms):
            total += c1 * c2 * _erf_moment(m1, m2, q1, q2, b1, b2, sp.ImmutableMatrix(K))
        return total


@lru_cache(maxsize=4096)
def _erf_moment(ma: int, mb: int, qa, qb, ea, eb, K: sp.ImmutableMatrix) -> sp.Expr:
    """``⟨y_a^ma y_b^mb e^{q_a y_a² + q_b y_b²} erf(e_a y_a) erf(e_b y_b)⟩`` over N(0, K); an erf is absent if None."""
    if qa != 0 or qb != 0:
        A = sp.diag(-2 * qa, -2 * qb)
        M = sp.eye(2) + K * A
        det = sp.factor(sp.expand(M.det()))
        Kp = sp.ImmutableMatrix((M.inv() * K).applyfunc(lambda e: sp.factor(sp.cancel(e))))
        return _erf_moment(ma, mb, sp.S.Zero, sp.S.Zero, ea, eb, Kp) / sp.sqrt(det)
    if ma == 0 and mb > 0:  # lower the polynomial in y_b: swap roles
        Ks = sp.ImmutableMatrix([[K[1, 1], K[0, 1]], [K[0, 1], K[0, 0]]])
        return _erf_moment(mb, 0, qb, qa, eb, ea, Ks)
    if ma > 0:
        out = sp.S.Zero
        if ma >= 2:
            out += K[0, 0] * (ma - 1) * _erf_moment(ma - 2, mb, 0, 0, ea, eb, K)
        if ea is not None:
            out += K[0, 0] * 2 * ea / sp.sqrt(sp.pi) * _erf_moment(ma - 1, mb, -ea**2, 0, None, eb, K)
        if mb >= 1:
            out += K[0, 1] * mb * _erf_moment(ma - 1, mb - 1, 0, 0, ea, eb, K)
        if eb is not None:
            out += K[0, 1] * 2 * eb / sp.sqrt(sp.pi) * _erf_moment(ma - 1, mb, 0, -eb**2, ea, None, K)
        return out
    if ea is not None and eb is not None:
        # arcsin(num/r), r² = (1 + 2e_a²K_aa)(1 + 2e_b²K_bb); the gap r² − num² written through det K, so
        # nearly parallel inputs keep eps accuracy (AsinGap)
        A, B = 1 + 2 * ea**2 * K[0, 0], 1 + 2 * eb**2 * K[1, 1]
        num = 2 * ea * eb * K[0, 1]
        gap = 1 + 2 * ea**2 * K[0, 0] + 2 * eb**2 * K[1, 1] + 4 * ea**2 * eb**2 * (K[0, 0] * K[1, 1] - K[0, 1] ** 2)
        return 2 / sp.pi * AsinGap(num, sp.sqrt(A * B), gap)
    if ea is not None or eb is not None:
        return sp.S.Zero
    return sp.S.One


RULES: tuple[Rule, ...] = (HomogeneousRule(), ErfRule(), PolyGaussExpRule())


# ------------------------------------------------------------------------------------------------
# The carried angle: cancellation-free forms for nearly parallel (or antiparallel) inputs
# ------------------------------------------------------------------------------------------------

def _j1(t: sp.Expr) -> sp.Expr:
    """Cho–Saul's degree-1 angular function ``J_1(θ) = sin θ + (π − θ) cos θ``."""
    return sp.sin(t) + (sp.pi - t) * sp.cos(t)


class ArcGap1(_RuntimeFunction):
    """``same·(π − J_1(θ)) − cross·J_1(π − θ)``, ``J_1(θ) = sin θ + (π − θ) cos θ``, printed cancellation-free.

    Times ``√(K_aa K_bb)/(2π)`` it is ``√(⟨σ²⟩_aa⟨σ²⟩_bb) − ⟨σ(z_a)σ(z_b)⟩`` for a degree-1 piecewise monomial σ
    (:func:`decorrelation`); evaluated by ``_rt.arc1_gap`` (series where the closed form cancels).
    """

    nargs = 3
    runtime_name = "arc1_gap"
    latex_name = "G_1"

    def _eval_evalf(self, prec):
        th, same, cross = self.args
        return (same * (sp.pi - _j1(th)) - cross * _j1(sp.pi - th)).evalf(prec)


class Arc1(_RuntimeFunction):
    """``same·J_1(θ) + cross·J_1(π − θ)`` from the angle, printed as a cancellation-free runtime call (``_rt.arc1``)."""

    nargs = 3
    runtime_name = "arc1"
    latex_name = "J_1"

    def _eval_evalf(self, prec):
        th, same, cross = self.args
        return (same * _j1(th) + cross * _j1(sp.pi - th)).evalf(prec)


class AngleFromGap(_RuntimeFunction):
    """The angle θ with ``1 − cos θ = gap/den``: ``2 arcsin(√(gap/(2 den)))``, accurate as θ → 0 (runtime call)."""

    nargs = 2
    runtime_name = "angle_from_gap"
    latex_name = "angle"

    def _eval_evalf(self, prec):
        gap, den = self.args
        return sp.acos(1 - unsafe(gap) / unsafe(den)).evalf(prec)


def _homog_pair_data(f: sp.Expr, g: sp.Expr):
    hom = RULES[0]
    da, db = _match(hom, sp.sympify(f)), _match(hom, sp.sympify(g))
    if da is None or db is None or da.n != db.n:
        return None
    return hom, da, db


@lru_cache(maxsize=512)
def expect_pair_angle(f: sp.Expr, g: sp.Expr) -> sp.Expr | None:
    """``⟨f(z_a) g(z_b)⟩`` in terms of the carried angle :data:`theta_ab` (arc-cosine degrees 0, 1); else None.

    The degree-0 kernel ``(same (π − θ) + cross θ)/(2π)`` (σ′ of relu, leaky relu, |z|; σ of step, sign)
    depends on θ with slope 1, and θ = arccos(c) from a rounded c is off by up to √(2 eps) near c = ±1 (1e-8,
    far more than the angle 1e-9 of two nearly parallel inputs). The degree-1 kernel is flat in c near
    c = 1 but cancels near c = −1; from θ it is :class:`Arc1`, accurate at both ends. None for degree 2, for
    averages outside the family and where the angle cancels (linear σ, constant σ′).
    """
    data = _homog_pair_data(f, g)
    if data is None or data[1].n > 1:
        return None
    hom, da, db = data
    out = hom.pair(da, db)
    theta = SafeAcos(corr(Kab, Kaa, Kbb))
    if out is None or not out.has(theta):
        return None
    if da.n == 0:
        return out.xreplace({theta: theta_ab})
    same = da.cp * db.cp + da.cm * db.cm
    cross = da.cp * db.cm + da.cm * db.cp
    return GeoMean(Kaa, Kbb) * Arc1(theta_ab, same, cross) / (2 * sp.pi)


@lru_cache(maxsize=512)
def decorrelation(f: sp.Expr) -> sp.Expr | None:
    """``√(⟨f²⟩_{K_aa}⟨f²⟩_{K_bb}) − ⟨f(z_a) f(z_b)⟩ ≥ 0`` as a cancellation-free expression of :data:`theta_ab`.

    Both terms are ``O(1)`` and their difference is ``O(θ²)`` (degree 1) or ``O(θ)`` (degree 0), so the
    difference of the closed forms loses everything at θ ≈ 1e-9; written as ``√(K_aa K_bb)^n/(2π)`` times
    ``(same − cross) θ`` (n = 0) or :class:`ArcGap1` (n = 1) it is accurate to a few ulp of itself.
    None outside the degree-0/1 arc-cosine family. With the layer's C_b, C_W it gives the next layer's angle
    (:func:`nnft.recursions.base.angle_update`).
    """
    data = _homog_pair_data(f, f)
    if data is None or data[1].n > 1:
        return None
    _, d, _ = data
    same = d.cp * d.cp + d.cm * d.cm
    cross = 2 * d.cp * d.cm
    if d.n == 0:
        return sp.factor_terms((same - cross) * theta_ab / (2 * sp.pi))
    return GeoMean(Kaa, Kbb) * ArcGap1(theta_ab, same, cross) / (2 * sp.pi)


@lru_cache(maxsize=512)
def _match(rule: Rule, f: sp.Expr):
    try:
        return rule.match(f)
    except (TypeError, ValueError, NotImplementedError, sp.PolynomialError):
        return None


def closed_form_rule(f: sp.Expr, g: sp.Expr) -> Rule | None:
    """The first rule of :data:`RULES` that averages ``f(z_a) g(z_b)`` in closed form, or ``None``."""
    for rule in RULES:
        if _match(rule, f) is not None and _match(rule, g) is not None:
            return rule
    return None


@lru_cache(maxsize=512)
def expect_pair(f: sp.Expr, g: sp.Expr) -> sp.Expr:
    """``⟨f(z_a) g(z_b)⟩`` over N(0, [[K_aa, K_ab], [K_ab, K_bb]]) in the symbols :data:`Kaa`, :data:`Kab`, :data:`Kbb`.

    ``f`` and ``g`` are sympy expressions of :data:`nnft.activations.z`. Closed form when a rule of
    :data:`RULES` applies to both, an :class:`Expectation` node otherwise.
    """
    f, g = sp.sympify(f, strict=True), sp.sympify(g, strict=True)
    if not f.has(z) and not g.has(z):
        return f * g
    for rule in RULES:
        da, db = _match(rule, f), _match(rule, g)
        if da is None or db is None:
            continue
        out = rule.pair(da, db)
        if out is not None:
            return out
    return Expectation(f.subs(z, za) * g.subs(z, zb), (za, zb), (Kaa, Kab, Kbb))


@lru_cache(maxsize=512)
def expect_single(f: sp.Expr, g: sp.Expr | None = None) -> sp.Expr:
    """``⟨f(z) g(z)⟩`` (``g = 1`` if omitted) over z ~ N(0, K_aa), in the symbol :data:`Kaa`.

    Closed form when a rule applies: the degenerate two-variable average at ``K_ab = K_bb = K_aa``,
    simplified; an :class:`Expectation` node of one variable otherwise.
    """
    f = sp.sympify(f, strict=True)
    g = sp.S.One if g is None else sp.sympify(g, strict=True)
    hom = RULES[0]
    da, db = _match(hom, f), _match(hom, g)
    if da is not None and db is not None:
        return hom.single(da, db, Kaa)
    for rule in RULES[1:]:
        da, db = _match(rule, f), _match(rule, g)
        if da is None or db is None:
            continue
        if isinstance(rule, PolyGaussExpRule | ErfRule):
            out = rule.pair(da, db, cov=sp.Matrix([[Kaa, Kaa], [Kaa, Kaa]]))
        else:
            out = rule.pair(da, db).subs({Kab: Kaa, Kbb: Kaa})
        out = sp.simplify(unsafe(out))
        return out
    return Expectation(f.subs(z, za) * g.subs(z, za), (za,), (Kaa,))


def is_closed(expr: sp.Expr) -> bool:
    """True when ``expr`` contains no unevaluated :class:`Expectation`."""
    return not expr.has(Expectation)


def covariance_matrix(variables) -> sp.Matrix:
    """The symmetric matrix of covariance symbols ``K_{xy}`` of variables named ``z_x``, ``z_y``, ….

    For ``(z_a, z_b)`` it is ``[[K_aa, K_ab], [K_ab, K_bb]]`` in the module's symbols :data:`Kaa`, :data:`Kab`,
    :data:`Kbb`; diagonal symbols are positive, off-diagonal ones real; the entry (i, j), i ≤ j, is named
    after the variables in their given order. An :class:`Expectation` with this covariance prints as ⟨…⟩_K.
    """
    names = []
    for v in variables:
        if not (isinstance(v, sp.Symbol) and v.name.startswith("z_") and len(v.name) > 2):
            raise InputError(f"covariance_matrix needs variables named z_<index>, got {v!r}")
        names.append(v.name[2:])
    k = len(names)
    M = sp.zeros(k, k)
    for i, j in _upper_pairs(k):
        if i == j:
            M[i, i] = sp.Symbol(f"K_{names[i]}{names[i]}", positive=True)
        else:
            M[i, j] = M[j, i] = sp.Symbol(f"K_{names[i]}{names[j]}", real=True)
    return M


def _blocks(M: sp.Matrix) -> list[list[int]]:
    """Connected components of the variables under the structural non-zero pattern of the covariance."""
    k = M.shape[0]
    comp = list(range(k))

    def root(i: int) -> int:
        while comp[i] != i:
            i = comp[i]
        return i

    for i, j in _upper_pairs(k):
        if i != j and M[i, j] != 0:
            comp[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(k):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def expect(f, variables, cov) -> sp.Expr:
    """The Gaussian average ``⟨f(z_1, …, z_k)⟩`` over z ~ N(0, cov), in closed form where one is known.

    ``variables`` are the k integration symbols; ``cov`` a k × k symmetric sympy matrix (or its upper
    triangle row by row, the storage of :class:`Expectation`). In order: variables f does not involve
    are marginalised (sub-matrix); a polynomial f gives Isserlis' theorem (:func:`isserlis`); when the
    covariance is block diagonal (structurally zero entries) and f factorises over the blocks, the
    average is the product of the blocks' averages; one- and two-variable blocks with a product
    integrand use the closed-form rules (:func:`expect_single`, :func:`expect_pair`); anything else is an
    :class:`Expectation` node (numerical quadrature when lowered to code).
    """
    variables = tuple(variables)
    k = len(variables)
    M = Expectation(sp.S.One, variables, cov).cov_matrix if k else sp.zeros(0, 0)
    f = sp.sympify(f, strict=True)
    used = [i for i, v in enumerate(variables) if f.has(v)]
    if not used:
        return f
    v = tuple(variables[i] for i in used)
    M = M.extract(used, used)
    if f.is_polynomial(*v):
        return isserlis(f, v, M)
    blocks = _blocks(M)
    if len(blocks) > 1:
        parts = [sp.S.One] * len(blocks)
        where = {v[i]: b for b, idx in enumerate(blocks) for i in idx}
        for factor in sp.Mul.make_args(f):
            owners = {where[x] for x in factor.free_symbols if x in where}
            if len(owners) > 1:
                break
            parts[owners.pop() if owners else 0] *= factor
        else:
            out = sp.S.One
            for b, idx in enumerate(blocks):
                out *= expect(parts[b], [v[i] for i in idx], M.extract(idx, idx))
            return out
    if len(v) == 1:
        return expect_single(f.subs(v[0], z)).subs(Kaa, M[0, 0])
    node = Expectation(f, v, M)
    sep = node.separable() if len(v) == 2 else None
    if sep is not None:
        return expect_pair(*sep).subs({Kaa: M[0, 0], Kab: M[0, 1], Kbb: M[1, 1]}, simultaneous=True)
    return node


def price_derivative(f: sp.Expr, g: sp.Expr) -> sp.Expr:
    """``∂⟨f(z_a) g(z_b)⟩/∂K_ab`` by Price's theorem: ``⟨f′(z_a) g′(z_b)⟩`` (CONVENTIONS.md)."""
    return expect_pair(sp.diff(f, z), sp.diff(g, z))


__all__ = [
    "RULES",
    "ErfRule",
    "Expectation",
    "HomogeneousRule",
    "Kaa",
    "Kab",
    "Kbb",
    "PolyGaussExpRule",
    "AngleFromGap",
    "Arc1",
    "ArcGap1",
    "Rule",
    "closed_form_rule",
    "covariance_matrix",
    "decorrelation",
    "expect",
    "expect_pair_angle",
    "expect_pair",
    "expect_single",
    "is_closed",
    "isserlis",
    "price_derivative",
    "theta_ab",
    "za",
    "zb",
]
