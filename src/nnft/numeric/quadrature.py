"""Numerical zero-mean Gaussian expectations ⟨f(z)⟩ and ⟨f(z_a, z_b)⟩, vectorised over many covariances.

Generated code calls these functions (through ``nnft.runtime``) for activations without a closed form
(tanh, sigmoid, softplus, gelu, swish, user expressions) and for piecewise-smooth ones whose kinks or jumps
sit at known points (relu, leaky relu, |z|, step, sign, user ``Piecewise``). Only numpy is used.

Method
------
*Decomposition.* One variable: ``z = s·x`` with ``s = √K`` and ``x ~ N(0, 1)``. Two variables, with
``s_a = √K_aa``, ``s_b = √K_bb``, ``c = K_ab/√(K_aa K_bb)`` clipped into [-1, 1] and ``ε = √((1−c)(1+c))``::

    z_a = s_a·u,    z_b = s_b·(c·u + ε·w),     u, w ~ N(0, 1) independent

(the conditional decomposition z_b | z_a ~ N((K_ab/K_aa) z_a, K_bb − K_ab²/K_aa)). It stays valid at
c = ±1 (ε = 0, z_b = ±(s_b/s_a) z_a exactly) and at zero variance (see *Conventions*).

*Which variable is outside.* For a generic entry the outer integral runs over u and the inner one over
w (at fixed u). If both factors have kinks and |c| > 1/√2, the two kink lines z_a = k and z_b = k' are
nearly parallel in the (u, w) plane; the inner average over w would then be a function of u with a
near-kink of width ~ε, which no fixed rule resolves as c → 1. For those entries the order is swapped:
the outer integral runs over w (across the thin wedge) and the inner one over u, in which *both* kink
families are exact breakpoints; the outer integrand is then piecewise analytic with breaks only where
two kinks cross, w* = (k'/s_b − c k/s_a)/ε, which are also split exactly. If only f_b has kinks the
roles of a and b are exchanged, so that the kinked variable is outside.

*Rules.* Each one-dimensional integral ∫ φ(x) g(x) dx is truncated to |x| ≤ L = 9 (mass outside
2.3e-19) and done with composite Gauss–Legendre, ``order`` nodes per panel, on panels whose breakpoints
are, per entry (and per outer node for the inner integral):

* every kink of f mapped to x (exact splits; g is analytic between them, so the error converges
  exponentially in ``order``; kink locations of the inner integral move with the outer node);
* geometric grading ``x_c ± h·2^j`` (j = 0..J−1) around the Gaussian centre x = 0 with h = 1.5, and
  around each *feature point* of f — its kinks and z = 0 — with h = min(1.5, δ/t), δ = 1.5, where t is
  the scale that maps x to z. Grading resolves activations whose analytic structure is O(1) in z
  (tanh and sigmoid have poles at z = ±iπ/2, ±iπ) at any variance: at K = 10³ tanh(√K·x) is a sign
  function with an O(1/√K) transition, and Gauss–Hermite with 80 nodes is still 5 % off (measured),
  while the graded rule needs ~J+1 ≈ 9 panels per side.

*Oscillating integrands.* Geometric grading assumes f is tame far from its feature points; sin and cos
are not (|sin z| grows like e^{|Im z|}, so wide far panels fail: ⟨sin²⟩ at K = 30 is 1e-5 off). Before
each bucket of entries (same grading depth), a 1-D probe compares ⟨g(s x)²⟩ at orders n and 2n for the
1-D sections g of the integrand (fa and fb; for ``gauss2`` also f(z, 0), f(0, z), f(z, ±r z)) at the
largest standard deviation of the bucket; if they disagree by more than max(1e-10, 10^-(n+1)), panel
widths are capped at 8, 4, 2, 1 (units of z) until they agree. Cost of a probe: ~0.1 ms. Built-in
non-oscillating activations never trigger a cap at the default order; sin/cos at K ≳ 2 do, and then
cost grows like K (2-D: ~0.1 s per entry at K = 10³).

Smooth integrands (no kinks) with max(s_a, s_b) ≤ 0.3 use Gauss–Hermite with ``2·order + 4`` nodes in
each variable instead (tanh at K = 0.09: 7e-13 with 20 nodes). Weights of every rule are normalised to
sum to 1, so constants are exact and K = 0 returns f(0) to rounding.

Accuracy (``order`` = 10, the default), measured on the grid K_aa, K_bb ∈ {1e-6, 1e-3, 0.05, 0.3, 1, 3,
30, 1e3}, c ∈ {±1, −1 + 1e-12, ±0.95, ±0.7, −0.3, 0, 0.2, 0.6, 0.75, 0.99, 1 − 1e-6, 1 − 1e-12} against
closed forms (worst error relative to max(|value|, 1e-2)): relu 4.9e-12, step 9.7e-13, erf 3.5e-12,
sin 8.8e-12 (K ≤ 30) / 1.7e-13 (K ≤ 1e3), and |z|, leaky relu, a jump at 0.7 (Owen's T) within 1e-10;
against 20-digit mpmath 2-D quadrature: tanh ≤ 4.5e-13, sigmoid ≤ 5e-14, gelu, softplus within 1e-10;
tanh, sigmoid, softplus, gelu, swish and a Piecewise kink at 0.7 in 1-D against mpmath for K up to
1e3 within 1e-10. ``order`` = 8 gives about 1e-9, 12 about 1e-14 (relu, erf).

Speed (``bench/bench_quadrature.py``, 2 vCPU Zen 5 shared machine, one thread, K ∈ [0.5, 2]):
``gauss2_product`` tanh ≈ 5e3 entries/s, relu ≈ 5e3 entries/s, ``gauss2`` tanh ≈ 2.5e3, ``gauss1`` tanh
≈ 7e5; at K ∈ [20, 50] about 3e3 for both products. Per entry that is ~1–2·10⁴ integrand evaluations
(about 100 outer × 170 inner nodes); building the per-entry rules (breakpoints, sort, exp of the
Gaussian weight) costs about as much as evaluating tanh, and entries are processed in blocks of
≤ 2^16 elements per temporary (~0.5 MB, cache resident; measured 2× faster than 4 MB blocks).

*Scales.* Everything runs in the standardised variables u, w: c comes from :func:`correlation` (variances
scaled by powers of two, never K_aa·K_bb), grading levels are counted per variable (outer from
max(s_a, |c| s_b), inner from s_b·ε), smooth pairs put the wider variable outside, entries with c = ±1
(the kernel diagonal) use one 1-D rule along z_b = ±(s_b/s_a) z_a, and a smooth inner integrand with
conditional std ≤ 0.3 uses Gauss–Hermite. Panels are at most 2 standard deviations wide. So K from 1e-300
to 1e300 works (tests/test_scales.py: asymptotic references, 1e-12 of √(⟨f_a²⟩⟨f_b²⟩)); the cost grows
like log K (about 500 levels per side at K = 1e300). Outer nodes are processed in chunks, so memory
stays at ~0.5 MB per temporary whatever the rule size.

*Budget.* Each call estimates its integrand evaluations per entry; a rule above ``NNFT_QUAD_BUDGET``
(default 2e8) or a probe that does not converge with any affordable panel cap (e.g. tan(z), poles on
the real line) raises :class:`~nnft.errors.BudgetError` naming the knob. Calls above 2e8 evaluations in
total show a tqdm progress bar over entries (on a terminal).

Conventions
-----------
* Zero variance: K_aa = 0 means z_a ≡ 0, so f is evaluated at z_a = 0 exactly (``gauss1(f, 0) = f(0)``;
  for a step with Θ(0) = 1/2 that value is 1/2). If K_aa·K_bb = 0 the covariance K_ab is ignored
  (c := 0); otherwise |c| > 1 (a non-PSD entry, usually by rounding) is clipped to ±1.
* Assumption: f has polynomial growth and, between its kinks, analytic structure on the scale
  |Im z| ≳ 1 (true for every built-in). A user function with a much finer scale, e.g. tanh(50 z), is
  not resolved by the grading (the probe then caps panel widths, which does not help): rescale it
  (tanh(50 z) at variance K is tanh(z') at variance 2500 K) or raise ``order``.

"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from nnft.errors import BudgetError

__all__ = ["gauss1", "gauss2", "gauss2_product", "gauss2_product_corr", "correlation", "DEFAULT_ORDER"]

#: Gauss–Legendre nodes per panel used when ``order`` is None.
DEFAULT_ORDER = 10

_L = 9.0  # truncation of each standard-normal variable, |x| ≤ _L
_H0 = 1.0  # grading scale around the Gaussian centre x = 0 (in units of the standard deviation)
_DELTA = 1.0  # grading scale around a feature point of f, in units of z
_XCAP = 2.0  # widest panel, in units of the standard deviation
_S_GH = 0.3  # smooth f with max standard deviation ≤ this: Gauss–Hermite
_SWAP_C = 1.0 / math.sqrt(2.0)  # |c| above which both-kinked entries integrate across the wedge
_BLOCK_ELEMS = 1 << 16  # elements of one (block, nodes…) temporary: 512 kB of float64 (cache-resident)
#: Environment variable: most integrand evaluations one entry's rule may use (the work budget).
BUDGET_ENV = "NNFT_QUAD_BUDGET"
DEFAULT_BUDGET = 2e8
#: Total integrand evaluations of one call above which a progress bar is shown (on a terminal).
_PROGRESS_EVALS = 2e8

Array = np.ndarray
Func1 = Callable[[Array], Array]
Func2 = Callable[[Array, Array], Array]

_rule_cache: dict[tuple[str, int], tuple[Array, Array]] = {}


def _gl(n: int) -> tuple[Array, Array]:
    key = ("gl", n)
    if key not in _rule_cache:
        _rule_cache[key] = leggauss(n)
    return _rule_cache[key]


def _gh(n: int) -> tuple[Array, Array]:
    key = ("gh", n)
    if key not in _rule_cache:
        x, w = hermegauss(n)
        _rule_cache[key] = (x, w / w.sum())
    return _rule_cache[key]


def _levels(h: Array | float) -> Array:
    """Number J of graded points per side: steps doubling from h (h ≤ 1) up to width _XCAP, then _XCAP wide,
    until the outermost point is within _XCAP of L."""
    h = np.asarray(h, dtype=np.float64)
    k1 = np.maximum(0, np.ceil(np.log2(_XCAP / h)))  # doublings until d ≥ _XCAP
    d1 = h * 2.0**k1
    k2 = np.maximum(0, np.ceil((_L - _XCAP - d1) / _XCAP))
    return (1 + k1 + k2).astype(np.int64)


_J0 = int(_levels(_H0))


def _graded(center: Array, h: Array | float, M: int, hcap: Array | None = None) -> list[Array]:
    """Breakpoints center ± d_k, k < M, with d_0 = h and steps doubling (d_k = 2 d_(k-1)).

    The steps stop growing at ``hcap`` (an x-width, per entry; at most _XCAP): d_k = d_(k-1) + min(d_(k-1), hcap),
    so panels are at most ``hcap`` wide (for integrands oscillating on the z scale, like sin), and never wider
    than _XCAP = 2 standard deviations, where the Gaussian weight itself needs resolving (a 4-wide panel
    [4, 8] cost ∫φ(x)x² dx a relative 3e-12).
    """
    pts = [center]
    hcap = _XCAP if hcap is None else np.minimum(hcap, _XCAP)
    d = np.minimum(h, hcap)
    for _ in range(M):
        pts.append(center - d)
        pts.append(center + d)
        d = d + np.minimum(d, hcap)
    return pts


def _n_levels(J: int, W: float | None, T_max: float) -> int:
    """Points per side: J doubling levels, plus uniform steps of width W/T up to L when capped."""
    if W is None:
        return J
    return J + int(math.ceil(_L * T_max / W))


def _panel_rule(points: list[Array], shape: tuple[int, ...], n: int) -> tuple[Array, Array]:
    """Composite Gauss–Legendre rule for ∫ φ(x) g(x) dx on [-L, L], split at the given breakpoints.

    ``points`` are arrays broadcastable to ``shape + (1,)``; returns nodes and normalised weights of shape
    ``shape + (P·n,)`` with P the number of panels (zero-width panels, from clipped or coincident
    points, get zero weight).
    """
    bp = np.empty(shape + (len(points) + 2,))
    bp[..., 0] = -_L
    bp[..., 1] = _L
    for i, p in enumerate(points):
        bp[..., i + 2 : i + 3] = p
    np.clip(bp, -_L, _L, out=bp)
    bp.sort(axis=-1)
    a = bp[..., :-1, None]
    half = 0.5 * (bp[..., 1:, None] - a)
    gx, gw = _gl(n)
    x = half * (1.0 + gx)  # in-place chain: this is the hot loop together with f itself
    x += a
    w = x * x
    w *= -0.5
    np.exp(w, out=w)
    w *= half
    w *= gw
    x = x.reshape(shape + (-1,))
    w = w.reshape(shape + (-1,))
    w /= w.sum(axis=-1, keepdims=True)
    return x, w


def _gh_rule(shape: tuple[int, ...], n: int) -> tuple[Array, Array]:
    x, w = _gh(n)
    return np.broadcast_to(x, shape + (n,)), np.broadcast_to(w, shape + (n,))


def _check_kinks(kinks: Sequence[float], name: str) -> tuple[float, ...]:
    try:
        out = tuple(sorted({float(k) for k in kinks}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of real numbers, got {kinks!r}") from exc
    if not all(math.isfinite(k) for k in out):
        raise ValueError(f"{name} must be finite, got {kinks!r}")
    return out


def _check_order(order: int | None) -> int:
    if order is None:
        return DEFAULT_ORDER
    if isinstance(order, bool) or int(order) != order or order < 2:
        raise ValueError(f"order must be an integer ≥ 2 (Gauss–Legendre nodes per panel), got {order!r}")
    return int(order)


def _variance(K: object, name: str) -> Array:
    K = np.asarray(K, dtype=np.float64)
    if not np.all(np.isfinite(K)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    if np.any(K < 0):
        raise ValueError(f"{name} is a variance and must be ≥ 0; got min {K.min()!r}")
    return K


def _feature_points(kinks: tuple[float, ...]) -> tuple[float, ...]:
    """Kinks plus z = 0, where the analytic structure of every activation sits."""
    return tuple(sorted(set(kinks) | {0.0}))


def _eval1(f: Func1, z: Array) -> Array:
    return np.broadcast_to(np.asarray(f(z), dtype=np.float64), z.shape)


def _eval2(f: Func2, za: Array, zb: Array) -> Array:
    za, zb = np.broadcast_arrays(za, zb)
    return np.broadcast_to(np.asarray(f(za, zb), dtype=np.float64), za.shape)


def _blocks(n_entries: int, per_entry: int):
    size = max(1, _BLOCK_ELEMS // max(per_entry, 1))
    for start in range(0, n_entries, size):
        yield slice(start, min(start + size, n_entries))


# --------------------------------------------------------------------------------------------- budget


def _budget() -> float:
    """The work budget: most integrand evaluations per entry (env ``NNFT_QUAD_BUDGET``, default 2e8)."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET
    try:
        val = float(raw)
    except ValueError:
        val = float("nan")
    if not (val > 0 and math.isfinite(val)):
        from nnft.errors import InputError

        raise InputError(f"{BUDGET_ENV}={raw!r} is not a positive number of integrand evaluations per entry "
                         f"(the default is {DEFAULT_BUDGET:.0e}); unset it or give e.g. {BUDGET_ENV}=1e9")
    return val


