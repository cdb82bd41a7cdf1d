"""The NNGP (infinite-width metric) one-layer map, PDLT eq. (4.118) in CONVENTIONS.md form.

``K^{(ℓ+1)}_{αβ} = C_b + C_W ⟨σ(z_α) σ(z_β)⟩_{K^{(ℓ)}}`` off the diagonal and
``K^{(ℓ+1)}_{αα} = C_b + C_W ⟨σ(z)²⟩_{K^{(ℓ)}_{αα}}`` on it.
"""

from __future__ import annotations

from nnft.activations import Activation
from nnft.errors import ActivationError
from nnft.gaussian import Kaa, Kab, Kbb, expect_pair, expect_pair_angle, expect_single, is_closed, theta_ab
from nnft.recursions.base import C_W, C_b, Equation, OneLayerMap, angle_update

KINDS = {"K_aa": "row", "K_bb": "col", "K_ab": "entry", "Theta_ab": "entry", "theta_ab": "entry",
         "C_b": "scalar", "C_W": "scalar", "lambda_b": "scalar", "lambda_W": "scalar"}


def _check_quadrature_resolves_jumps(act: Activation, off) -> None:
    """Refuse σ whose jumps quadrature cannot split at (floor, ceiling: jumps not among the kinks).

    Quadrature splits its domain at ``act.kinks``; a jump elsewhere is integrated across and costs the rule
    its accuracy (floor's NNGP came out 3e-3 off): refused rather than a wrong number (docs/refusals.md).
    """
    unresolved = sorted(set(act.jumps) - set(act.kinks), key=abs)
    if unresolved and not is_closed(off):
        shown = ", ".join(f"{j:g}" for j in unresolved[:5]) + (", …" if len(unresolved) > 5 else "")
        raise ActivationError(
            f"activation {act.name!r} jumps at z = {shown}, points the quadrature cannot split at, so its Gaussian "
            "averages would be inaccurate (about 1e-3); nnft refuses rather than return wrong numbers. Write σ as a "
            "Piecewise with finitely many pieces (e.g. Piecewise((0, z < 0), (1, True))) so the jumps are explicit"
        )


def nngp_map(act: Activation) -> OneLayerMap:
    """The symbolic NNGP map for activation ``act``."""
    off = C_b + C_W * expect_pair(act.expr, act.expr)
    dia = C_b + C_W * expect_single(act.expr, act.expr)
    _check_quadrature_resolves_jumps(act, off)
    eqs = (
        Equation(r"K^{(\ell+1)}_{\alpha\beta}",
                 r"C_b + C_W \left\langle \sigma(z_\alpha)\sigma(z_\beta) \right\rangle_{K}", off),
        Equation(r"K^{(\ell+1)}_{\alpha\alpha}",
                 r"C_b + C_W \left\langle \sigma(z)^2 \right\rangle_{K_{\alpha\alpha}}", dia),
    )
    # kinked arc-cosine family (relu, |z|, step, sign …): the kernel from the carried angle θ_ab, so that
    # nearly parallel and antiparallel pairs are exact and the NNGP agrees with the joint (K, Θ) map
    angle, angle_args = {}, ()
    ss_angle = expect_pair_angle(act.expr, act.expr)
    new_theta = angle_update(act.expr) if ss_angle is not None else None
    if new_theta is not None:
        angle = {"K_ab": C_b + C_W * ss_angle, "theta_ab": new_theta}
        angle_args = (Kaa, Kab, Kbb, theta_ab, C_b, C_W)
    return OneLayerMap(
        name="nngp",
        activation=act,
        offdiag={"K_ab": off},
        offdiag_args=(Kaa, Kab, Kbb, C_b, C_W),
        diag={"K_aa": dia},
        diag_args=(Kaa, C_b, C_W),
        equations=eqs,
        kinds=KINDS,
        angle=angle,
        angle_args=angle_args,
    )
