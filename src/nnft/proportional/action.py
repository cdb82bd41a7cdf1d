"""The effective action of the proportional limit over scalar order parameters, built and differentiated by sympy.

For a network whose hidden layers ℓ = 1 … L_h have widths n_ℓ, with P training points, the posterior of the
order parameters ``Q_ℓ`` (one per hidden layer; the renormalised kernel is ``K_R = q K_w``, ``q = Π_ℓ Q_ℓ``,
``K_w`` the weight part of the output-layer NNGP kernel) is ``exp(−S/2)`` with (../shared/THEORY.md §3, §4.1;
Li & Sompolinsky, PRX 11, 031059 (2021); Pacelli et al., Nat. Mach. Intell. 2023, eq. 105 eliminated):

    S(Q) = Σ_ℓ n_ℓ (Q_ℓ − ln Q_ℓ) + Σ_{k=1}^{P} [ m ln(τ_k + q κ_k) + ỹ²_k / (τ_k + q κ_k) ]

where the data term is ``m ln det(B + q K_w) + Σ_i y_iᵀ (B + q K_w)⁻¹ y_i`` (``B = σ_ε² I + C_b 11ᵀ``, the
part of the training kernel that is not renormalised) written in the joint eigenbasis of the pencil
``(B, K_w)``: ``κ_k, τ_k`` its generalised eigenvalues and ``ỹ²_k = Σ_i ỹ²_{i;k}`` the rotated targets.
For bias-free linear networks this is −2 ln of the exact posterior of the Gamma scale mixture (THEORY §2)
without its O(1) Jacobian terms ``−2 ln Q_ℓ``; for one hidden layer and odd σ it is Pacelli et al.'s
action ``N₁ S(Q̄)``.

Everything numeric (the stationarity conditions, the reduced one-variable equation, the zero-noise
polynomial) is derived here from ``S`` by sympy and lambdified per eigenmode; nothing is typed in twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

__all__ = ["Action", "MatrixAction", "PairAction", "matrix_action", "matrix_mode_action", "pair_action",
           "scalar_action", "zero_noise_equation"]

k = sp.Idx("k")
P = sp.Symbol("P", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)
q = sp.Symbol("q", positive=True)
c = sp.Symbol("c", real=True)
kappa, tau, y2 = sp.IndexedBase("kappa"), sp.IndexedBase("tau"), sp.IndexedBase(r"\tilde{y}^{2}")
ytil, mutil = sp.IndexedBase(r"\tilde{y}"), sp.IndexedBase(r"\tilde{\mu}")
_kap, _tau, _y2 = sp.symbols("kappa_k tau_k y2_k", nonnegative=True)
_yt, _mt = sp.symbols("ytilde_k mutilde_k", real=True)
Qbar = sp.Symbol(r"\bar{Q}", positive=True)
Qc = sp.Symbol("Q", real=True)
n1 = sp.Symbol("n_1", positive=True)
#: per-mode arrays of the pair action, keyed as :func:`nnft.proportional.modes.compile_mode_expressions` wants
PAIR_MODES = {kappa[k]: _kap, tau[k]: _tau, ytil[k]: _yt, mutil[k]: _mt}


def mode_term(qq: sp.Expr, kap: sp.Expr, ta: sp.Expr, yy: sp.Expr) -> sp.Expr:
    """The data term of one eigenmode: ``m ln(τ + q κ) + ỹ²/(τ + q κ)``."""
    return m * sp.log(ta + qq * kap) + yy / (ta + qq * kap)


class _Renders:
    """LaTeX and Jupyter display of an action's sympy expression ``self.expr``."""

    def latex(self) -> str:
        """The action as LaTeX."""
        return "S = " + sp.latex(self.expr)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"