def _over_budget(what: str, evals: float, budget: float, s: float) -> BudgetError:
    return BudgetError(
        f"Gaussian quadrature stopped: {what} at standard deviation {s:.3g} needs about {evals:.3g} integrand "
        f"evaluations per entry, above the work budget of {budget:.3g} ({BUDGET_ENV}). Likely cause: variances "
        f"spanning extreme scales (inputs of very different norms; rescale the inputs), or an activation that "
        f"oscillates fast at this variance; raise {BUDGET_ENV} (e.g. {BUDGET_ENV}=1e10) to run it anyway"
    )


def _progress(total_evals: float, n_entries: int, name: str):
    """A tqdm bar over entries for a long quadrature call (on a terminal only), else None."""
    if total_evals < _PROGRESS_EVALS or n_entries < 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n_entries, desc=f"nnft quadrature {name}", unit="entry", disable=None, leave=False)


# --------------------------------------------------------------------------------------------- 1-D

#: Panel-width caps (in units of z) tried in turn when a probe shows the graded rule has not converged.
_CAPS: tuple[float | None, ...] = (None, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125)
_PROBE_TOL = 1e-10


def _levels_for(s: float) -> int:
    """Graded levels J for a standard deviation s (feature points resolved on the z scale)."""
    return int(_levels(min(_H0, _DELTA / s))) if s > 0 else _J0


