"""The full forward–backward saddle: damped fixed-point iteration with continuation in width and a PSD safeguard.

Unknowns: the conjugate kernels ``C̃^{(2)} … C̃^{(L)}`` on the training block. One sweep of the map
``T(C̃)`` runs the derived forward equations from ``C^{(1)} = K^{(1)}`` up (``C^{(ℓ)} = C_b 11ᵀ + ∂W/∂C̃``), then the
output and backward equations down (:mod:`nnft.feature_learning.action`); the solver iterates
``C̃ ← (1 − η) C̃ + η T(C̃)``. A cold start at small width does not converge (../shared/THEORY.md §5: at n = 10–20
the iteration stalls or produces indefinite kernels), so the widths are scaled by ``s = 64, 32, …, 1`` and each
stage starts from the previous one's error signal ``n C̃`` (order one, width independent). Every sweep checks
that each ``C^{(ℓ)}`` is positive semi-definite and that the tilted measure is normalisable
(``2 C_W λ_max(C̃ C) < 1`` for unbounded φ); a sweep that fails either halves η and restarts from the last
accepted state. Residual: ``max_ℓ ‖T(C̃) − C̃‖_F n_{ℓ−1} / (1 + ‖T(C̃)‖_F n_{ℓ−1})``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnft.errors import ConvergenceError

__all__ = ["SaddleResult", "solve_saddle"]


class _Unsafe(Exception):
    """A sweep produced an indefinite kernel or a non-normalisable tilt."""


@dataclass
class SaddleResult:
    """The MAP kernels ``C`` (L, P, P), conjugates ``C_tilde`` (L, P, P) and the solver's record."""

    C: np.ndarray
    C_tilde: np.ndarray
    converged: bool
    residual: float
    iterations: int
    stages: list[dict] = field(default_factory=list)
    stderr: np.ndarray | None = None


def _width_factors(net, s: float = 1.0) -> np.ndarray:
    """``n_{ℓ−1}`` per layer index (1 for layer 1), scaled by ``s``, shaped (L, 1, 1): ``c̃ = n C̃``."""
    return np.array([1.0, *(s * w for w in net.widths)])[:, None, None]


def _psd_or_raise(C: np.ndarray, ell: int) -> None:
    lam = np.linalg.eigvalsh(C)
    if lam[0] < -1e-9 * max(lam[-1], 1e-300):
        raise _Unsafe(f"C^({ell}) indefinite (λ_min = {lam[0]:.3g})")