@dataclass(frozen=True)
class Action(_Renders):
    """``S(Q_1 … Q_{L_h})`` as a sympy expression, with the conditions and per-mode functions derived from it."""

    hidden: int
    Q: tuple[sp.Symbol, ...]
    n: tuple[sp.Symbol, ...]
    expr: sp.Expr

    @property
    def stationarity(self) -> tuple[sp.Expr, ...]:
        """``Q_ℓ ∂S/∂Q_ℓ`` for each hidden layer (= ∂S/∂ ln Q_ℓ); the saddle makes all of them zero."""
        return tuple(sp.expand(Ql * sp.diff(self.expr, Ql)) for Ql in self.Q)

    @property
    def common_term(self) -> sp.Expr:
        """``Q_ℓ ∂S/∂Q_ℓ − n_ℓ (Q_ℓ − 1)``, the same for every layer: ``q D'(q)`` of the data term.

        Hence at the saddle ``n_ℓ (Q_ℓ − 1) = c`` for every ℓ, with ``c = −q D'(q)`` (THEORY §3).
        Raises if the derivation does not find the layers' terms equal.
        """
        terms = [sp.simplify(st - nl * (Ql - 1)) for st, nl, Ql in zip(self.stationarity, self.n, self.Q, strict=True)]
        qq = sp.Mul(*self.Q)
        terms = [sp.simplify(t.subs(qq, q)) for t in terms]
        for t in terms[1:]:
            if sp.simplify(t - terms[0]) != 0:
                raise AssertionError(f"the layers' stationarity terms differ: {terms[0]} vs {t}")
        return terms[0]


@functools.lru_cache(maxsize=8)
def scalar_action(hidden: int) -> Action:
    """The action with one scalar order parameter per hidden layer (``hidden`` = L − 1 ≥ 1 layers)."""
    if hidden < 1:
        raise ValueError("the proportional-limit action needs at least one hidden layer")
    Q = tuple(sp.Symbol(f"Q_{ell}", positive=True) for ell in range(1, hidden + 1))
    n = tuple(sp.Symbol(f"n_{ell}", positive=True) for ell in range(1, hidden + 1))
    qq = sp.Mul(*Q)
    prior = sum(nl * (Ql - sp.log(Ql)) for nl, Ql in zip(n, Q, strict=True))
    data = sp.Sum(mode_term(qq, kappa[k], tau[k], y2[k]), (k, 1, P))
    return Action(hidden=hidden, Q=Q, n=n, expr=prior + data)


@functools.lru_cache(maxsize=1)
def mode_functions():
    """Vectorised numpy functions of one eigenmode, lambdified from :func:`mode_term` and its q-derivatives.

    Returns ``(f, q_df)``: the data term ``f(q, κ, τ, ỹ², m)`` and ``q ∂f/∂q``.
    """
    f = mode_term(q, _kap, _tau, _y2)
    q_df = sp.simplify(q * sp.diff(f, q))
    args = (q, _kap, _tau, _y2, m)
    return tuple(sp.lambdify(args, e, modules="numpy") for e in (f, q_df))


@dataclass(frozen=True)
class PairAction(_Renders):
    """The one-hidden-layer action for non-odd σ over ``(Q̄, Q)``, with its gradient derived by sympy.

    ``S(Q̄, Q) = n₁[−Q̄ Q + ln(1 + Q)] + ln det(B + K_R) + yᵀ(B + K_R)⁻¹ y`` with
    ``K_R = Q̄ (K_w − M_w) + M_w/(1 + Q)``, ``M_w = μ_w μ_wᵀ`` the mean-vector part of the readout kernel
    (THEORY §4.2; Pacelli et al. 2023). Written through the eigen-pencil of ``(B, K_w)`` and
    Sherman–Morrison in the rank-one ``M_w`` (``D = Q̄ − 1/(1 + Q)``, ``a_k = τ_k + Q̄ κ_k``):
    ``Σ_k ln a_k + ln(1 − D s_μμ) + s_yy + D s_yμ²/(1 − D s_μμ)`` with ``s_uv = Σ_k ũ_k ṽ_k / a_k``.
    With ``μ = 0`` it is the odd action after eliminating ``Q = 1/Q̄ − 1``.
    """

    expr: sp.Expr
    symbols: tuple[sp.Symbol, sp.Symbol]
    n: sp.Symbol

    @property
    def gradient(self) -> tuple[sp.Expr, sp.Expr]:
        """``(∂S/∂Q̄, ∂S/∂Q)``; the saddle makes both zero."""
        return tuple(sp.diff(self.expr, v) for v in self.symbols)