def _rule1(s: Array, kinks: tuple[float, ...], n: int, J: int, W: float | None) -> tuple[Array, Array]:
    """Panel rule for ⟨g(s·x)⟩ for entries with standard deviations ``s`` (shape (B,)); returns (B, N)."""
    s_safe = np.where(s > 0, s, 1.0)[:, None]
    h = np.minimum(_H0, _DELTA / s_safe)
    hcap = None if W is None else W / s_safe
    M = _n_levels(J, W, float(s.max(initial=0.0)))
    pts = _graded(np.zeros_like(s_safe), h, M, hcap)
    for k in kinks:
        if k != 0.0:
            pts += _graded(k / s_safe, h, M, hcap)
    return _panel_rule(pts, s.shape, n)


def _probe(g: Func1, s: float, kinks: tuple[float, ...], n: int, W: float | None) -> float:
    """Relative disagreement of the rule at order n and 2n on ⟨g(s x)²⟩ (0 when nothing can be compared)."""
    sv = np.array([s])
    J = _levels_for(s)
    vals = []
    for m in (n, 2 * n):
        x, w = _rule1(sv, kinks, m, J, W)
        vals.append(float(np.sum(w * _eval1(g, s * x) ** 2)))
    a, b = vals
    if not (math.isfinite(a) and math.isfinite(b)):
        return 0.0  # nothing a finer mesh can fix (the caller's finiteness check reports it)
    return abs(a - b) / (abs(b) + 1e-300)