class _Sweep:
    """One evaluation of ``T``: forward from C^{(1)}, output, backward (widths scaled by ``s``)."""

    def __init__(self, net, K1: np.ndarray, Y: np.ndarray, P_A: int, kappa: float, linear: bool, tilted=None):
        from nnft.feature_learning.action import layer_equations

        self.net, self.K1, self.Y, self.P_A, self.kappa = net, K1, Y, P_A, kappa
        self.linear, self.tilted = linear, tilted
        eq = layer_equations(linear)
        self.f = eq.numeric
        self.L, self.P = net.depth, K1.shape[0]
        self.bounded = (not linear) and _bounded(net.activation)
        self.lip = 1.0 if linear or self.bounded else _linear_growth(net.activation)

    def forward(self, Ct: np.ndarray, s: float):
        """``C^{(1..L)}`` (and the tilted moments per layer) from the conjugates ``Ct`` (L, P_A, P_A)."""
        net, P, P_A = self.net, self.P, self.P_A
        C = np.empty((self.L, P, P))
        C[0] = self.K1
        moments = [None] * self.L
        for ell in range(2, self.L + 1):
            cw, cb = net.C_W[ell - 1], net.C_b[ell - 1]
            cp, ct = C[ell - 2], Ct[ell - 1]
            if self.linear:
                ev = np.linalg.eigvals(2.0 * cw * ct @ cp[:P_A, :P_A]).real
                if ev.size and ev.max() >= 1.0:
                    raise _Unsafe(f"tilt of layer {ell} not normalisable (2 C_W λ_max(C̃C) = {ev.max():.3g})")
            elif not self.bounded:  # |φ(z)| ≤ a|z| + b
                if self.tilted.method == "quadrature":  # sufficient: 2 C_W a² λ_max(C̃₊) λ_max(C_AA) < 1
                    bound = 2.0 * cw * self.lip**2 * max(np.linalg.eigvalsh(ct)[-1], 0.0) * np.linalg.eigvalsh(
                        cp[:P_A, :P_A])[-1]
                else:  # the linear-growth condition; a tilt that diverges elsewhere shows in the weights' ESS
                    ev = np.linalg.eigvals(2.0 * cw * self.lip**2 * ct @ cp[:P_A, :P_A]).real
                    bound = ev.max() if ev.size else 0.0
                if bound >= 1.0:
                    raise _Unsafe(f"tilt of layer {ell} not normalisable (bound {bound:.3g} ≥ 1)")
            if self.linear:
                full = np.zeros((P, P))
                full[:P_A, :P_A] = ct
                C[ell - 1] = self.f["forward"](cp, full, cb * np.ones((P, P)), cw)
            else:
                try:
                    mom = self.tilted(cp, ct, cw)
                except ConvergenceError as err:  # the tilt overflowed
                    raise _Unsafe(str(err)) from err
                if self.tilted.method == "montecarlo" and mom.ess < max(50.0, 1e-3 * self.tilted.samples):
                    raise _Unsafe(f"importance weights of layer {ell} degenerate (ESS {mom.ess:.3g})")
                moments[ell - 1] = mom
                C[ell - 1] = cb + mom.F
            C[ell - 1] = 0.5 * (C[ell - 1] + C[ell - 1].T)
            _psd_or_raise(C[ell - 1], ell)
        return C, moments

    def backward(self, C: np.ndarray, moments, s: float) -> np.ndarray:
        """``C̃^{(2..L)}`` (index ℓ − 1) from the kernels; index 0 holds the signal reaching layer 1."""
        net, P_A, L = self.net, self.P_A, self.L
        n = [s * w for w in net.widths]
        Ct = np.zeros((L, P_A, P_A))
        Ct[L - 1] = self.f["output"](C[L - 1][:P_A, :P_A], self.Y, self.kappa, n[L - 2], self.Y.shape[1])
        for ell in range(L - 1, 0, -1):  # C̃^{(ℓ)} from C̃^{(ℓ+1)} and C^{(ℓ)}
            ratio = n[ell - 1] / n[ell - 2] if ell >= 2 else 1.0
            cw = net.C_W[ell]
            if self.linear:
                Ct[ell - 1] = self.f["backward"](C[ell - 1][:P_A, :P_A], Ct[ell], cw, 1.0, ratio)
            else:
                mom = moments[ell] if moments[ell] is not None else self.tilted(C[ell - 1], Ct[ell], cw)
                Ct[ell - 1] = ratio * mom.G
            Ct[ell - 1] = 0.5 * (Ct[ell - 1] + Ct[ell - 1].T)
        return Ct


def _bounded(act) -> bool:
    """σ bounded on the real line (tanh, erf, sigmoid …): every tilt is normalisable."""
    f = act.numpy()
    zz = np.array([-1e3, -1e2, 1e2, 1e3])
    v = np.abs(np.broadcast_to(f(zz), zz.shape))
    return bool(np.all(np.isfinite(v)) and v[0] < 10 * max(v[1], 1) and v[3] < 10 * max(v[2], 1) and v.max() < 1e2)


def _linear_growth(act) -> float:
    """The slope a of ``|φ(z)| ≤ a|z| + b`` at large |z|; refuses σ that grows faster than linearly."""
    from nnft.errors import InputError

    f = act.numpy()
    zz = np.array([-1e4, -1e3, 1e3, 1e4])
    v = np.abs(np.broadcast_to(f(zz), zz.shape))
    slope_far, slope_near = max(v[0], v[3]) / 1e4, max(v[1], v[2]) / 1e3
    if not np.isfinite(slope_far) or slope_far > 1.5 * slope_near + 1e-12:
        raise InputError(f"activation {act.name!r} grows faster than linearly, so the tilted measure "
                         "e^{C_W φᵀC̃φ} is not normalisable for any positive C̃: the full saddle does not exist; "
                         "use method='perturbative'")
    return float(max(slope_far, slope_near))


def _residual(new: np.ndarray, old: np.ndarray, widths: list[float]) -> float:
    r = 0.0
    for ell in range(1, new.shape[0]):  # layers 2..L (index ≥ 1)
        n = widths[ell - 1]
        d = np.linalg.norm(new[ell] - old[ell]) * n
        r = max(r, d / (1.0 + np.linalg.norm(new[ell]) * n))
    return r


