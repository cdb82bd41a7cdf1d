"""The kernel action of the forward–backward theory and its saddle-point equations, derived by sympy.

The kernels ``C^{(ℓ)}`` (P × P on train ∪ test) of the preactivations form an exact Markov chain
(../shared/THEORY.md §5; Fischer, Lindner, Dahmen, Ringel, Krämer, Helias, ICML 2024): given ``C^{(ℓ−1)}``
the ``n_{ℓ−1}`` neurons of layer ℓ − 1 are iid ``N(0, C^{(ℓ−1)})`` and
``C^{(ℓ)} = C_b 11ᵀ + (C_W/n_{ℓ−1}) Σ_i φ(z_i)φ(z_i)ᵀ``. Writing the law of ``C^{(ℓ)}`` with a conjugate kernel
``C̃^{(ℓ)}`` gives the action (maximised over C, stationary in C̃)

    S = ln N(Y | 0, C^{(L)}_AA + κ I) + Σ_{ℓ=2}^{L} n_{ℓ−1} [W(C̃^{(ℓ)} | C^{(ℓ−1)}) − tr C̃^{(ℓ)}(C^{(ℓ)} − C_b 11ᵀ)],
    W(C̃ | C) = ln E_{z ~ N(0, C)} exp(C_W φ(z)ᵀ C̃ φ(z))            (the per-neuron cumulant generating function)

with ``Y`` the (P_A, m) targets and κ the readout noise variance. :func:`layer_equations` differentiates one
layer's part of ``S`` with respect to ``C̃^{(ℓ)}``, ``C^{(ℓ)}`` and (for the output layer) ``C^{(L)}_AA``
— sympy's matrix calculus, plus the one rule it lacks, ``d ln det M = tr(M⁻¹ dM)`` — and solves the
stationarity conditions, which are linear in the unknown they determine:

    forward   C^{(ℓ)}   = C_b 11ᵀ + ∂W(C̃^{(ℓ)} | C^{(ℓ−1)})/∂C̃
    backward  C̃^{(ℓ)}   = (n_ℓ / n_{ℓ−1}) ∂W(C̃^{(ℓ+1)} | C^{(ℓ)})/∂C
    output    C̃^{(L)}   = (1/n_{L−1}) ∂ ln N(Y | 0, C^{(L)}_AA + κ)/∂C_AA      (zero on test rows)

For ``φ(z) = z`` the engine substitutes ``W = −½ ln det(I − 2 C_W C̃ C)`` and derives the closed forms
``∂W/∂C̃ = C_W (I − 2 C_W C C̃)⁻¹ C`` and ``∂W/∂C = C_W C̃ (I − 2 C_W C C̃)⁻¹`` (valid for singular C, as on
train ∪ test when P > n₀). For other φ, ``∂W/∂C̃ = C_W ⟨φφᵀ⟩`` and ``∂W/∂C = ½ C⁻¹⟨z ∇gᵀ⟩`` under the tilted
measure (:mod:`nnft.feature_learning.tilted`). Derivatives are taken entrywise (``∂ tr(AX)/∂X = Aᵀ``); the
symmetric matrices' transposes are then identified with themselves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

__all__ = ["LayerEquations", "layer_equations", "kernel_action_latex"]

P, PA = sp.symbols("P P_A", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)
kappa = sp.Symbol("kappa", nonnegative=True)
C_W = sp.Symbol("C_W", positive=True)
n_prev, n_this = sp.symbols("n_{ell-1} n_ell", positive=True)

C_prev = sp.MatrixSymbol("C_prev", P, P)     # C^{(ℓ−1)}
C = sp.MatrixSymbol("C", P, P)               # C^{(ℓ)}
Ct = sp.MatrixSymbol("Ct", P, P)             # C̃^{(ℓ)}
Ct_next = sp.MatrixSymbol("Ct_next", P, P)   # C̃^{(ℓ+1)}
C_next = sp.MatrixSymbol("C_next", P, P)     # C^{(ℓ+1)}
Bias = sp.MatrixSymbol("B", P, P)            # C_b 11ᵀ of layer ℓ (a symbol: sympy's OneMatrix does not differentiate)
Bias_next = sp.MatrixSymbol("B_next", P, P)
C_AA = sp.MatrixSymbol("C_AA", PA, PA)
Ct_AA = sp.MatrixSymbol("Ct_AA", PA, PA)     # C̃^{(L)} on the training block
Y = sp.MatrixSymbol("Y", PA, m)
#: the abstract per-neuron CGF's gradients (for φ without a closed-form W)
dW_dCt = sp.MatrixSymbol("F", P, P)          # ∂W(C̃^{(ℓ)} | C^{(ℓ−1)})/∂C̃ = C_W ⟨φφᵀ⟩_tilted
dW_dC_next = sp.MatrixSymbol("G", P, P)      # ∂W(C̃^{(ℓ+1)} | C^{(ℓ)})/∂C
_SYMMETRIC = (C_prev, C, Ct, Ct_next, C_next, Bias, Bias_next, C_AA, Ct_AA, dW_dCt, dW_dC_next)
_eps = sp.Symbol("epsilon")


@dataclass(frozen=True)
class _Term:
    """One scalar term of the action: ``coef · Trace(expr)`` (kind "trace") or ``coef · ln det(expr)`` ("logdet")."""

    coef: sp.Expr
    kind: str
    expr: sp.MatrixExpr

    def grad(self, X: sp.MatrixSymbol) -> sp.MatrixExpr | int:
        """``∂ term / ∂X`` entrywise (sympy for traces; ``d ln det M = tr(M⁻¹ dM)`` for log-determinants)."""
        if not self.expr.has(X):
            return 0
        if self.kind == "trace":
            return self.coef * sp.Trace(self.expr).diff(X)
        dX = sp.MatrixSymbol("dX", *X.shape)
        dM = sp.diff(self.expr.subs(X, X + _eps * dX), _eps).subs(_eps, 0)
        return self.coef * sp.Trace(self.expr.inv() * dM).diff(dX)

    def latex(self) -> str:
        inner = sp.latex(self.expr)
        body = rf"\operatorname{{tr}}\left({inner}\right)" if self.kind == "trace" else rf"\ln\det\left({inner}\right)"
        return f"{sp.latex(self.coef)}\\,{body}"


def _grad(terms: tuple[_Term, ...], X: sp.MatrixSymbol) -> sp.MatrixExpr:
    """The gradient of a sum of terms, term by term (sympy 1.14 differentiates a scalar Add of traces to 0)."""
    parts = [t.grad(X) for t in terms]
    parts = [p for p in parts if not (isinstance(p, int | sp.Integer) and p == 0)]
    return _symmetric(sp.MatAdd(*parts).doit()) if parts else sp.ZeroMatrix(*X.shape)


def _symmetric(expr):
    """Identify the transposes of the (symmetric) kernels with themselves, then simplify."""
    rep = {S.T: S for S in _SYMMETRIC}
    out = expr
    for _ in range(3):
        new = out.xreplace(rep)
        if new == out:
            break
        out = new
    return sp.simplify(out.doit())


def _solve_linear(grad: sp.MatrixExpr, X: sp.MatrixSymbol, coef: sp.Expr) -> sp.MatrixExpr:
    """``X`` from ``grad = 0`` when ``grad = coef · (R − X)``: ``X = X + grad/coef`` (checked to be free of X)."""
    sol = _symmetric(sp.MatAdd(X, grad / coef).expand().doit())
    if sol.has(X):
        raise AssertionError(f"the stationarity condition is not linear in {X}: {sol}")
    return sol


@dataclass(frozen=True)
class LayerEquations:
    """The saddle-point equations of one hidden layer and of the output, as derived sympy matrix expressions.

    ``forward`` (C^{(ℓ)} in terms of C̃^{(ℓ)}, C^{(ℓ−1)}), ``backward`` (C̃^{(ℓ)} from C̃^{(ℓ+1)}, C^{(ℓ)}) and
    ``output`` (C̃^{(L)}_AA from C^{(L)}_AA, Y, κ); ``dW_dCt``/``dW_dC`` the CGF gradients they contain
    (closed forms for linear φ, the symbols F, G otherwise); ``terms`` the action they came from.
    """

    linear: bool
    terms: tuple[_Term, ...]
    output_terms: tuple[_Term, ...]
    forward: sp.MatrixExpr
    backward: sp.MatrixExpr
    output: sp.MatrixExpr

    def latex(self) -> str:
        """The action and its three saddle-point equations as one LaTeX ``aligned`` block."""
        return kernel_action_latex(self)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    @functools.cached_property
    def numeric(self) -> dict[str, object]:
        """``forward(C_prev, Ct, B, C_W)``, ``backward(C, Ct_next, C_W, n_prev, n_this)``, ``output(C_AA, Y, kappa,
        n_prev, m)`` as numpy functions lambdified from the derived expressions (linear φ only for the first two)."""
        out = {"output": _lambdify((C_AA, Y, kappa, n_prev, m), self.output, PA)}
        if self.linear:
            out["forward"] = _lambdify((C_prev, Ct, Bias, C_W), self.forward, P)
            out["backward"] = _lambdify((C, Ct_next, C_W, n_prev, n_this), self.backward, P)
        return out


class _Printer(NumPyPrinter):
    """numpy printer that sizes identity matrices from the first matrix argument's shape (``_dim_of``)."""

    _dim_of = "x"

    def _print_Identity(self, expr):
        return f"numpy.eye(numpy.shape({self._dim_of})[0])"


