"""Expectations under the tilted Gaussian measure of the forward–backward saddle, by quadrature or Monte Carlo.

The saddle-point equations (:mod:`nnft.feature_learning.action`) need, for ``z ~ N(0, C)`` on train ∪ test
(P coordinates, the first P_A the training points) tilted by ``e^{g(z)}``, ``g = C_W φ(z_A)ᵀ C̃ φ(z_A)``:

    F = ∂W/∂C̃ = C_W ⟨φ(z) φ(z)ᵀ⟩_tilted                                   (P × P)
    G = ∂W/∂C_AA = ½ sym(C_AA⁻¹ ⟨z_A ∇gᵀ⟩_tilted),  ∇g = 2 C_W φ'(z_A) ⊙ (C̃ φ(z_A))   (P_A × P_A)

(C_AA⁻¹ on its range when C_AA is singular).

``G`` is ``½⟨∇∇ᵀe^g⟩/⟨e^g⟩`` (Price's theorem) after one Gaussian integration by parts
(``E[∂_β h] = (C⁻¹ E[z h])_β``), so it needs φ' only — ReLU included. W depends on C only through the
training marginal because C̃ vanishes off it, so G has no test rows. For ``φ(z) = z`` both reduce to the
closed forms of the action module (a test).

``method="quadrature"``: tensor Gauss–Hermite in the eigenbasis of C (rank ≤ 3, deterministic, to be used
with smooth φ); ``method="montecarlo"``: self-normalised importance sampling from ``N(0, C)`` with a fixed
seeded sample ``z = C^{1/2}ξ`` (common random numbers and the symmetric square root, so the solver sees a
map that is smooth in C), with standard errors and the effective sample size of the weights. The Monte
Carlo estimates use the untilted sample as a control variate:
``F = C_W⟨φφᵀ⟩_C (exact, the NNGP map) + [F̂_tilted − F̂_untilted]`` and likewise
``G = χᵀC̃ (exact, the map's Jacobian) + [Ĝ − Ĝ_linear]``, so the sampling error is proportional to the tilt
(order 1/n) instead of being a fixed fraction of the kernel, which would swamp the adaptation at large width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnft.errors import ConvergenceError, InputError

__all__ = ["TiltedMoments", "TiltedGaussian"]


@dataclass(frozen=True)
class TiltedMoments:
    """``F`` (P, P), ``G`` (P_A, P_A), the standard error of F (zeros for quadrature) and the weights' ESS."""

    F: np.ndarray
    G: np.ndarray
    F_stderr: np.ndarray
    ess: float