def solve_saddle(net, K1: np.ndarray, Y: np.ndarray, P_A: int, kappa: float, *, linear: bool, tilted=None,
                 start: np.ndarray | None = None, K_all: np.ndarray | None = None, tol: float = 1e-12,
                 max_iter: int = 2000, continuation: tuple[float, ...] = (64,), strict: bool = True,
                 newton: bool = True) -> SaddleResult:
    """Solve the saddle equations of ``net`` (first-layer kernel ``K1`` on train ∪ test, targets ``Y``).

    ``start``: error signals ``c̃ = n C̃`` (L, P_A, P_A) to begin from (e.g. the perturbative solution); zero
    (the NNGP) otherwise. The widths are scaled by ``s = s₀, s₀/2, …, 1``, ``s₀ ≥ continuation[0]`` chosen
    (with ``K_all``, the NNGP kernels) so that the starting tilt is weak; a stage that fails is retried after an
    intermediate width. ``newton``: first try Newton–Krylov at the target width from ``start`` (fast when the
    first-order start is close); continuation takes over when it fails. ``strict``: raise
    :class:`ConvergenceError` with the last residual when a stage does not converge; otherwise return the last
    accepted state with ``converged=False``.
    """
    sweep = _Sweep(net, K1, Y, P_A, kappa, linear, tilted)
    L = net.depth
    ct = np.zeros((L, P_A, P_A)) if start is None else np.array(start[:, :P_A, :P_A], dtype=np.float64)
    stages, total = [], 0
    if newton:
        out = _newton_krylov(sweep, net, ct, tol, max_iter)
        if out is not None:
            stages.append({k: out[k] for k in ("width_scale", "iterations", "residual", "damping")})
            return _result(net, K1, P_A, out["ct"], out["C"], out["moments"], True, out["residual"],
                           out["iterations"], stages)
    s0 = continuation[0]
    if K_all is not None and np.any(ct):
        s0 = _first_scale(net, K_all, ct, P_A, s0)
    queue = sorted({float(s0) * 0.5**k for k in range(int(round(np.log2(s0))) + 1)} | {1.0}, reverse=True)
    last_ok: float | None = None
    converged, res, C, mom = False, np.inf, None, None
    while queue:
        s = queue.pop(0)
        out = _stage(sweep, net, ct, s, tol, max_iter)
        total += out["iterations"]
        stages.append({k: out[k] for k in ("width_scale", "iterations", "residual", "damping")})
        if out["ok"]:
            ct, C, mom, res, last_ok = out["ct"], out["C"], out["moments"], out["residual"], s
            converged = s == 1.0
            continue
        res = out["residual"]
        if last_ok is not None and last_ok / s > 1.05 and len(stages) < 60:  # a smaller step in width
            queue[:0] = [float(np.sqrt(last_ok * s)), s]
            continue
        msg = (f"the forward–backward saddle did not converge at width scale {s:g} (widths "
               f"{[round(w * s, 3) for w in net.widths]}): residual {res:.3g} after {out['iterations']} iterations, "
               f"damping {out['damping']:.3g}. The error signal is too large for this width: increase the width or "
               "kappa, rescale the targets, or use method='perturbative'")
        if strict:
            err = ConvergenceError(msg)
            err.stages = stages
            raise err
        if C is None:  # nothing accepted: report the unconverged stage itself
            ct, C, mom = out["ct"], out["C"], out["moments"]
        import warnings

        warnings.warn(msg + f". Returned: the last accepted state, at width scale {last_ok or s:g} (not the requested "
                      "widths)", RuntimeWarning, stacklevel=3)
        break
    return _result(net, K1, P_A, ct, C, mom, converged, res, total, stages)


def _result(net, K1, P_A, ct, C, mom, converged, res, total, stages) -> SaddleResult:
    L = net.depth
    n_of = _width_factors(net)
    Ct_full = np.zeros((L, K1.shape[0], K1.shape[0]))
    Ct_full[:, :P_A, :P_A] = ct / n_of
    stderr = None
    if mom is not None and any(m_ is not None for m_ in mom):
        stderr = np.stack([np.zeros_like(K1) if m_ is None else m_.F_stderr for m_ in mom])
    return SaddleResult(C=C, C_tilde=Ct_full, converged=converged, residual=float(res), iterations=total,
                        stages=stages, stderr=stderr)


def _newton_krylov(sweep: _Sweep, net, ct: np.ndarray, tol: float, max_iter: int) -> dict | None:
    """Newton–Krylov (scipy) on ``T(C̃) − C̃`` at the target width from ``ct``; None if it fails or leaves the
    safe set (then the caller continues in width). Counts sweeps."""
    from scipy.optimize import NoConvergence, newton_krylov

    L, P_A = net.depth, ct.shape[1]
    n_of = _width_factors(net)
    count = [0]

    def residual(v):
        count[0] += 1
        Ct = v.reshape(L, P_A, P_A) / n_of
        C, mom = sweep.forward(Ct, 1.0)
        return ((sweep.backward(C, mom, 1.0) - Ct) * n_of).ravel()

    try:
        sol = newton_krylov(residual, ct.ravel(), f_tol=max(tol, 1e-14), maxiter=min(max_iter, 60))
        Ct = sol.reshape(L, P_A, P_A) / n_of
        C, mom = sweep.forward(Ct, 1.0)
        T = sweep.backward(C, mom, 1.0)
    except (_Unsafe, NoConvergence, np.linalg.LinAlgError, ValueError, FloatingPointError):
        return None
    r = _residual(T, Ct, list(net.widths))
    if not r < tol:
        return None
    return {"ct": T * n_of, "C": C, "moments": mom, "residual": r, "iterations": count[0], "damping": 1.0,
            "width_scale": 1.0}


