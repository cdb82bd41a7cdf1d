"""Monte Carlo ensembles of finite-width networks at initialisation, with unbiased cumulant estimators.

``estimate(net, x, samples=S, seed=s)`` draws S independent networks from the prior of CONVENTIONS.md
(``b ~ N(0, C_b)``, ``W ~ N(0, C_W/n_{ℓ−1})``), pushes the P inputs ``x`` through all of them and
estimates, at the requested layers,

- the two-point function ``G_{αβ} = E[z_{i;α} z_{i;β}]``;
- the connected four-point functions, same neuron ``E[z_{i;α1} z_{i;α2} z_{i;α3} z_{i;α4}]_c`` and cross
  neuron ``E[z_{i;α1} z_{i;α2} z_{j;α3} z_{j;α4}]_c`` (i ≠ j), for all sample-index tuples; by
  CONVENTIONS.md they are ``(V_{(12)(34)} + V_{(13)(24)} + V_{(14)(23)})/n`` and ``V_{(12)(34)}/n`` + O(1/n²);
- the connected six-point function at one input, for the neuron patterns ``iiiiii``, ``iiiijj``, ``iijjkk``;
- at the output layer, the empirical NTK ``Θ̂_{ij;αβ}``: its mean ``E[Θ̂_{ii;αβ}]`` and the covariances
  ``Cov(Θ̂_{ii;α1α2}, Θ̂_{ii;α3α4})`` (``ntk_var``), ``Cov(Θ̂_{ii;α1α2}, Θ̂_{jj;α3α4})`` (``ntk_cov_cross``)
  and ``E[Θ̂_{ij;α1α2} Θ̂_{ij;α3α4}]`` (``ntk_offdiag``), i ≠ j; and the kernel-preactivation correlations
  ``E[ΔΘ̂_{ii;α1α2} z_{i;α3} z_{i;α4}]`` (``ntk_preact_same``), ``E[ΔΘ̂_{ii;α1α2} z_{k;α3} z_{k;α4}]``
  (``ntk_preact_cross``) and ``E[Θ̂_{ik;α1α2} z_{i;α3} z_{k;α4}]`` (``ntk_preact_offdiag``), i ≠ k, with
  ``ΔΘ̂ = Θ̂ − E[Θ̂]``. At order 1/n (n = n_{L−1}; PDLT ch. 8)
  ``E[ΔΘ̂_{i1i2;α1α2} z_{i3;α3} z_{i4;α4}] = (δ_{i1i2}δ_{i3i4} D_{α1α2α3α4} + δ_{i1i3}δ_{i2i4} F_{α1α3α2α4}
  + δ_{i1i4}δ_{i2i3} F_{α1α4α2α3})/n``, so ``ntk_preact_cross ≈ D/n`` and ``ntk_preact_offdiag[a,b,c,d] ≈
  F[a,c,b,d]/n``. Because the output-layer law is O(m)-invariant, at any width and exactly in expectation,
  ``ntk_var = ntk_cov_cross + ntk_offdiag + ntk_offdiag.transpose(0,1,3,2)`` and
  ``ntk_preact_same = ntk_preact_cross + ntk_preact_offdiag + ntk_preact_offdiag.transpose(0,1,3,2)``.

Estimators. The network is the independent unit; its neurons are exchangeable but correlated. Each
network contributes neuron averages (``a = zᵀz/m``, ``b = Σ_i z_i⊗z_i⊗z_i⊗z_i/m``, power sums for the
six-point function); products of population means (``G_{12}G_{34}`` …) are estimated by U-statistics
over *distinct* networks, computed from power sums by Möbius inversion (:mod:`nnft.cumulants`), so every
estimate is exactly unbiased. Standard errors come from a delete-one-group jackknife over ``groups``
contiguous groups of networks, which accounts for the correlation of neurons within a network.

Samplers. ``"explicit"`` draws every weight and bias (batched matrix products, O(n²P) per layer; needed
for the NTK). ``"conditional"`` uses that, given layer ℓ, the neurons of layer ℓ+1 are i.i.d.
``N(0, C_b + (C_W/n_ℓ) Σ_j σ(z_{j;α}) σ(z_{j;β}))`` (exact; PDLT §4), costing O(nP² + P³) per layer.

Reproducibility. Group g draws from ``SeedSequence(seed).spawn(groups)[g]``, network after network
(each network consumes a fixed count of normals), per-network statistics are folded sequentially in
network order and group sums in group order, so the result is bit-identical for any ``batch_size``,
any number of threads and the Dask backend.

Layout. This module holds the entry points :func:`estimate` and :func:`empirical_ntk` and re-exports the
public names of the pieces: :mod:`~nnft.numeric.mc_result` (result objects, errors),
:mod:`~nnft.numeric.mc_plan` (the sampling plan), :mod:`~nnft.numeric.mc_activations` (σ, σ′),
:mod:`~nnft.numeric.mc_sampling` (forward passes, NTK), :mod:`~nnft.numeric.mc_sixpoint` (six-point
bookkeeping), :mod:`~nnft.numeric.mc_features` (per-network features, group sums),
:mod:`~nnft.numeric.mc_estimators` (unbiased estimators, jackknife), :mod:`~nnft.numeric.mc_backends`
(threads, Dask) and :mod:`~nnft.numeric.fits` (1/n fits).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Sequence

import numpy as np

from nnft.errors import DivergenceError
from nnft.network import MLP, validate_inputs
from nnft.numeric.fits import InverseWidthFit, fit_inverse_width
from nnft.numeric.mc_activations import _functions
from nnft.numeric.mc_backends import _run_groups
from nnft.numeric.mc_estimators import _jackknife
from nnft.numeric.mc_plan import STATISTICS, _as_count, _Plan
from nnft.numeric.mc_result import (
    _DESCRIPTIONS,
    LayerStatistics,
    MonteCarloError,
    MonteCarloResult,
    NoisyEstimateWarning,
    Statistic,
)
from nnft.numeric.mc_sampling import _forward
from nnft.numeric.mc_sixpoint import SIX_POINT_PATTERNS

__all__ = [
    "STATISTICS",
    "SIX_POINT_PATTERNS",
    "InverseWidthFit",
    "LayerStatistics",
    "MonteCarloError",
    "MonteCarloResult",
    "NoisyEstimateWarning",
    "Statistic",
    "empirical_ntk",
    "estimate",
    "fit_inverse_width",
]

_TARGET_DOUBLES_PER_BATCH = 1 << 22  # about 32 MB of draws and activations per batch


def estimate(
    net: MLP,
    x,
    samples: int = 10_000,
    seed: int | None = 0,
    *,
    layers: int | Sequence[int] | None = None,
    statistics: str | Sequence[str] | None = None,
    sampler: str = "auto",
    batch_size: int | None = None,
    groups: int = 64,
    six_input: int = 0,
    backend: str = "numpy",
    client=None,
    workers: int | None = None,
    progress: bool = False,
    warn_noisy: bool = True,
) -> MonteCarloResult:
    """Estimate the statistics of ``samples`` finite-width networks ``net`` at initialisation on inputs ``x``.

    Parameters: ``x`` of shape (P, n_0); ``layers`` 1-based layer indices (default: the output layer L);
    ``statistics`` any of ``"G"``, ``"four_point"``, ``"six_point"``, ``"ntk"`` (default: G, four_point,
    six_point; ``"ntk"`` adds ntk_mean/ntk_var/ntk_cov_cross/ntk_offdiag and ntk_preact_same/ntk_preact_cross/
    ntk_preact_offdiag of the output layer and needs the explicit sampler; the ``*_cross`` and ``*_offdiag``
    ones need at least two output neurons and are omitted otherwise); ``sampler`` ``"explicit"``,
    ``"conditional"`` or ``"auto"`` (conditional unless the NTK is requested); ``batch_size`` networks per
    batched matrix product (default: about 32 MB of work);
    ``groups`` jackknife groups (= independent seeded chunks, = Dask tasks); ``backend`` ``"numpy"``
    (``workers`` threads, default all cores) or ``"dask"`` (``client``: a ``dask.distributed.Client``,
    default the current one). The result is bit-identical for a given (seed, samples, groups, sampler,
    layers, statistics) whatever ``batch_size``, ``workers`` or backend.

    Estimators are unbiased (U-statistics over distinct networks, :mod:`nnft.cumulants`); standard
    errors are delete-one-group jackknife errors with the network as the independent unit. Statistics
    dominated by noise are flagged (``Statistic.noise_dominated``) and reported in a
    :class:`NoisyEstimateWarning` unless ``warn_noisy=False``.
    """
    t0 = time.perf_counter()
    if not isinstance(net, MLP):
        raise MonteCarloError(f"net must be an nnft.MLP, got {type(net).__name__}")
    x = validate_inputs(x)
    P, n0 = x.shape
    S = _as_count("samples", samples, 2)
    groups = _as_count("groups", groups, 2)
    groups = min(groups, S)
    if batch_size is not None:
        batch_size = _as_count("batch_size", batch_size, 1)
    L = net.depth
    if layers is None:
        layers = (L,)
    elif isinstance(layers, int | np.integer):
        layers = (int(layers),)
    layers = tuple(sorted({int(v) for v in layers}))
    for ell in layers:
        if not 1 <= ell <= L:
            raise MonteCarloError(f"layers are numbered 1..{L} (1 = first hidden layer, {L} = output); got {ell}")
    if statistics is None:
        statistics = ("G", "four_point", "six_point")
    elif isinstance(statistics, str):
        statistics = (statistics,)
    statistics = tuple(dict.fromkeys(statistics))
    for s in statistics:
        if s not in STATISTICS:
            raise MonteCarloError(f"unknown statistic {s!r}; choose from {STATISTICS}")
    if sampler == "auto":
        sampler = "explicit" if "ntk" in statistics else "conditional"
    if sampler not in ("explicit", "conditional"):
        raise MonteCarloError(f"sampler must be 'explicit', 'conditional' or 'auto', got {sampler!r}")
    if "ntk" in statistics and sampler != "explicit":
        raise MonteCarloError("the empirical NTK needs the weights: use sampler='explicit' (or 'auto')")
    if not 0 <= int(six_input) < P:
        raise MonteCarloError(f"six_input must index one of the P = {P} inputs, got {six_input}")
    depth = L if "ntk" in statistics else max(layers)
    n = (n0, *(list(net.widths) + [net.n_out])[:depth])
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise MonteCarloError(f"seed must be a non-negative integer (or None for a fresh one), got {seed!r}")
    sizes = tuple(S // groups + (1 if g < S % groups else 0) for g in range(groups))
    proto = _Plan(
        x=x, n=n, C_b=net.C_b[:depth], C_W=net.C_W[:depth], lambda_b=net.lambda_b[:depth],
        lambda_W=net.lambda_W[:depth], activation=net.activation, sampler=sampler, layers=layers,
        stats=statistics, six_input=int(six_input), seed=int(seed), groups=groups, group_sizes=sizes,
        batch_size=1,
    )
    if batch_size is None:
        per = proto.draws_per_network + 4 * sum(n[1:]) * P + 4 * P**4 * len(layers)
        if "ntk" in statistics:
            per += 2 * P * P * n[-1] * max(n[1:]) + 2 * n[-1] ** 2 * P * P + n[-1] * P**3 + 7 * P**4
        batch_size = int(max(1, min(max(sizes), _TARGET_DOUBLES_PER_BATCH // max(per, 1))))
    plan = _Plan(**{**proto.__dict__, "batch_size": batch_size})
    _check_mc_memory(plan, workers, per_network=proto.draws_per_network + 4 * sum(n[1:]) * P)
    _, _, how = _functions(net.activation)

    bar = None
    lock = threading.Lock()
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=S, unit="net", desc="nnft mc")

    def tick(k: int) -> None:
        if bar is not None:
            with lock:
                bar.update(k)

    try:
        parts = _run_groups(plan, backend, workers, client, tick)
    finally:
        if bar is not None:
            bar.close()

    with np.errstate(over="ignore", invalid="ignore"):  # overflow is raised just below, by name and layer
        full, errs = _jackknife(parts, plan)
    _check_overflow(full, errs, plan, net)
    stats: dict[int, dict[str, Statistic]] = {}
    for ell, vals in full.items():
        stats[ell] = {}
        for name, val in vals.items():
            note = ""
            if name == "four_point_cross" and plan.n[ell] < 2:
                note = "needs at least two neurons in the layer"
            if name == "six_point" and plan.n[ell] < 3:
                note = "pattern iijjkk needs 3 neurons, iiiijj needs 2 (NaN where the layer is narrower)"
            stats[ell][name] = Statistic(
                name=name, value=np.asarray(val, dtype=np.float64), stderr=np.asarray(errs[ell][name]),
                layer=ell, samples=S, description=_DESCRIPTIONS[name],
                components=SIX_POINT_PATTERNS if name == "six_point" else None, note=note,
            )
    info = {
        "seconds": time.perf_counter() - t0,
        "batch_size": batch_size,
        "backend": backend,
        "sigma": how,
        "draws_per_network": plan.draws_per_network,
    }
    result = MonteCarloResult(stats, samples=S, seed=int(seed), sampler=sampler, groups=groups, x=x, net=net,
                              info=info)
    if warn_noisy:
        noisy = [f"{name} (layer {ell})" for ell, d in stats.items() for name, s in d.items() if s.noise_dominated]
        if noisy:
            warnings.warn(
                "noise-dominated estimates (most components within 2 standard errors of 0): "
                + ", ".join(noisy)
                + f"; they are reported with their errors — increase samples (now {S}) to resolve them",
                NoisyEstimateWarning,
                stacklevel=2,
            )
    return result


def _check_mc_memory(plan: _Plan, workers: int | None, per_network: int) -> None:
    """Refuse, before sampling, a run whose group sums and jackknife replicates would not fit in memory.

    Every group keeps its feature sums and every jackknife replicate its estimates; four-point and NTK
    covariance statistics are P⁴ arrays, so they dominate (64 groups at P = 60 need ≈ 40 GiB).
    """
    from nnft.numeric.memory import check_memory
    from nnft.numeric.parallel import n_cores

    P = plan.x.shape[0]
    n2, n4 = P * P, P**4
    feats = ests = 0
    for _ in plan.layers:
        feats += n2 + (2 * n4 if "four_point" in plan.stats else 0) + (64 if "six_point" in plan.stats else 0)
        ests += n2 + (2 * n4 if "four_point" in plan.stats else 0) + (3 if "six_point" in plan.stats else 0)
    if "ntk" in plan.stats:
        feats += 2 * n2 + 6 * n4
        ests += n2 + 6 * n4
    largest = n4 if ("four_point" in plan.stats or "ntk" in plan.stats) else n2
    threads = min(n_cores() if workers is None else max(int(workers), 1), plan.groups)
    batch = plan.batch_size * (per_network + feats)
    need = 8 * (plan.groups * (feats + ests + largest) + threads * batch + 2 * feats)
    stats = ", ".join(plan.stats)
    check_memory(need, f"this Monte Carlo run (P = {P} inputs, {plan.groups} groups, statistics {stats})",
                 "four-point and NTK covariance statistics are P⁴ arrays kept for every jackknife group: use "
                 "fewer inputs, fewer groups=, statistics='G', or set batch_size= smaller")


def _check_overflow(full: dict, errs: dict, plan: _Plan, net: MLP) -> None:
    """Raise :class:`DivergenceError` if an estimate that should be finite is inf/NaN (float64 overflow).

    NaN is expected only where a statistic is undefined by design: cross-neuron statistics of a layer with
    one neuron, six-point patterns needing more neurons than the layer has, or fewer networks than a
    U-statistic needs. Anything else non-finite means products of sampled values overflowed.
    """
    S = sum(plan.group_sizes)
    reps_ok = S - max(plan.group_sizes) >= 3  # every jackknife replicate has enough networks
    for ell, vals in full.items():
        m = plan.n[ell]
        for name, val in vals.items():
            val = np.asarray(val, dtype=np.float64)
            mask = np.ones(val.shape, dtype=bool)
            if name in ("four_point_cross", "ntk_cov_cross", "ntk_offdiag", "ntk_preact_cross",
                        "ntk_preact_offdiag") and m < 2:
                continue
            if name == "six_point":
                if S < 3:
                    continue
                mask = np.array([m >= k + 1 for k in range(len(SIX_POINT_PATTERNS))])
            bad = ~np.isfinite(val[mask]).all()
            if reps_ok and not bad:
                err = np.asarray(errs[ell][name], dtype=np.float64)
                bad = not np.isfinite(err[mask]).all()
            if bad:
                raise DivergenceError(
                    f"Monte Carlo overflow: the estimate of {name} at layer {ell} is not finite in float64 "
                    f"(σ = {net.activation.name}; products of sampled preactivations overflowed): reduce C_W, C_b "
                    "or the input scale, or choose a bounded activation"
                )


# ----------------------------------------------------------------------------- single-network NTK
def empirical_ntk(net: MLP, x, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Θ̂_{ij;αβ} (m, m, P, P) of one network with given weights ``[(W^{(ℓ)}, b^{(ℓ)}), …]`` in *physical* units.

    Uses the layer-wise formula of :func:`_ntk_from_forward`; exposed to test it against finite
    differences and to let users inspect one sampled network.
    """
    x = validate_inputs(x)
    L = net.depth
    n = (x.shape[1], *net.widths, net.n_out)
    if len(weights) != L:
        raise MonteCarloError(f"need {L} (W, b) pairs, got {len(weights)}")
    sigma, dsigma, _ = _functions(net.activation)
    # convert physical weights to the sampler's standard normals
    eps = []
    for i, (W, b) in enumerate(weights):
        W = np.asarray(W, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if W.shape != (n[i + 1], n[i]) or b.shape != (n[i + 1],):
            raise MonteCarloError(f"layer {i + 1}: W must be {(n[i + 1], n[i])} and b {(n[i + 1],)}")
        cw = math.sqrt(net.C_W[i] / n[i])
        cb = math.sqrt(net.C_b[i])
        eps.append((W / cw).ravel())
        eps.append(b / cb if cb > 0 else np.zeros_like(b))
    plan = _Plan(
        x=x, n=n, C_b=net.C_b, C_W=net.C_W, lambda_b=net.lambda_b, lambda_W=net.lambda_W,
        activation=net.activation, sampler="explicit", layers=(L,), stats=("ntk",), six_input=0, seed=0,
        groups=1, group_sizes=(1,), batch_size=1,
    )
    _, theta = _forward(plan, np.concatenate(eps)[None], sigma, dsigma)
    return theta[0]