@functools.lru_cache(maxsize=1)
def pair_action() -> PairAction:
    """The non-odd one-hidden-layer action (see :class:`PairAction`)."""
    a = tau[k] + Qbar * kappa[k]
    D = Qbar - 1 / (1 + Qc)
    s_mm = sp.Sum(mutil[k] ** 2 / a, (k, 1, P))
    s_ym = sp.Sum(ytil[k] * mutil[k] / a, (k, 1, P))
    s_yy = sp.Sum(ytil[k] ** 2 / a, (k, 1, P))
    logdet = sp.Sum(sp.log(a), (k, 1, P)) + sp.log(1 - D * s_mm)
    expr = n1 * (-Qbar * Qc + sp.log(1 + Qc)) + logdet + s_yy + D * s_ym ** 2 / (1 - D * s_mm)
    return PairAction(expr=expr, symbols=(Qbar, Qc), n=n1)


@dataclass(frozen=True)
class MatrixAction(_Renders):
    """The one-hidden-layer action for m outputs over a symmetric m × m order parameter Q (kernel shape).

    ``S(Q) = n₁[tr Q − ln det Q] + ln det(I_m ⊗ B + Q ⊗ K_w) + vec(Y)ᵀ(I_m ⊗ B + Q ⊗ K_w)⁻¹ vec(Y)``
    (THEORY §4.3; Baglioni et al., arXiv 2412.15911): for bias-free linear networks −2 ln of the exact
    Wishart scale mixture of THEORY §2 without its O(1) Jacobian. In the eigenbasis ``Q = R diag(q) Rᵀ``
    it splits into m scalar actions with rotated targets ``Y R``; the gradient used by the solver is
    ``n₁(I − Q⁻¹) + R H Rᵀ``, ``H_ij = δ_ij Σ_k κ_k/a_ki − Σ_k κ_k ỹ_ki ỹ_kj/(a_ki a_kj)``,
    ``a_ki = τ_k + q_i κ_k``. The solver uses, for m ≤ 3, the gradient sympy derives from the per-mode form
    (:func:`matrix_mode_action`; sympy 1.14 does not differentiate ``ln det`` of a matrix *symbol*, so the
    derivation works on explicit entries ``Q_ij``), and this closed form beyond; the tests check both
    against each other and against finite differences of the dense Kronecker form.
    """

    m: int
    expr: sp.Expr
    Q: sp.MatrixSymbol
    n: sp.Symbol


@functools.lru_cache(maxsize=8)
def matrix_action(m_out: int) -> MatrixAction:
    """The m × m action (see :class:`MatrixAction`) as a sympy matrix expression."""
    from sympy.matrices.expressions.kronecker import KroneckerProduct

    Qm = sp.MatrixSymbol("Q", m_out, m_out)
    B, Kw = sp.MatrixSymbol("B", P, P), sp.MatrixSymbol("K_w", P, P)
    y = sp.MatrixSymbol(r"\operatorname{vec}Y", m_out * P, 1)
    C = KroneckerProduct(sp.Identity(m_out), B) + KroneckerProduct(Qm, Kw)
    prior = n1 * (sp.Trace(Qm) - sp.log(sp.Determinant(Qm)))
    expr = prior + sp.log(sp.Determinant(C)) + sp.Trace(y.T * C.inverse() * y)
    return MatrixAction(m=m_out, expr=expr, Q=Qm, n=n1)


def on_summands(expr: sp.Expr, fn) -> sp.Expr:
    """Apply ``fn`` to the summand of every ``Sum`` over the modes in ``expr`` (substitutions inside the sum)."""
    return expr.replace(lambda e: isinstance(e, sp.Sum), lambda e: sp.Sum(fn(e.function), *e.limits))


def _sum_of_targets(e: sp.Sum, total: sp.Expr) -> sp.Expr:
    """``Σ_k a ỹ²_k`` with ``a`` free of k → ``a · total``; refuses any other sum (a derivation error)."""
    a = sp.simplify(e.function / y2[k])
    if a.has(k):
        raise AssertionError(f"unexpected mode sum in the zero-noise condition: {e}")
    return a * total


