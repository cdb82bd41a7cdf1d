"""The NTK one-layer map (jointly with the NNGP map), CONVENTIONS.md / PDLT eq. (8.8).

``Θ^{(ℓ+1)}_{αβ} = λ_b + λ_W ⟨σ_α σ_β⟩_{K^{(ℓ)}} + C_W ⟨σ'_α σ'_β⟩_{K^{(ℓ)}} Θ^{(ℓ)}_{αβ}``, with the
same form on the diagonal from single-input averages. K and Θ are generated as one module so that
their shared subexpressions (the arc-cosine angle, the correlation) are computed once.
"""

from __future__ import annotations

from nnft.activations import Activation
from nnft.errors import NTKUndefinedError
from nnft.gaussian import Kaa, Kab, Kbb, expect_pair, expect_pair_angle, expect_single, theta_ab
from nnft.recursions.base import (
    C_W,
    C_b,
    Equation,
    OneLayerMap,
    Theta_aa,
    Theta_ab,
    angle_update,
    lambda_b,
    lambda_W,
)
from nnft.recursions.nngp import KINDS, nngp_map


def ntk_map(act: Activation) -> OneLayerMap:
    """The joint symbolic (K, Θ) map for activation ``act``."""
    if act.has_distributional_derivative:
        raise NTKUndefinedError(
            f"the NTK of {act.name!r} is undefined: σ jumps, so σ' contains a Dirac delta and "
            "⟨σ'(z_α)σ'(z_β)⟩ diverges on the diagonal; use the NNGP (net.nngp) for this activation"
        )
    base = nngp_map(act)
    ss = expect_pair(act.expr, act.expr)
    dd = expect_pair(act.derivative, act.derivative)
    ss1 = expect_single(act.expr, act.expr)
    dd1 = expect_single(act.derivative, act.derivative)
    th_off = lambda_b + lambda_W * ss + C_W * dd * Theta_ab
    th_dia = lambda_b + lambda_W * ss1 + C_W * dd1 * Theta_aa
    eqs = (
        *base.equations,
        Equation(r"\Theta^{(\ell+1)}_{\alpha\beta}",
                 r"\lambda_b + \lambda_W \left\langle \sigma_\alpha\sigma_\beta \right\rangle_{K} + C_W "
                 r"\left\langle \sigma'_\alpha\sigma'_\beta \right\rangle_{K} \Theta_{\alpha\beta}", th_off),
        Equation(r"\Theta^{(\ell+1)}_{\alpha\alpha}",
                 r"\lambda_b + \lambda_W \left\langle \sigma^2 \right\rangle_{K_{\alpha\alpha}} + C_W "
                 r"\left\langle \sigma'^2 \right\rangle_{K_{\alpha\alpha}} \Theta_{\alpha\alpha}", th_dia),
    )
    # kinked σ (relu, leaky relu, |z|): σ' is a step, whose arc-cosine kernel needs the carried angle θ_ab
    angle, angle_args = {}, ()
    dd_angle = expect_pair_angle(act.derivative, act.derivative)
    new_theta = angle_update(act.expr) if dd_angle is not None else None
    if new_theta is not None:
        ss_angle = expect_pair_angle(act.expr, act.expr)
        ss_angle = ss if ss_angle is None else ss_angle
        angle = {"K_ab": C_b + C_W * ss_angle, "Theta_ab": lambda_b + lambda_W * ss_angle + C_W * dd_angle * Theta_ab,
                 "theta_ab": new_theta}
        angle_args = (Kaa, Kab, Kbb, theta_ab, Theta_ab, C_b, C_W, lambda_b, lambda_W)
    return OneLayerMap(
        name="ntk",
        activation=act,
        offdiag={"K_ab": base.offdiag["K_ab"], "Theta_ab": th_off},
        offdiag_args=(Kaa, Kab, Kbb, Theta_ab, C_b, C_W, lambda_b, lambda_W),
        diag={"K_aa": base.diag["K_aa"], "Theta_aa": th_dia},
        diag_args=(Kaa, Theta_aa, C_b, C_W, lambda_b, lambda_W),
        equations=eqs,
        kinds=KINDS,
        angle=angle,
        angle_args=angle_args,
    )
