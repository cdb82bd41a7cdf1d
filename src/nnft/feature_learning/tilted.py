"""Expectations under the tilted Gaussian measure of the forward–backward saddle, by quadrature or Monte Carlo.

The saddle-point equations (:mod:`nnft.feature_learning.action`) need, for ``z ~ N(0, C)`` on train ∪ test
(P coordinates, the first P_A the training points) tilted by ``e^{g(z)}``, ``g = C_W φ(z_A)ᵀ C̃ φ(z_A)``:

    F = ∂W/∂C̃ = C_W ⟨φ(z) φ(z)ᵀ⟩_tilted                                   (P × P)
    G = ∂W/∂C_AA = ½ sym(C_AA⁻¹ ⟨z_A ∇gᵀ⟩_tilted),  ∇g = 2 C_W φ'(z_A) ⊙ (C̃ φ(z_A))   (P_A × P_A)

``G`` is ``½⟨∇∇ᵀe^g⟩/⟨e^g⟩`` (Price's theorem) after one Gaussian integration by parts
(``E[∂_β h] = (C⁻¹ E[z h])_β``), so it needs φ' only — ReLU included — and C_AA invertible (distinct
training inputs). W depends on C only through the training marginal because C̃ vanishes off it, so G has no
test rows. For ``φ(z) = z`` both reduce to the closed forms of the action module (a test).

``method="quadrature"``: tensor Gauss–Hermite in the eigenbasis of C (rank ≤ 3, deterministic, to be used
with smooth φ); ``method="montecarlo"``: self-normalised importance sampling from ``N(0, C)`` with a fixed
seeded sample (common random numbers, so the solver sees a smooth map), with standard errors and the
effective sample size of the weights.
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
                half = rng.standard_normal((self.samples // 2, r))
                xi = np.vstack([half, -half])  # antithetic pairs
                pw = np.full(xi.shape[0], 1.0 / xi.shape[0])
            self._xi[r] = (xi, pw)
        return self._xi[r]

    def __call__(self, C: np.ndarray, Ct_AA: np.ndarray, C_W: float) -> TiltedMoments:
        """The tilted moments at kernel ``C`` (P, P) and conjugate ``Ct_AA`` (P_A, P_A) of the next layer."""
        P_A = Ct_AA.shape[0]
        lam, U = np.linalg.eigh(0.5 * (C + C.T))
        keep = lam > 1e-12 * max(lam.max(), 1e-300)
        A = U[:, keep] * np.sqrt(lam[keep])  # z = A ξ
        xi, pw = self._points(int(keep.sum()))
        zz = xi @ A.T  # (N, P)
        phi = self._phi(zz)
        phi = np.broadcast_to(phi, zz.shape)
        phiA = phi[:, :P_A]
        Cphi = phiA @ Ct_AA
        g = C_W * np.einsum("na,na->n", phiA, Cphi)
        if not np.all(np.isfinite(g)):
            raise ConvergenceError("the tilt exponent C_W φᵀC̃φ overflowed: the tilted measure is not normalisable at "
                                   "this C̃ (the error signal is too large for this width)")
        logw = g - g.max()
        w = pw * np.exp(logw)
        w = w / w.sum()
        F = C_W * np.einsum("n,na,nb->ab", w, phi, phi)
        grad = 2.0 * C_W * np.broadcast_to(self._dphi(zz[:, :P_A]), (zz.shape[0], P_A)) * Cphi
        M = np.einsum("n,na,nb->ab", w, zz[:, :P_A], grad)
        G = 0.5 * np.linalg.solve(C[:P_A, :P_A], M)
        G = 0.5 * (G + G.T)
        if self.method == "montecarlo":
            # Σ_n w_n² (C_W φ_a φ_b − F_ab)², expanded into matrix products (no (N, P, P) array)
            w2 = w**2
            p2 = phi**2
            var = (C_W**2 * (p2.T * w2) @ p2 - 2 * C_W * F * ((phi.T * w2) @ phi) + F**2 * w2.sum())
            se = np.sqrt(np.maximum(var, 0.0))
            ess = 1.0 / float(np.sum(w2))
        else:
            se, ess = np.zeros_like(F), float(xi.shape[0])
        return TiltedMoments(F=0.5 * (F + F.T), G=G, F_stderr=se, ess=ess)