def zero_noise_equation(hidden: int) -> sp.Expr:
    """The polynomial whose positive root is Q at σ_ε² = 0, no biases, equal widths n, one output.

    Derived from :func:`scalar_action`: with ``B = 0`` the pencil has ``τ_k = 0``, ``κ_k = 1`` and
    ``Σ_k ỹ²_k = yᵀ K_w⁻¹ y = P r₀``; setting all ``Q_ℓ = Q``, ``n_ℓ = n = P/α`` in the stationarity
    condition and clearing denominators gives a polynomial in Q with parameters ``α``, ``r₀`` (THEORY §3:
    ``Q^{L_h+1} − (1 − α) Q^{L_h} − α r₀``; checked in tests/test_proportional.py).
    """
    act = scalar_action(hidden)
    Q, alpha, r0, nn = sp.symbols("Q alpha r_0 n", positive=True)
    st = on_summands(act.stationarity[0], lambda f: f.xreplace({tau[k]: 0, kappa[k]: 1}))
    st = st.xreplace({Ql: Q for Ql in act.Q}).xreplace({nl: nn for nl in act.n}).xreplace({m: 1})
    st = on_summands(sp.expand(st), lambda f: sp.expand(f)).doit()
    st = st.replace(lambda e: isinstance(e, sp.Sum), lambda e: _sum_of_targets(e, P * r0))
    st = sp.expand(st.xreplace({nn: P / alpha}))
    num, _ = sp.fraction(sp.together(st))
    poly = sp.Poly(sp.expand(num), Q)
    lead = poly.LC()
    return sp.expand(sp.simplify(poly.as_expr() / lead))


@functools.lru_cache(maxsize=4)
def matrix_mode_action(m_out: int):
    """The m × m action written per eigenmode, with its gradient derived by sympy.

    In the joint eigenbasis of ``(B, K_w)`` the covariance ``I ⊗ B + Q ⊗ K_w`` splits into P blocks
    ``τ_k I + κ_k Q`` (m × m), so ``S = n₁[tr Q − ln det Q] + Σ_k [ln det(τ_k I + κ_k Q) + ỹ_kᵀ(τ_k I + κ_k Q)⁻¹ỹ_k]``
    with ``ỹ_k`` the k-th row of the rotated targets. Returns ``(expr, entries, per_mode, gradient)``:
    ``entries`` the symbols ``Q_ij`` (i ≤ j), ``per_mode`` the indexed → plain map for
    :func:`nnft.proportional.modes.compile_mode_expressions`, ``gradient`` the symmetric matrix ``∂S/∂Q``
    (``∂S/∂Q_ii`` on the diagonal, ``½ ∂S/∂Q_ij`` off it).
    """
    entries = {(i, j): sp.Symbol(f"Q_{i + 1}{j + 1}", real=True) for i in range(m_out) for j in range(i, m_out)}
    Qm = sp.Matrix(m_out, m_out, lambda i, j: entries[(min(i, j), max(i, j))])
    ys = [sp.IndexedBase(rf"\tilde{{y}}_{{{i + 1}}}") for i in range(m_out)]
    yv = sp.Matrix([y_[k] for y_ in ys])
    Ck = tau[k] * sp.eye(m_out) + kappa[k] * Qm
    summand = sp.log(Ck.det()) + (yv.T * Ck.adjugate() * yv)[0, 0] / Ck.det()
    expr = n1 * (Qm.trace() - sp.log(Qm.det())) + sp.Sum(summand, (k, 1, P))
    per_mode = {kappa[k]: _kap, tau[k]: _tau}
    for i, y_ in enumerate(ys):
        per_mode[y_[k]] = sp.Symbol(f"y_{i + 1}_k", real=True)
    grad = sp.Matrix(m_out, m_out, lambda i, j: sp.diff(expr, entries[(min(i, j), max(i, j))])
                     * (1 if i == j else sp.Rational(1, 2)))
    return expr, tuple(entries.values()), per_mode, grad