class TiltedGaussian:
    """The tilted expectations of one activation, by ``"quadrature"`` (order ``nodes`` per direction) or
    ``"montecarlo"`` (``samples`` draws, ``seed``)."""

    def __init__(self, act, *, method: str = "montecarlo", nodes: int = 60, samples: int = 200_000,
                 seed: int = 0) -> None:
        from nnft.activations import z
        from nnft.codegen.module import compile_function

        if method not in ("quadrature", "montecarlo"):
            raise InputError(f"method must be 'quadrature' or 'montecarlo', got {method!r}")
        if act.has_distributional_derivative:
            raise InputError(f"activation {act.name!r} jumps, so φ' is a Dirac delta and the backward map of the "
                             "tilted measure is not an ordinary expectation; use method='perturbative'")
        self.act = act
        self.method = method
        self.nodes = int(nodes)
        self.samples = int(samples)
        self.seed = int(seed)
        self._phi = act.numpy()
        self._dphi = compile_function({"dsigma": act.derivative}, (z,), name=f"dact_{act.name}").dsigma
        self._xi: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _exact_F(self, C: np.ndarray, C_W: float) -> np.ndarray:
        """``C_W ⟨φφᵀ⟩_C`` by nnft's generated NNGP map (closed form or quadrature), C_b = 0."""
        from nnft.feature_learning.perturbative import nngp_of_kernel

        return nngp_of_kernel(self.act, C, 0.0, C_W)

    def _exact_G_lin(self, C_AA: np.ndarray, Ct_AA: np.ndarray, C_W: float) -> np.ndarray:
        """The linear response ``χᵀ C̃`` of the NNGP map at C_AA (its generated Jacobian), C_b = 0."""
        from nnft.feature_learning.perturbative import nngp_backward

        return nngp_backward(self.act, C_AA, Ct_AA, 0.0, C_W)

    def _points(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Standard-normal points ξ (N, r) and probability weights (N,)."""
        if r not in self._xi:
            if self.method == "quadrature":
                if r > 3:
                    raise InputError(f"quadrature over {r} directions would need {self.nodes}^{r} nodes: use "
                                     "method='montecarlo' (or fewer points: quadrature is for P ≤ 3)")
                x, w = np.polynomial.hermite_e.hermegauss(self.nodes)
                w = w / np.sqrt(2 * np.pi)
                grids = np.meshgrid(*([x] * r), indexing="ij")
                wts = np.meshgrid(*([w] * r), indexing="ij")
                xi = np.stack([g.ravel() for g in grids], axis=1)
                pw = np.prod(np.stack([g.ravel() for g in wts], axis=1), axis=1)
            else:
                rng = np.random.default_rng(self.seed)
                xi = rng.standard_normal((self.samples, r))  # iid (antithetic pairs are identical for odd φ)
                pw = np.full(xi.shape[0], 1.0 / xi.shape[0])
            self._xi[r] = (xi, pw)
        return self._xi[r]

    def __call__(self, C: np.ndarray, Ct_AA: np.ndarray, C_W: float) -> TiltedMoments:
        """The tilted moments at kernel ``C`` (P, P) and conjugate ``Ct_AA`` (P_A, P_A) of the next layer."""
        P_A = Ct_AA.shape[0]
        lam, U = np.linalg.eigh(0.5 * (C + C.T))
        keep = lam > 1e-12 * max(lam.max(), 1e-300)
        if self.method == "quadrature":  # a grid over the range of C, in its eigenbasis
            A = U[:, keep] * np.sqrt(lam[keep])
            xi, pw = self._points(int(keep.sum()))
        else:  # z = C^{1/2} ξ, ξ in P dimensions: smooth in C (eigenbases of repeated eigenvalues are arbitrary)
            A = (U * np.sqrt(np.where(keep, lam, 0.0))) @ U.T
            xi, pw = self._points(C.shape[0])
        zz = xi @ A.T  # (N, P)
        phi = self._phi(zz)
        phi = np.broadcast_to(phi, zz.shape)
        phiA = phi[:, :P_A]
        Cphi = phiA @ Ct_AA
        g = C_W * np.sum(phiA * Cphi, axis=1)
        if not np.all(np.isfinite(g)):
            raise ConvergenceError("the tilt exponent C_W φᵀC̃φ overflowed: the tilted measure is not normalisable at "
                                   "this C̃ (the error signal is too large for this width)")
        logw = g - g.max()
        w = pw * np.exp(logw)
        w = w / w.sum()
        dphiA = np.broadcast_to(self._dphi(zz[:, :P_A]), (zz.shape[0], P_A))
        grad = 2.0 * C_W * dphiA * Cphi
        F = C_W * ((phi * w[:, None]).T @ phi)
        M = (zz[:, :P_A] * w[:, None]).T @ grad
        if self.method == "montecarlo":
            # control variates: the same samples untilted estimate what is known exactly — C_W⟨φφᵀ⟩_C (the NNGP
            # map) and the linear response χᵀC̃ (its Jacobian) — so only the tilt's effect carries sampling noise
            F0 = C_W * ((phi * pw[:, None]).T @ phi)
            M0 = (zz[:, :P_A] * pw[:, None]).T @ grad
            F = F - F0 + self._exact_F(C, C_W)
            lin = self._exact_G_lin(C[:P_A, :P_A], Ct_AA, C_W)
        # C_AA⁻¹ on its range: the samples z_A lie in it, so a singular C_AA (P_A > rank, e.g. the first layer's
        # kernel when P_A > n₀) gives the derivative within the range — the only directions the measure has
        solve = np.linalg.lstsq
        G = 0.5 * solve(C[:P_A, :P_A], M, rcond=1e-12)[0]
        if self.method == "montecarlo":
            G = G - 0.5 * solve(C[:P_A, :P_A], M0, rcond=1e-12)[0] + lin
        G = 0.5 * (G + G.T)
        if self.method == "montecarlo":
            # Σ_n (w_n a_n − u_n b_n)², a = C_W φφᵀ − F_t, b = C_W φφᵀ − F_0 (delta method of the difference),
            # expanded into matrix products (no (N, P, P) array)
            Ft = C_W * ((phi * w[:, None]).T @ phi)
            p2 = phi**2

            def s2(u, v, Fa, Fb):
                uv = u * v
                return (C_W**2 * (p2.T * uv) @ p2 - C_W * (Fa + Fb) * ((phi.T * uv) @ phi) + Fa * Fb * uv.sum())

            var = s2(w, w, Ft, Ft) - 2 * s2(w, pw, Ft, F0) + s2(pw, pw, F0, F0)
            se = np.sqrt(np.maximum(var, 0.0))
            ess = 1.0 / float(np.sum(w**2))
        else:
            se, ess = np.zeros_like(F), float(xi.shape[0])
        return TiltedMoments(F=0.5 * (F + F.T), G=G, F_stderr=se, ess=ess)