def _lambdify(args, expr, dim_symbol):
    """A numpy function of ``args`` from the derived matrix expression (sympy's lambdify with :class:`_Printer`)."""
    printer = type("_SizedPrinter", (_Printer,), {"_dim_of": str(args[0])})({"fully_qualified_modules": True})
    f = sp.lambdify(args, expr, modules="numpy", printer=printer)
    f.derived_from = expr
    return f


@functools.lru_cache(maxsize=2)
def layer_equations(linear: bool) -> LayerEquations:
    """Derive the forward, backward and output equations from the kernel action (module docstring).

    ``linear=True`` substitutes the closed-form CGF of ``φ(z) = z``; otherwise the gradients of W stay the
    abstract F = ∂W/∂C̃, G = ∂W/∂C evaluated by the tilted Gaussian measure.
    """
    I_P = sp.Identity(P)
    terms: list[_Term] = []
    if linear:
        terms.append(_Term(-n_prev / 2, "logdet", I_P - 2 * C_W * Ct * C_prev))
        terms.append(_Term(-n_this / 2, "logdet", I_P - 2 * C_W * Ct_next * C))
    else:
        # W enters only through its gradients: tr(Fᵀ C̃) and tr(Gᵀ C) are its first-order changes
        terms.append(_Term(n_prev, "trace", dW_dCt.T * Ct))
        terms.append(_Term(n_this, "trace", dW_dC_next.T * C))
    terms.append(_Term(-n_prev, "trace", Ct * (C - Bias)))
    terms.append(_Term(-n_this, "trace", Ct_next * (C_next - Bias_next)))
    terms = tuple(terms)
    out_terms = (_Term(-sp.Rational(1, 2), "trace", Y.T * (C_AA + kappa * sp.Identity(PA)).inv() * Y),
                 _Term(-m / 2, "logdet", C_AA + kappa * sp.Identity(PA)))
    forward = _solve_linear(_grad(terms, Ct), C, n_prev)
    backward = _solve_linear(_grad(terms, C), Ct, n_prev)
    # output: ∂/∂C^{(L)} of [lik + n_{L−1}(W − tr C̃ C)] on the training block, solved for C̃^{(L)}_AA
    out_all = (*out_terms, _Term(-n_prev, "trace", Ct_AA * C_AA))
    output = _solve_linear(_grad(out_all, C_AA), Ct_AA, n_prev)
    return LayerEquations(linear=linear, terms=terms, output_terms=out_terms, forward=forward, backward=backward,
                          output=output)