def _choose_cap(probes: list[tuple[Func1, float, tuple[float, ...]]], n: int,
                cost: Callable[[float | None], float]) -> float | None:
    """Coarsest panel-width cap for which every 1-D probe (g, s, kinks) has converged, within the budget.

    ``cost(W)`` is the number of integrand evaluations per entry of the rule with cap W. Raises
    :class:`~nnft.errors.BudgetError` when no affordable cap converges (a function singular on the real line,
    such as tan(z), or one oscillating much faster than the panels).
    """
    budget = _budget()
    tol = max(_PROBE_TOL, 10.0 ** -(n + 1))  # what order n achieves on analytic panels
    s_max = max((s for _, s, _ in probes), default=0.0)
    worst = 0.0
    for W in _CAPS:
        evals = cost(W)
        if evals > budget:
            if W is None:
                raise _over_budget("the graded rule", evals, budget, s_max)
            break
        worst = max(_probe(g, s, k, n, W) for g, s, k in probes)
        if worst <= tol:
            return W
    raise BudgetError(
        f"Gaussian quadrature did not converge at standard deviation {s_max:.3g}: rules of order {n} and {2 * n} "
        f"still disagree by {worst:.2g} (relative) with the finest panels affordable within the work budget of "
        f"{budget:.3g} integrand evaluations per entry ({BUDGET_ENV}). Likely cause: the activation (or its "
        "derivative) is singular or not finite somewhere on the real line (e.g. tan(z), 1/(z - a)), or it "
        "oscillates much faster than the Gaussian at this variance. Check the activation; rescale the inputs; "
        f"if it is legitimate, raise {BUDGET_ENV} or the quadrature order"
    )


def _cost1(J: int, s_max: float, kinks: tuple[float, ...], n: int) -> Callable[[float | None], float]:
    return lambda W: float((2 * _n_levels(J, W, s_max) + 2) * (1 + len(kinks)) * n)


def gauss1(f: Func1, K: object, kinks: Sequence[float] = (), *, order: int | None = None) -> Array:
    """Return ⟨f(z)⟩ for z ~ N(0, K), elementwise over an array K of variances.

    ⟨f(z)⟩ = ∫ φ(x) f(√K·x) dx, computed with graded composite Gauss–Legendre split exactly at the
    ``kinks`` (points where f or f' is discontinuous), or Gauss–Hermite for smooth f and K ≤ 0.09
    (see the module docstring). ``f`` is a vectorised numpy callable; K = 0 gives f(0).
    ``order`` is the number of Gauss–Legendre nodes per panel (default :data:`DEFAULT_ORDER`).
    Raises :class:`~nnft.errors.BudgetError` if the rule does not converge within the work budget.
    """
    n = _check_order(order)
    kinks = _check_kinks(kinks, "kinks")
    K = _variance(K, "K")
    shape = K.shape
    s = np.sqrt(K.ravel())
    out = np.empty(s.shape)
    if not kinks:
        gh = s <= _S_GH
        idx = np.flatnonzero(gh)
        if idx.size:
            x, w = _gh(2 * n + 4)
            for sl in _blocks(idx.size, x.size):
                ii = idx[sl]
                out[ii] = _eval1(f, s[ii, None] * x) @ w
        rest = np.flatnonzero(~gh)
    else:
        rest = np.arange(s.size)
    if rest.size:
        J = _levels(np.minimum(_H0, _DELTA / np.where(s[rest] > 0, s[rest], 1.0)))
        for Jv in np.unique(J):
            sel = rest[J == Jv]
            Jv = int(Jv)
            s_max = float(s[sel].max())
            W = _choose_cap([(f, s_max, kinks)], n, _cost1(Jv, s_max, kinks, n))
            M = _n_levels(Jv, W, s_max)
            per = (2 * M + 2) * (1 + len(kinks)) * n
            for sl in _blocks(sel.size, per):
                ii = sel[sl]
                x, w = _rule1(s[ii], kinks, n, Jv, W)
                out[ii] = np.einsum("ij,ij->i", _eval1(f, s[ii, None] * x), w)
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------- 2-D