def _first_scale(net, K: np.ndarray, ct: np.ndarray, P_A: int, s0: float) -> float:
    """The width scale (a power of two ≥ ``s0``) at which the starting tilt is weak: 2 C_W |λ(C̃ K)| ≤ 0.02.

    ``K`` (L, P, P) are the NNGP kernels; the tilt of layer ℓ acts on ``K^{(ℓ−1)}`` with ``C̃ = c̃ / (s n_{ℓ−1})``.
    """
    lam = 0.0
    for ell in range(2, net.depth + 1):
        M = 2.0 * net.C_W[ell - 1] * ct[ell - 1, :P_A, :P_A] @ K[ell - 2, :P_A, :P_A]
        lam = max(lam, float(np.abs(np.linalg.eigvals(M)).max()) / net.widths[ell - 2])
    s = max(float(s0), 1.0)
    while lam / s > 0.02 and s < 2.0**40:
        s *= 2.0
    return s


def _stage(sweep: _Sweep, net, ct: np.ndarray, s: float, tol: float, max_iter: int, memory: int = 6) -> dict:
    """Anderson-accelerated damped iteration at width scale ``s`` from the error signals ``ct = n C̃``.

    Anderson mixing (type II, ``memory`` past steps; Walker & Ni, SIAM J. Numer. Anal. 49, 1715 (2011))
    extrapolates from the last residuals ``T(C̃) − C̃``; a step that would give an indefinite kernel or a
    non-normalisable tilt is replaced by a plain damped step, whose damping halves until it is safe.
    """
    widths = [s * w for w in net.widths]
    n_of = _width_factors(net, s)
    Ct = ct / n_of
    for _ in range(60):  # a start whose tilt is not normalisable is shrunk towards the NNGP (C̃ = 0)
        try:
            C, mom = sweep.forward(Ct, s)
            break
        except _Unsafe:
            Ct = 0.5 * Ct
    else:
        Ct = 0 * Ct
        C, mom = sweep.forward(Ct, s)
    scale = n_of  # iterate on n C̃ (order one)
    X, F = [], []
    eta, it, res, ok = 1.0, 0, np.inf, False
    prev = None  # (Ct, C, mom, T, r) before an Anderson step, to return to if the step made things worse
    cooldown, best, stale = 0, np.inf, 0
    while it < max_iter:
        it += 1
        try:
            T = sweep.backward(C, mom, s)
        except _Unsafe:
            break
        r = _residual(T, Ct, widths)
        if r < tol:
            res, ok = r, True
            break
        best, stale = (r, 0) if r < 0.5 * best else (best, stale + 1)
        if best < 100 * tol and stale >= 25:  # rounding floor just above tol: accept, with the residual reported
            res, ok = min(r, best), True
            break
        if prev is not None and r > prev[4]:  # the extrapolation did not help: back, and plain steps for a while
            Ct, C, mom, T, r = prev
            X, F, cooldown = [], [], 5
        prev = None
        x, f = (Ct * scale).ravel(), ((T - Ct) * scale).ravel()
        X.append(x)
        F.append(f)
        X, F = X[-(memory + 1):], F[-(memory + 1):]
        candidates = []
        if len(X) > 1 and memory > 0 and cooldown == 0:
            dX = np.diff(np.array(X), axis=0).T
            dF = np.diff(np.array(F), axis=0).T
            gamma = np.linalg.lstsq(dF, f, rcond=None)[0]
            candidates.append(("anderson", (x + f - (dX + dF) @ gamma).reshape(Ct.shape) / scale))
        cooldown = max(cooldown - 1, 0)
        step = eta
        while step >= 1e-4:
            candidates.append(("damped", Ct + step * (T - Ct)))
            step *= 0.5
        for kind, trial in candidates:
            try:
                C_new, mom_new = sweep.forward(trial, s)
            except _Unsafe:
                X, F = X[-1:], F[-1:]  # restart the history after an unsafe extrapolation
                continue
            if kind == "anderson":
                prev = (Ct, C, mom, T, r)
            Ct, C, mom = trial, C_new, mom_new
            break
        else:
            break
        eta = min(1.0, eta * 1.25) if r < res else max(0.5 * eta, 1e-4)
        res = r
    return {"ok": ok, "ct": Ct * n_of, "C": C, "moments": mom, "Ct": Ct, "residual": res, "iterations": it,
            "damping": eta, "width_scale": s}