def kernel_action_latex(eq: LayerEquations) -> str:
    """The action (one layer's part and the data term) and the derived equations, as LaTeX."""
    names = {C_prev: r"C^{(\ell-1)}", C: r"C^{(\ell)}", Ct: r"\tilde{C}^{(\ell)}", Ct_next: r"\tilde{C}^{(\ell+1)}",
             C_next: r"C^{(\ell+1)}", C_AA: r"C^{(L)}_{AA}", Bias: r"C_b \mathbb{1}\mathbb{1}^{\top}",
             Bias_next: r"C_b \mathbb{1}\mathbb{1}^{\top}", dW_dCt: r"\partial_{\tilde C} W",
             dW_dC_next: r"\partial_{C} W"}
    rep = {S: sp.MatrixSymbol(name, *S.shape) for S, name in names.items()}
    rep.update({n_prev: sp.Symbol(r"n_{\ell-1}", positive=True), n_this: sp.Symbol(r"n_{\ell}", positive=True)})

    def tex(e) -> str:
        return sp.latex(e.xreplace(rep)).replace(r"\mathbb{I}", "I").replace("+ -", "-")

    w = (r"W(\tilde C\mid C) = -\tfrac12\ln\det(I - 2C_W\tilde C C)" if eq.linear else
         r"W(\tilde C\mid C) = \ln \mathbb{E}_{z\sim\mathcal{N}(0,C)}\, e^{C_W\phi(z)^{\top}\tilde C\phi(z)}")
    return ("\\begin{aligned}\n"
            r"S &= \ln\mathcal{N}(Y\mid 0, C^{(L)}_{AA} + \kappa I) + \sum_{\ell=2}^{L} n_{\ell-1}\Big["
            r"W(\tilde C^{(\ell)}\mid C^{(\ell-1)}) - \operatorname{tr}\tilde C^{(\ell)}\big(C^{(\ell)}"
            r" - C_b\mathbb{1}\mathbb{1}^{\top}\big)\Big],\quad " + w + r" \\" + "\n"
            rf"C^{{(\ell)}} &= {tex(eq.forward)} \\" + "\n"
            rf"\tilde C^{{(\ell)}} &= {tex(eq.backward)} \\" + "\n"
            rf"\tilde C^{{(L)}}_{{AA}} &= {tex(eq.output)}" + "\n\\end{aligned}")