def correlation(Kaa: object, Kab: object, Kbb: object) -> Array:
    """Return c = K_ab/√(K_aa K_bb) clipped into [-1, 1], without overflow or underflow; 0 where a variance is 0.

    The variances are scaled by exact powers of two before the product, so K_aa·K_bb never leaves the
    float64 range (K ~ 1e300 or 1e-300 work), and the result is bit-identical to the plain formula
    wherever that does not overflow; in particular c = 1 exactly when K_ab = K_aa = K_bb.
    """
    Kaa, Kab, Kbb = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (Kaa, Kab, Kbb)))
    ea = np.frexp(Kaa)[1] // 2
    eb = np.frexp(Kbb)[1] // 2
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        den = np.sqrt(np.ldexp(Kaa, -2 * ea) * np.ldexp(Kbb, -2 * eb))
        num = np.ldexp(Kab, -(ea + eb))
        c = np.where((Kaa > 0) & (Kbb > 0), num / np.where(den > 0, den, 1.0), 0.0)
    return np.clip(c, -1.0, 1.0)


def _prepare2(Kaa: object, Kab: object, Kbb: object, *, corr: bool = False
              ) -> tuple[tuple[int, ...], Array, Array, Array]:
    Kaa = _variance(Kaa, "Kaa")
    Kbb = _variance(Kbb, "Kbb")
    name = "c" if corr else "Kab"
    Kab = np.asarray(Kab, dtype=np.float64)
    if not np.all(np.isfinite(Kab)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    try:
        shape = np.broadcast_shapes(Kaa.shape, Kab.shape, Kbb.shape)
    except ValueError as exc:
        raise ValueError(
            f"Kaa, {name}, Kbb have shapes {Kaa.shape}, {Kab.shape}, {Kbb.shape}, which do not broadcast"
        ) from exc
    Kaa, Kab, Kbb = (np.broadcast_to(a, shape).ravel() for a in (Kaa, Kab, Kbb))
    return shape, Kaa, Kab, Kbb


def _probes(fa, fb, f2, ka, kb, sa_max: float, sb_max: float) -> list[tuple[Func1, float, tuple[float, ...]]]:
    """1-D sections of the integrand whose convergence decides the panel-width cap."""
    if f2 is None:
        return [(fa, sa_max, ka), (fb, sb_max, kb)]
    probes = [
        (lambda z: f2(z, np.zeros_like(z)), sa_max, ka),
        (lambda z: f2(np.zeros_like(z), z), sb_max, kb),
    ]
    if sa_max >= sb_max > 0:  # sections z_b = ±r z_a, parametrised by the wider variable
        r = sb_max / sa_max
        for sg in (1.0, -1.0):
            kk = tuple(sorted(set(ka) | {sg * k / r for k in kb}))
            probes.append((lambda z, sg=sg: f2(z, sg * r * z), sa_max, kk))
    elif sb_max > sa_max > 0:
        r = sa_max / sb_max
        for sg in (1.0, -1.0):
            kk = tuple(sorted(set(kb) | {sg * k / r for k in ka}))
            probes.append((lambda z, sg=sg: f2(sg * r * z, z), sb_max, kk))
    return probes


def _swapped(f2: Func2 | None) -> Func2 | None:
    if f2 is None:
        return None

    def g(x: Array, y: Array, f2: Func2 = f2) -> Array:
        return f2(y, x)

    return g


def _gauss2(
    fa: Func1 | None,
    fb: Func1 | None,
    f2: Func2 | None,
    Kaa: object,
    Kab: object,
    Kbb: object,
    kinks_a: Sequence[float],
    kinks_b: Sequence[float],
    order: int | None,
    corr: bool = False,
) -> Array:
    """Shared driver of the 2-D rules; ``corr`` means ``Kab`` is the correlation c itself (no K_ab formed)."""
    n = _check_order(order)
    ka = _check_kinks(kinks_a, "kinks_a")
    kb = _check_kinks(kinks_b, "kinks_b")
    shape, Kaa, Kab, Kbb = _prepare2(Kaa, Kab, Kbb, corr=corr)
    if corr:
        c = np.where((Kaa > 0) & (Kbb > 0), np.clip(Kab, -1.0, 1.0), 0.0)
    else:
        c = correlation(Kaa, Kab, Kbb)
    sa, sb = np.sqrt(Kaa), np.sqrt(Kbb)
    # orientation: the kinked variable outside; for smooth pairs the wider one, so that the inner
    # conditional standard deviation s_inner·ε is the smaller one (inputs of very different norms)
    if kb and not ka:
        flip = np.ones(sa.shape, dtype=bool)
    elif not ka and not kb:
        flip = sb > sa
    else:
        flip = np.zeros(sa.shape, dtype=bool)
    out = np.empty(sa.shape)
    jobs = []
    for fl in (False, True):
        idx = np.flatnonzero(flip == fl)
        if idx.size == 0:
            continue
        if fl:
            jobs.append((idx, (fb, fa, _swapped(f2), kb, ka), sb[idx], c[idx], sa[idx]))
        else:
            jobs.append((idx, (fa, fb, f2, ka, kb), sa[idx], c[idx], sb[idx]))
    plans = [(idx, fs, _plan2(*fs, s_a, cc, s_b, n)) for idx, fs, s_a, cc, s_b in jobs]
    total = sum(p[0] for _, _, p in plans)
    bar = _progress(total, sa.size, "2-D")
    try:
        for idx, fs, (_, steps) in plans:
            res = np.empty(idx.size)
            for block, args in steps:
                block(*args, res, *fs, n, bar)
            out[idx] = res
    finally:
        if bar is not None:
            bar.close()
    return out.reshape(shape)


def _std_sizes(Jo: int, Ji: int, W: float | None, To: float, Ti: float, ka, pb, n: int) -> tuple[int, ...]:
    """(outer nodes, inner nodes, Mo, Mi, M0) per entry of the standard-order rule."""
    Mo = _n_levels(Jo, W, To)
    n_o = (2 * Mo + 2) * (1 + len([k for k in ka if k != 0.0])) * n
    if Ji < 0:  # smooth f_b with a small conditional std: Gauss–Hermite inside
        return n_o, 2 * n + 4, Mo, 0, 0
    Mi = _n_levels(Ji, W, Ti)
    M0 = _n_levels(_J0, W, Ti)
    n_i = (2 * M0 + 2 + len(pb) * (2 * Mi + 1)) * n
    return n_o, n_i, Mo, Mi, M0


def _swap_sizes(Jo: int, Ji: int, W: float | None, To: float, Ti: float, pa, pb, cross, n: int) -> tuple[int, ...]:
    """(outer nodes, inner nodes, Mo, Mi) per entry of the swapped-order rule."""
    Mo = _n_levels(Jo, W, To)
    Mi = _n_levels(Ji, W, Ti)
    n_o = (2 * Mo + 2) * (1 + len(cross)) * n
    n_i = (2 * Mi + 2) * (len(pa) + len(pb)) * n
    return n_o, n_i, Mo, Mi


def _plan2(fa, fb, f2, ka, kb, sa: Array, c: Array, sb: Array, n: int):
    """Buckets of entries with their rules: (total evaluations, [(block function, args), ...])."""
    eps = np.sqrt((1.0 - c) * (1.0 + c))
    smax = np.maximum(sa, sb)
    absc = np.abs(c)
    kind = np.zeros(sa.shape, dtype=np.int64)  # -1 Gauss–Hermite, 0 standard order, 1 swapped order
    if not ka and not kb:
        kind[smax <= _S_GH] = -1
    if ka and kb:
        kind[absc > _SWAP_C] = 1
    kind[(kind == 0) & (eps == 0)] = 2  # c = ±1 exactly (the diagonal): a 1-D rule along the line z_b = ±(s_b/s_a) z_a
    To_std = np.maximum(sa, absc * sb)
    Ti_std = sb * eps
    To_sw = sb * eps
    Ti_sw = np.maximum(sa, absc * sb)

    def lv(T: Array) -> Array:
        return _levels(np.minimum(_H0, _DELTA / np.where(T > 0, T, 1.0)))

    Jo = np.where(kind == 1, lv(smax), lv(To_std))
    Ji = np.where(kind == 1, lv(Ti_sw), lv(Ti_std))
    if not kb:  # smooth inner integrand on a small scale: Gauss–Hermite (as in 1-D), flagged by Ji = -1
        Ji[(kind == 0) & (Ti_std <= _S_GH)] = -1
    steps = []
    total = 0.0
    pa, pb = _feature_points(ka), _feature_points(kb)
    cross = [(p, q) for p in pa for q in pb if (p, q) != (0.0, 0.0)]
    for kv in np.unique(kind):
        if kv == -1:
            sel = np.flatnonzero(kind == -1)
            n_gh = 2 * n + 4
            total += sel.size * n_gh * n_gh
            steps.append((_std_block, (sel, sa, sb, c, eps, None, None, None)))
            continue
        m = kind == kv
        for jo, ji in {(int(a), int(b)) for a, b in zip(Jo[m], Ji[m], strict=True)}:
            sel = np.flatnonzero(m & (Jo == jo) & (Ji == ji))
            if kv == 2:
                To = float(To_std[sel].max())
                nk = len([k for k in ka + kb if k != 0.0])

                def cost(W, jo=jo, To=To, nk=nk):
                    return float((2 * _n_levels(jo, W, To) + 2) * (1 + nk) * n)
            elif kv == 0:
                To, Ti = float(To_std[sel].max()), float(Ti_std[sel].max())

                def cost(W, jo=jo, ji=ji, To=To, Ti=Ti):
                    n_o, n_i = _std_sizes(jo, ji, W, To, Ti, ka, pb, n)[:2]
                    return float(n_o) * n_i
            else:
                To, Ti = float(To_sw[sel].max()), float(Ti_sw[sel].max())

                def cost(W, jo=jo, ji=ji, To=To, Ti=Ti):
                    n_o, n_i = _swap_sizes(jo, ji, W, To, Ti, pa, pb, cross, n)[:2]
                    return float(n_o) * n_i
            W = _choose_cap(_probes(fa, fb, f2, ka, kb, float(sa[sel].max()), float(sb[sel].max())), n, cost)
            total += sel.size * cost(W)
            block = {0: _std_block, 1: _swap_block, 2: _line_block}[int(kv)]
            steps.append((block, (sel, sa, sb, c, eps, jo, ji, W)))
    return total, steps


def _cap(W: float | None, T: Array) -> Array | None:
    return None if W is None else W / np.where(T > 0, T, 1.0)


def _chunks(n_cols: int, per_col: int):
    """Column slices of the outer nodes so that one (block, columns, inner nodes) temporary stays small."""
    size = max(1, _BLOCK_ELEMS // max(per_col, 1))
    for start in range(0, n_cols, size):
        yield slice(start, min(start + size, n_cols))


def _std_block(sel, sa, sb, c, eps, Jo, Ji, W, out, fa, fb, f2, ka, kb, n, bar) -> None:
    """Outer integral over u (z_a = s_a u), inner over w at fixed u; Jo None means Gauss–Hermite."""
    if Jo is None:
        n_o = n_i = 2 * n + 4
    else:
        pb = _feature_points(kb)
        To = np.maximum(sa[sel], np.abs(c[sel]) * sb[sel])  # z-scale of the outer integrand per unit u
        Ti = sb[sel] * eps[sel]
        n_o, n_i, Mo, Mi, M0 = _std_sizes(Jo, Ji, W, float(To.max()), float(Ti.max()), ka, pb, n)
    for sl in _blocks(sel.size, n_o * n_i):
        ii = sel[sl]
        B = ii.size
        s_a, s_b, cc = sa[ii, None], sb[ii, None], c[ii, None]
        t = s_b * eps[ii, None]  # (B,1) conditional std of z_b
        if Jo is None:
            xu, wu = _gh_rule((B,), n_o)
        else:
            sa_safe = np.where(s_a > 0, s_a, 1.0)
            To_b = np.maximum(s_a, np.abs(cc) * s_b)
            h = np.minimum(_H0, _DELTA / np.where(To_b > 0, To_b, 1.0))
            hcap = _cap(W, To_b)
            pts = _graded(np.zeros((B, 1)), h, Mo, hcap)
            ha = np.minimum(_H0, _DELTA / sa_safe)
            for k in ka:
                if k != 0.0:
                    pts += _graded(k / sa_safe, ha, Mo, hcap)
            xu, wu = _panel_rule(pts, (B,), n)
            t_safe = np.where(t > 0, t, 1.0)  # (B,1)
            hb = np.minimum(_H0, _DELTA / t_safe)[..., None]
            hcap_i = _cap(W, t)
            hcap_i = None if hcap_i is None else hcap_i[..., None]
        za = s_a * xu  # (B, n_o)
        fa_vals = _eval1(fa, za) if f2 is None else None
        acc = np.zeros(B)
        for js in _chunks(xu.shape[1], B * n_i):
            mu = (cc * s_b) * xu[:, js]  # (B, m) conditional mean of z_b
            if Jo is None or Ji < 0:
                xw, ww = _gh_rule((B, mu.shape[1]), n_i)
            else:
                pts = _graded(np.zeros((1, 1, 1)), _H0, M0, hcap_i)
                for k in pb:
                    pts += _graded(((k - mu) / t_safe)[..., None], hb, Mi, hcap_i)
                xw, ww = _panel_rule(pts, (B, mu.shape[1]), n)
            zb = mu[..., None] + t[..., None] * xw
            if f2 is None:
                inner = np.einsum("ijk,ijk->ij", _eval1(fb, zb), ww)
                acc += np.einsum("ij,ij,ij->i", fa_vals[:, js], inner, wu[:, js])
            else:
                inner = np.einsum("ijk,ijk->ij", _eval2(f2, za[:, js, None], zb), ww)
                acc += np.einsum("ij,ij->i", inner, wu[:, js])
        out[ii] = acc
        if bar is not None:
            bar.update(B)


def _line_block(sel, sa, sb, c, eps, Jo, Ji, W, out, fa, fb, f2, ka, kb, n, bar) -> None:
    """Entries with c = ±1 exactly (ε = 0, e.g. the diagonal): z_b = c·s_b·u, a single graded rule over u."""
    To = np.maximum(sa[sel], sb[sel])
    Mo = _n_levels(Jo, W, float(To.max()))
    ka_nz = [k for k in ka if k != 0.0]
    kb_nz = [k for k in kb if k != 0.0]
    per = (2 * Mo + 2) * (1 + len(ka_nz) + len(kb_nz)) * n
    for sl in _blocks(sel.size, per):
        ii = sel[sl]
        B = ii.size
        s_a, s_b, cc = sa[ii, None], sb[ii, None], c[ii, None]  # s_a, s_b > 0 and |c| = 1 here
        To_b = np.maximum(s_a, s_b)
        h = np.minimum(_H0, _DELTA / To_b)
        hcap = _cap(W, To_b)
        pts = _graded(np.zeros((B, 1)), h, Mo, hcap)
        for k in ka_nz:
            pts += _graded(k / s_a, np.minimum(_H0, _DELTA / s_a), Mo, hcap)
        for k in kb_nz:
            pts += _graded(k / (cc * s_b), np.minimum(_H0, _DELTA / s_b), Mo, hcap)
        xu, wu = _panel_rule(pts, (B,), n)
        za = s_a * xu
        zb = (cc * s_b) * xu
        vals = _eval1(fa, za) * _eval1(fb, zb) if f2 is None else _eval2(f2, za, zb)
        out[ii] = np.einsum("ij,ij->i", vals, wu)
        if bar is not None:
            bar.update(B)


def _swap_block(sel, sa, sb, c, eps, Jo, Ji, W, out, fa, fb, f2, ka, kb, n, bar) -> None:
    """Outer integral over w (across the thin wedge of nearly parallel kinks), inner over u."""
    pa, pb = _feature_points(ka), _feature_points(kb)
    cross = [(p, q) for p in pa for q in pb if (p, q) != (0.0, 0.0)]
    To = sb[sel] * eps[sel]
    Ti = np.maximum(sa[sel], np.abs(c[sel]) * sb[sel])
    n_o, n_i, Mo, Mi = _swap_sizes(Jo, Ji, W, float(To.max()), float(Ti.max()), pa, pb, cross, n)
    for sl in _blocks(sel.size, n_o * n_i):
        ii = sel[sl]
        B = ii.size
        s_a, s_b, cc, ee = sa[ii, None], sb[ii, None], c[ii, None], eps[ii, None]  # all > 0 but ee
        smax = np.maximum(s_a, s_b)
        h = np.minimum(_H0, _DELTA / smax)
        e_safe = np.where(ee > 0, ee, 1.0)
        hcap = _cap(W, s_b * ee)
        pts = _graded(np.zeros((B, 1)), h, Mo, hcap)
        for p, q in cross:
            wstar = np.where(ee > 0, (q / s_b - cc * p / s_a) / e_safe, 0.0)
            pts += _graded(wstar, h, Mo, hcap)
        xw, ww = _panel_rule(pts, (B,), n)  # (B, n_o)
        ha = np.minimum(_H0, _DELTA / s_a)[..., None]  # (B,1,1)
        hb = np.minimum(_H0, _DELTA / (np.abs(cc) * s_b))[..., None]
        hcap = _cap(W, np.maximum(s_a, np.abs(cc) * s_b))
        hcap = None if hcap is None else hcap[..., None]
        acc = np.zeros(B)
        for js in _chunks(xw.shape[1], B * n_i):
            pts = _graded(np.zeros((B, 1, 1)), ha, Mi, hcap)
            for p in pa:
                if p != 0.0:
                    pts += _graded((p / s_a)[..., None], ha, Mi, hcap)
            shift = (ee * xw[:, js])[..., None]  # (B, m, 1)
            for q in pb:
                pts += _graded((q / s_b[..., None] - shift) / cc[..., None], hb, Mi, hcap)
            xu, wu = _panel_rule(pts, (B, shift.shape[1]), n)  # (B, m, n_i)
            za = s_a[..., None] * xu
            zb = s_b[..., None] * (cc[..., None] * xu + shift)
            if f2 is None:
                vals = _eval1(fa, za) * _eval1(fb, zb)
            else:
                vals = _eval2(f2, za, zb)
            inner = np.einsum("ijk,ijk->ij", vals, wu)
            acc += np.einsum("ij,ij->i", inner, ww[:, js])
        out[ii] = acc
        if bar is not None:
            bar.update(B)


def gauss2(
    f: Func2,
    Kaa: object,
    Kab: object,
    Kbb: object,
    kinks_a: Sequence[float] = (),
    kinks_b: Sequence[float] = (),
    *,
    order: int | None = None,
) -> Array:
    """Return ⟨f(z_a, z_b)⟩ for (z_a, z_b) ~ N(0, [[Kaa, Kab], [Kab, Kbb]]), elementwise over broadcast arrays.

    ⟨f⟩ = ∫∫ φ(u) φ(w) f(s_a u, s_b (c u + ε w)) du dw with c = Kab/√(Kaa Kbb) clipped into [-1, 1] and
    ε = √(1 − c²), computed with nested graded Gauss–Legendre split exactly at the kinks (module
    docstring). ``f(za, zb)`` is a vectorised numpy callable taking two arrays of equal shape;
    ``kinks_a`` / ``kinks_b`` are the points where f is non-smooth (or jumps) as a function of z_a / z_b.
    Zero variance pins that variable to 0. ``order``: Gauss–Legendre nodes per panel.
    """
    return _gauss2(None, None, f, Kaa, Kab, Kbb, kinks_a, kinks_b, order)


def gauss2_product(
    fa: Func1,
    fb: Func1,
    Kaa: object,
    Kab: object,
    Kbb: object,
    kinks_a: Sequence[float] = (),
    kinks_b: Sequence[float] = (),
    *,
    order: int | None = None,
) -> Array:
    """Return ⟨fa(z_a) fb(z_b)⟩ for (z_a, z_b) ~ N(0, [[Kaa, Kab], [Kab, Kbb]]), elementwise over broadcast arrays.

    Same method as :func:`gauss2`, but for entries integrated with u outside, fa is evaluated once per
    outer node and only fb on the inner nodes: ⟨fa fb⟩ = Σ_i W_i fa(s_a u_i) Σ_j w_ij fb(μ_i + t x_ij).
    """
    return _gauss2(fa, fb, None, Kaa, Kab, Kbb, kinks_a, kinks_b, order)


def gauss2_product_corr(
    fa: Func1,
    fb: Func1,
    Kaa: object,
    c: object,
    Kbb: object,
    kinks_a: Sequence[float] = (),
    kinks_b: Sequence[float] = (),
    *,
    order: int | None = None,
) -> Array:
    """Return ⟨fa(z_a) fb(z_b)⟩ at variances Kaa, Kbb and correlation c (clipped into [-1, 1]).

    Same as :func:`gauss2_product` with K_ab = c·√(Kaa Kbb), but K_ab is never formed, so variances
    near the ends of the float64 range need no care (used by the correlation tables).
    """
    return _gauss2(fa, fb, None, Kaa, c, Kbb, kinks_a, kinks_b, order, corr=True)
