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
  and ``E[Θ̂_{ij;α1α2} Θ̂_{ij;α3α4}]`` (``ntk_offdiag``), i ≠ j.

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
"""

from __future__ import annotations

import html
import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from nnft.cumulants import distinct_sum, falling_factorial, neuron_cumulant_terms
from nnft.network import MLP, validate_inputs
from nnft.numeric.parallel import blas_threads, n_cores

__all__ = [
    "STATISTICS",
    "SIX_POINT_PATTERNS",
    "InverseWidthFit",
    "MonteCarloError",
    "MonteCarloResult",
    "NoisyEstimateWarning",
    "Statistic",
    "empirical_ntk",
    "estimate",
    "fit_inverse_width",
]

#: Statistic families that can be requested (``statistics=``); ``"ntk"`` yields the four ntk_* results.
STATISTICS = ("G", "four_point", "six_point", "ntk")
#: Neuron patterns of the six-point connected function at one input (``six_point.value[k]``).
SIX_POINT_PATTERNS = ("iiiiii", "iiiijj", "iijjkk")
_SIX_TERMS = {p: neuron_cumulant_terms(p) for p in SIX_POINT_PATTERNS}
_SIX_KEYS = sorted({key for terms in _SIX_TERMS.values() for prod in terms for key in prod})
_TARGET_DOUBLES_PER_BATCH = 1 << 22  # about 32 MB of draws and activations per batch


class MonteCarloError(ValueError):
    """An invalid Monte Carlo request (sample count, batch size, layers, statistics …)."""


class NoisyEstimateWarning(UserWarning):
    """A requested statistic is dominated by sampling noise (|value| < 2 stderr for most components)."""


# ----------------------------------------------------------------------------- result objects
@dataclass
class Statistic:
    """One estimated statistic: ``value`` and its standard error ``stderr`` (arrays of equal shape).

    ``zscore(prediction)`` returns ``(value − prediction)/stderr``; components with ``|value| < 2 stderr``
    are not resolved from zero (``resolved`` is False there) and are flagged in the display.
    """

    name: str
    value: np.ndarray
    stderr: np.ndarray
    layer: int
    samples: int
    description: str = ""
    components: tuple[str, ...] | None = None
    note: str = ""

    def zscore(self, prediction) -> np.ndarray:
        """(value − prediction) / stderr, elementwise; ±inf where stderr is 0 but value ≠ prediction."""
        pred = np.broadcast_to(np.asarray(prediction, dtype=np.float64), self.value.shape)
        diff = self.value - pred
        with np.errstate(divide="ignore", invalid="ignore"):
            z = diff / self.stderr
        return np.where((self.stderr == 0) & (diff == 0), 0.0, z)

    @property
    def resolved(self) -> np.ndarray:
        """Boolean mask: the estimate is at least two standard errors away from zero."""
        return np.abs(self.value) >= 2 * self.stderr

    @property
    def relative_error(self) -> np.ndarray:
        """stderr / |value| (inf where the value is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.stderr / np.abs(self.value)

    @property
    def noise_dominated(self) -> bool:
        """True when most finite components are not resolved from zero."""
        ok = np.isfinite(self.value)
        if not ok.any():
            return False
        return bool(np.mean(~self.resolved[ok]) > 0.5)

    def __repr__(self) -> str:
        flag = " [noise-dominated: most |value| < 2 stderr]" if self.noise_dominated else ""
        return (
            f"Statistic({self.name}, layer {self.layer}, shape {self.value.shape}, S={self.samples}){flag}\n"
            f"value=\n{np.array2string(self.value, precision=5)}\n"
            f"stderr=\n{np.array2string(self.stderr, precision=2)}"
        )

    def _repr_html_(self) -> str:
        return f"<b>{html.escape(self.name)}</b> (layer {self.layer})" + _html_array(self)


def _fmt(v: float, e: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    if not np.isfinite(e) or e <= 0:
        return f"{v:.6g}"
    digits = max(0, -int(math.floor(math.log10(e))) + 1)
    return f"{v:.{min(digits, 12)}f} ± {e:.2g}" if abs(v) < 1e4 and e > 1e-12 else f"{v:.4g} ± {e:.2g}"


def _html_array(stat: Statistic, max_entries: int = 64) -> str:
    v, e = np.atleast_1d(stat.value), np.atleast_1d(stat.stderr)
    if v.ndim == 2 and v.size <= max_entries:
        rows = []
        for i in range(v.shape[0]):
            cells = []
            for j in range(v.shape[1]):
                style = "" if abs(v[i, j]) >= 2 * e[i, j] else ' style="color:#999"'
                cells.append(f"<td{style}>{_fmt(v[i, j], e[i, j])}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        return "<table>" + "".join(rows) + "</table>"
    flat_v, flat_e = v.ravel(), e.ravel()
    idx = [np.unravel_index(k, v.shape) for k in range(min(v.size, max_entries))]
    labels = stat.components if stat.components is not None else [str(tuple(int(t) for t in i)) for i in idx]
    cells = "".join(
        f"<tr><td>{html.escape(str(lab))}</td><td{'' if abs(flat_v[k]) >= 2 * flat_e[k] else ' style=color:#999'}>"
        f"{_fmt(flat_v[k], flat_e[k])}</td></tr>"
        for k, lab in zip(range(len(idx)), labels, strict=False)
    )
    more = f"<tr><td colspan=2>… {v.size - max_entries} more</td></tr>" if v.size > max_entries else ""
    return f"<table>{cells}{more}</table>"


_DESCRIPTIONS = {
    "G": "two-point function E[z_{i;α} z_{i;β}]",
    "four_point_same": "same-neuron connected four-point E[z_{i;α1} z_{i;α2} z_{i;α3} z_{i;α4}]_c",
    "four_point_cross": "cross-neuron connected four-point E[z_{i;α1} z_{i;α2} z_{j;α3} z_{j;α4}]_c, i≠j",
    "six_point": "connected six-point at one input, neuron patterns iiiiii, iiiijj, iijjkk",
    "ntk_mean": "empirical NTK mean E[Θ̂_{ii;αβ}]",
    "ntk_var": "empirical NTK covariance Cov(Θ̂_{ii;α1α2}, Θ̂_{ii;α3α4})",
    "ntk_cov_cross": "empirical NTK covariance Cov(Θ̂_{ii;α1α2}, Θ̂_{jj;α3α4}), i≠j",
    "ntk_offdiag": "empirical NTK off-diagonal E[Θ̂_{ij;α1α2} Θ̂_{ij;α3α4}], i≠j",
}


def _jsonable(a: np.ndarray):
    """Nested lists with NaN/inf replaced by None (strict JSON has no NaN)."""
    arr = np.asarray(a, dtype=object)
    arr[~np.isfinite(np.asarray(a, dtype=np.float64))] = None
    return arr.tolist()


class MonteCarloResult:
    """Estimates from one Monte Carlo run; attributes are :class:`Statistic` objects of the default layer.

    ``result.G``, ``result.four_point_same``, ``result.four_point_cross``, ``result.six_point``,
    ``result.ntk_mean``, ``result.ntk_var`` (``ntk_cov_cross``, ``ntk_offdiag``) refer to ``result.layer``
    (the last requested layer); ``result.at(ℓ)`` gives the statistics of another requested layer as a
    dict. ``samples``, ``seed``, ``sampler``, ``groups`` record how the numbers were made.
    """

    def __init__(self, stats: dict[int, dict[str, Statistic]], *, samples: int, seed: int, sampler: str,
                 groups: int, x: np.ndarray, net: MLP, info: dict) -> None:
        self._stats = stats
        self.samples = samples
        self.seed = seed
        self.sampler = sampler
        self.groups = groups
        self.x = x
        self.net = net
        self.info = info
        self.layers = tuple(sorted(stats))
        self.layer = self.layers[-1]

    def at(self, layer: int) -> dict[str, Statistic]:
        """The statistics of one requested layer ℓ (1-based, as in CONVENTIONS.md)."""
        if layer not in self._stats:
            raise MonteCarloError(f"layer {layer} was not requested; this result has layers {self.layers}")
        return self._stats[layer]

    def __getattr__(self, name: str) -> Statistic:
        if name.startswith("_"):
            raise AttributeError(name)
        stats = self.__dict__.get("_stats", {})
        layer = self.__dict__.get("layer")
        if layer is not None and name in stats.get(layer, {}):
            return stats[layer][name]
        if name in _DESCRIPTIONS:
            raise AttributeError(
                f"{name} was not estimated in this run (layer {layer}); request it with statistics=..."
                " (the NTK is available at the output layer with the explicit sampler)"
            )
        raise AttributeError(name)

    @property
    def statistics(self) -> tuple[str, ...]:
        """Names of the statistics available at the default layer."""
        return tuple(self._stats[self.layer])

    def zscore(self, statistic: str, prediction, layer: int | None = None) -> np.ndarray:
        """(estimate − prediction)/stderr for ``statistic`` (a name such as ``"G"``) at ``layer``."""
        return self.at(self.layer if layer is None else layer)[statistic].zscore(prediction)

    def to_dict(self) -> dict:
        """A JSON-ready description: metadata plus value/stderr lists per layer and statistic."""
        return {
            "samples": self.samples,
            "seed": self.seed,
            "sampler": self.sampler,
            "groups": self.groups,
            "network": repr(self.net),
            "inputs": self.x.tolist(),
            "info": {k: v for k, v in self.info.items() if isinstance(v, int | float | str | bool)},
            "layers": {
                str(ell): {
                    name: {
                        "value": _jsonable(s.value),
                        "stderr": _jsonable(s.stderr),
                        "description": s.description,
                        **({"components": list(s.components)} if s.components else {}),
                        **({"note": s.note} if s.note else {}),
                    }
                    for name, s in stats.items()
                }
                for ell, stats in self._stats.items()
            },
        }

    def __repr__(self) -> str:
        lines = [
            f"MonteCarloResult({self.net!r}, P={self.x.shape[0]}, samples={self.samples}, seed={self.seed}, "
            f"sampler={self.sampler!r}, layers={self.layers})"
        ]
        for name, s in self._stats[self.layer].items():
            v, e = np.ravel(s.value), np.ravel(s.stderr)
            head = ", ".join(_fmt(a, b) for a, b in zip(v[:4], e[:4], strict=False))
            flag = "  [noise-dominated]" if s.noise_dominated else ""
            lines.append(f"  {name:16s} shape {str(s.value.shape):14s} {head}{' …' if v.size > 4 else ''}{flag}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [
            f"<b>Monte Carlo</b> {html.escape(repr(self.net))}, P = {self.x.shape[0]}, S = {self.samples:,} "
            f"networks, seed {self.seed}, sampler {self.sampler}, {self.info.get('seconds', 0):.2f} s"
        ]
        for ell in self.layers:
            for name, s in self._stats[ell].items():
                flag = " <i>(noise-dominated)</i>" if s.noise_dominated else ""
                parts.append(
                    f"<details><summary>layer {ell}: <b>{name}</b> — {html.escape(s.description)}{flag}"
                    f"</summary>{_html_array(s)}</details>"
                )
        return "<div>" + "".join(parts) + "</div>"


# ----------------------------------------------------------------------------- the sampling plan
@dataclass(frozen=True)
class _Plan:
    """Everything a worker needs to process one group: picklable, no callables."""

    x: np.ndarray
    n: tuple[int, ...]  # n_0 .. n_Lmax
    C_b: tuple[float, ...]
    C_W: tuple[float, ...]
    lambda_b: tuple[float, ...]
    lambda_W: tuple[float, ...]
    activation: object  # nnft Activation (sympy expression inside; pickles)
    sampler: str
    layers: tuple[int, ...]
    stats: tuple[str, ...]
    six_input: int
    seed: int
    groups: int
    group_sizes: tuple[int, ...]
    batch_size: int

    @property
    def depth(self) -> int:
        return len(self.n) - 1

    @property
    def draws_per_network(self) -> int:
        P = self.x.shape[0]
        if self.sampler == "explicit":
            return sum(self.n[ell] * self.n[ell - 1] + self.n[ell] for ell in range(1, self.depth + 1))
        return sum(self.n[ell] * P for ell in range(1, self.depth + 1))


_SIGMA_LOCK = threading.Lock()


@lru_cache(maxsize=64)
def _numpy_functions(act) -> tuple[Callable, Callable, str]:
    """(σ, σ′, how σ was built) as vectorised numpy functions of one float64 array."""
    import sympy as sp

    from nnft.activations import z
    from nnft.functions import unsafe

    def lamb(expr):
        f = sp.lambdify(z, unsafe(expr), modules=["scipy", "numpy"])
        return lambda t: np.broadcast_to(np.asarray(f(t), dtype=np.float64), np.shape(t))

    ref = lamb(act.expr)
    d = lamb(act.derivative)
    probe = np.linspace(-3.1, 2.7, 13)
    try:
        f = act.numpy()
        if not np.allclose(np.asarray(f(probe), dtype=np.float64), ref(probe), rtol=1e-12, atol=1e-14):
            raise ValueError("act.numpy() disagrees with sympy.lambdify")
        fn = f
        how = "activation.numpy()"
    except Exception as exc:  # the code generator may be unavailable; lambdify is the reference
        fn = ref
        how = f"sympy.lambdify fallback ({type(exc).__name__})"

    def sigma(t):
        return np.asarray(fn(t), dtype=np.float64)

    return sigma, d, how


def _functions(act):
    with _SIGMA_LOCK:
        return _numpy_functions(act)


def _eps_layers(plan: _Plan, eps: np.ndarray):
    """Split a (B, draws_per_network) block of normals into per-layer views (W, b) or ε."""
    B = eps.shape[0]
    P = plan.x.shape[0]
    off = 0
    out = []
    for ell in range(1, plan.depth + 1):
        n_out, n_in = plan.n[ell], plan.n[ell - 1]
        if plan.sampler == "explicit":
            W = eps[:, off : off + n_out * n_in].reshape(B, n_out, n_in)
            off += n_out * n_in
            b = eps[:, off : off + n_out]
            off += n_out
            out.append((W, b))
        else:
            out.append(eps[:, off : off + n_out * P].reshape(B, n_out, P))
            off += n_out * P
    return out


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    """A with AᵀA = S for a stack of symmetric PSD matrices (eigh; tiny negative eigenvalues clipped)."""
    if S.shape[-1] == 1:
        return np.sqrt(np.maximum(S, 0.0))
    w, U = np.linalg.eigh(S)
    return np.sqrt(np.maximum(w, 0.0))[..., :, None] * np.swapaxes(U, -1, -2)


def _forward(plan: _Plan, eps: np.ndarray, sigma: Callable, dsigma: Callable | None = None):
    """Run a batch of networks: z^{(ℓ)} of shape (B, n_ℓ, P) for ℓ = 1..depth (+ NTK when requested)."""
    x = plan.x  # (P, n0)
    P = x.shape[0]
    B = eps.shape[0]
    draws = _eps_layers(plan, eps)
    zs: dict[int, np.ndarray] = {}
    keep_ntk = "ntk" in plan.stats
    phis, dphis, Ws = [], [], []
    phi = None
    for ell in range(1, plan.depth + 1):
        i = ell - 1
        n_in = plan.n[ell - 1]
        if plan.sampler == "explicit":
            W, b = draws[i]
            if ell == 1:
                pre = np.matmul(W, x.T)  # (B, n1, P)
            else:
                pre = np.matmul(W, phi)
            z = math.sqrt(plan.C_W[i] / n_in) * pre + math.sqrt(plan.C_b[i]) * b[:, :, None]
            if keep_ntk:
                Ws.append(W)
        else:
            if ell == 1:
                S = plan.C_b[0] + plan.C_W[0] * (x @ x.T) / n_in
                A = np.broadcast_to(_psd_sqrt(S[None]), (B, P, P))
            else:
                S = plan.C_b[i] + (plan.C_W[i] / n_in) * np.matmul(np.swapaxes(phi, 1, 2), phi)
                A = _psd_sqrt(S)
            z = np.matmul(draws[i], A)
        zs[ell] = z
        if ell < plan.depth or keep_ntk:
            if keep_ntk:
                phis.append(np.broadcast_to(x.T, (B, n_in, P)) if ell == 1 else phi)
            phi = sigma(z)
            if keep_ntk and ell < plan.depth:
                dphis.append(dsigma(z))
    ntk = _ntk_from_forward(plan, phis, dphis, Ws) if keep_ntk else None
    return zs, ntk


def _ntk_from_forward(plan: _Plan, phis, dphis, Ws) -> np.ndarray:
    """Θ̂_{ij;αβ} of the output layer, (B, m, m, P, P), by the layer-wise formula (NTK parameterisation).

    Θ̂_{ij;αβ} = Σ_ℓ Σ_k J^{(ℓ)}_{ik;α} J^{(ℓ)}_{jk;β} [λ_b^{(ℓ)} + (λ_W^{(ℓ)}/n_{ℓ−1}) φ^{(ℓ−1)}_α·φ^{(ℓ−1)}_β],
    with J^{(ℓ)}_α = ∂z^{(L)}_α/∂z^{(ℓ)}_α = J^{(ℓ+1)}_α W̃^{(ℓ+1)} diag σ'(z^{(ℓ)}_α), W̃ = √(C_W/n) × the
    standard normals, J^{(L)} = 1 (PDLT §7–8; CONVENTIONS.md, Neural tangent kernel).
    """
    L = plan.depth
    B = phis[0].shape[0]
    m = plan.n[L]
    P = plan.x.shape[0]
    J = np.broadcast_to(np.eye(m), (B, P, m, m))  # (B, P, m, n_L)
    theta = np.zeros((B, m, m, P, P))
    for ell in range(L, 0, -1):
        i = ell - 1
        n_in = plan.n[ell - 1]
        nl = J.shape[-1]
        Jf = J.reshape(B, P * m, nl)
        JJ = np.matmul(Jf, np.swapaxes(Jf, 1, 2)).reshape(B, P, m, P, m)  # [b, α, i, β, j]
        phi = phis[i]
        kern = plan.lambda_b[i] + (plan.lambda_W[i] / n_in) * np.matmul(np.swapaxes(phi, 1, 2), phi)  # (B,P,P)
        theta += np.transpose(JJ, (0, 2, 4, 1, 3)) * kern[:, None, None, :, :]
        if ell > 1:
            Wt = math.sqrt(plan.C_W[i] / n_in) * Ws[i]  # (B, n_ℓ, n_{ℓ-1})
            JW = np.matmul(J, Wt[:, None, :, :])  # (B, P, m, n_{ℓ-1})
            J = JW * np.swapaxes(dphis[i - 1], 1, 2)[:, :, None, :]
    return theta


def _layer_features(plan: _Plan, z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-network statistics of one layer: neuron averages and their products, each (B, …)."""
    B, m, P = z.shape
    out: dict[str, np.ndarray] = {}
    a = np.matmul(np.swapaxes(z, 1, 2), z) / m  # (B, P, P)
    out["a"] = a
    if "four_point" in plan.stats:
        z2 = (z[:, :, :, None] * z[:, :, None, :]).reshape(B, m, P * P)
        out["b"] = (np.matmul(np.swapaxes(z2, 1, 2), z2) / m).reshape(B, P, P, P, P)
        af = a.reshape(B, P * P)
        out["aa"] = (af[:, :, None] * af[:, None, :]).reshape(B, P, P, P, P)
    if "six_point" in plan.stats:
        za = z[:, :, plan.six_input]
        z2 = za * za
        psum = {2: z2.sum(axis=1), 4: (z2 * z2).sum(axis=1), 6: (z2 * z2 * z2).sum(axis=1)}
        feats: dict[tuple[int, ...], np.ndarray] = {}
        for key in _SIX_KEYS:
            r = len(key)
            if m < r:
                feats[key] = np.full(B, np.nan)
                continue
            feats[key] = distinct_sum(lambda blk, key=key: psum[sum(key[j] for j in blk)], r) / falling_factorial(m, r)
        for mono in _six_monomials():
            prod = feats[mono[0]]
            for key in mono[1:]:
                prod = prod * feats[key]
            out["six:" + _mono_name(mono)] = prod
    return out


def _mono_name(mono: tuple[tuple[int, ...], ...]) -> str:
    return "*".join("m" + "".join(map(str, k)) for k in mono)


@lru_cache(maxsize=1)
def _six_monomials() -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Every per-network product of moment features the six-point U-statistics need (sorted keys)."""
    from nnft.cumulants import set_partitions

    needed = set()
    for terms in _SIX_TERMS.values():
        for prod in terms:
            for part in set_partitions(len(prod)):
                for block in part:
                    needed.add(tuple(sorted(prod[j] for j in block)))
    return tuple(sorted(needed))


def _ntk_features(theta: np.ndarray) -> dict[str, np.ndarray]:
    B, m, _, P, _ = theta.shape
    diag = theta[:, np.arange(m), np.arange(m)]  # (B, m, P, P)
    t = diag.mean(axis=1)
    tf = t.reshape(B, P * P)
    df = diag.reshape(B, m, P * P)
    out = {
        "t": t,
        "tt": (tf[:, :, None] * tf[:, None, :]).reshape(B, P, P, P, P),
        "tsame": (np.matmul(np.swapaxes(df, 1, 2), df) / m).reshape(B, P, P, P, P),
    }
    if m >= 2:
        full = theta.reshape(B, m * m, P * P)
        allsq = np.matmul(np.swapaxes(full, 1, 2), full)  # Σ_{ij} Θ_ij ⊗ Θ_ij
        diagsq = np.matmul(np.swapaxes(df, 1, 2), df)
        out["toff"] = ((allsq - diagsq) / (m * (m - 1))).reshape(B, P, P, P, P)
    return out


def _batch_features(plan: _Plan, eps: np.ndarray, sigma, dsigma) -> dict[str, np.ndarray]:
    zs, theta = _forward(plan, eps, sigma, dsigma)
    feats: dict[str, np.ndarray] = {}
    for ell in plan.layers:
        for k, v in _layer_features(plan, zs[ell]).items():
            feats[f"{ell}:{k}"] = v
    if theta is not None:
        for k, v in _ntk_features(theta).items():
            feats[f"{plan.depth}:ntk:{k}"] = v
    return feats


def _run_group(plan: _Plan, g: int, progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Sums over the networks of group g of every per-network feature, folded sequentially in network order.

    Also returns ``"N"``. The normals of group g come from ``SeedSequence(seed).spawn(groups)[g]``,
    consumed network by network, so any batch size gives the same numbers and the same sums.
    """
    sigma, dsigma, _ = _functions(plan.activation)
    child = np.random.SeedSequence(plan.seed).spawn(plan.groups)[g]
    rng = np.random.Generator(np.random.PCG64(child))
    size = plan.group_sizes[g]
    per = plan.draws_per_network
    acc: dict[str, np.ndarray] | None = None
    done = 0
    while done < size:
        B = min(plan.batch_size, size - done)
        eps = rng.standard_normal((B, per))
        feats = _batch_features(plan, eps, sigma, dsigma)
        if acc is None:
            acc = {k: np.cumsum(v, axis=0)[-1] for k, v in feats.items()}
        else:
            acc = {k: np.cumsum(np.concatenate([acc[k][None], v]), axis=0)[-1] for k, v in feats.items()}
        done += B
        if progress is not None:
            progress(B)
    acc = dict(acc or {})
    acc["N"] = np.float64(size)
    return acc


# ----------------------------------------------------------------------------- estimators from sums
def _u2(Ta: np.ndarray, Taa: np.ndarray, N: float) -> np.ndarray:
    """U-statistic of G_{12} G_{34} over distinct networks: (Σa ⊗ Σa − Σ a⊗a) / N(N−1)."""
    P = Ta.shape[0]
    outer = (Ta.reshape(-1)[:, None] * Ta.reshape(-1)[None, :]).reshape(P, P, P, P)
    return (outer - Taa) / (N * (N - 1))


def _estimators(T: dict[str, np.ndarray], plan: _Plan) -> dict[int, dict[str, np.ndarray]]:
    N = float(T["N"])
    out: dict[int, dict[str, np.ndarray]] = {}
    for ell in plan.layers:
        m = plan.n[ell]
        res: dict[str, np.ndarray] = {}
        Ta = T[f"{ell}:a"]
        res["G"] = Ta / N
        if "four_point" in plan.stats:
            with np.errstate(invalid="ignore", divide="ignore"):
                U = _u2(Ta, T[f"{ell}:aa"], N)
                pair = U + np.einsum("acbd->abcd", U) + np.einsum("adbc->abcd", U)
                res["four_point_same"] = T[f"{ell}:b"] / N - pair
                if m >= 2:
                    cross = (m * m * T[f"{ell}:aa"] - m * T[f"{ell}:b"]) / (m * (m - 1))
                    res["four_point_cross"] = cross / N - U
                else:
                    res["four_point_cross"] = np.full_like(U, np.nan)
        if "six_point" in plan.stats:
            vals = []
            for pattern in SIX_POINT_PATTERNS:
                total = 0.0
                for prod, coef in _SIX_TERMS[pattern].items():
                    t = len(prod)
                    if N < t:
                        total = np.nan
                        break

                    def ps(blk, prod=prod, ell=ell):
                        return T[f"{ell}:six:" + _mono_name(tuple(sorted(prod[j] for j in blk)))]

                    total = total + coef * distinct_sum(ps, t) / falling_factorial(N, t)
                vals.append(total)
            res["six_point"] = np.asarray(vals, dtype=np.float64)
        out[ell] = res
    if "ntk" in plan.stats:
        L = plan.depth
        m = plan.n[L]
        Tt, Ttt, Ts = T[f"{L}:ntk:t"], T[f"{L}:ntk:tt"], T[f"{L}:ntk:tsame"]
        with np.errstate(invalid="ignore", divide="ignore"):
            U = _u2(Tt, Ttt, N)
            res = out.setdefault(L, {})
            res["ntk_mean"] = Tt / N
            res["ntk_var"] = Ts / N - U
            if m >= 2:
                res["ntk_cov_cross"] = (m * m * Ttt - m * Ts) / (m * (m - 1)) / N - U
                res["ntk_offdiag"] = T[f"{L}:ntk:toff"] / N
    return out


def _fold(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Σ_g parts[g], added sequentially in group order (the reduction order is fixed)."""
    total = {k: np.array(v, dtype=np.float64, copy=True) for k, v in parts[0].items()}
    for p in parts[1:]:
        for k in total:
            total[k] = total[k] + p[k]
    return total


def _jackknife(parts: Sequence[dict[str, np.ndarray]], plan: _Plan):
    """Full-sample estimates and delete-one-group jackknife standard errors."""
    total = _fold(parts)
    full = _estimators(total, plan)
    G = len(parts)
    reps = []
    if G >= 2:
        for p in parts:
            sub = {k: total[k] - p[k] for k in total}
            with np.errstate(invalid="ignore", divide="ignore"):
                reps.append(_estimators(sub, plan))
    errs: dict[int, dict[str, np.ndarray]] = {}
    for ell, stats in full.items():
        errs[ell] = {}
        for name, val in stats.items():
            if G < 2:
                errs[ell][name] = np.full_like(val, np.nan)
                continue
            r = np.stack([rep[ell][name] for rep in reps])
            with np.errstate(invalid="ignore"):
                errs[ell][name] = np.sqrt((G - 1) / G * np.sum((r - r.mean(axis=0)) ** 2, axis=0))
    return full, errs


# ----------------------------------------------------------------------------- the public entry
def _as_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool):
        raise MonteCarloError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, float | np.floating):
        if not math.isfinite(value) or value != int(value):
            raise MonteCarloError(f"{name} must be a whole number >= {minimum}, got {value!r}")
        value = int(value)
    if not isinstance(value, int | np.integer):
        raise MonteCarloError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        hint = {
            "samples": " (cumulants and error bars need at least two independent networks)",
            "batch_size": " (it is the number of networks pushed through at once)",
            "groups": " (the jackknife needs at least two groups for error bars)",
        }.get(name, "")
        raise MonteCarloError(f"{name} must be >= {minimum}, got {value}{hint}")
    return int(value)


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
    six_point; ``"ntk"`` adds ntk_mean/ntk_var/ntk_cov_cross/ntk_offdiag of the output layer and needs the
    explicit sampler); ``sampler`` ``"explicit"``, ``"conditional"`` or ``"auto"`` (conditional unless the NTK
    is requested); ``batch_size`` networks per batched matrix product (default: about 32 MB of work);
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
    groups = _as_count("groups", groups, 1)
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
            per += 2 * P * P * n[-1] * max(n[1:]) + n[-1] ** 2 * P * P
        batch_size = int(max(1, min(max(sizes), _TARGET_DOUBLES_PER_BATCH // max(per, 1))))
    plan = _Plan(**{**proto.__dict__, "batch_size": batch_size})
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
        if backend == "numpy":
            nthreads = n_cores() if workers is None else _as_count("workers", workers, 1)
            nthreads = min(nthreads, groups)
            if nthreads == 1:
                parts = [_run_group(plan, g, tick) for g in range(groups)]
            else:
                with blas_threads(1), ThreadPoolExecutor(nthreads) as pool:
                    parts = list(pool.map(lambda g: _run_group(plan, g, tick), range(groups)))
        elif backend == "dask":
            parts = _run_dask(plan, client, tick)
        else:
            raise MonteCarloError(f"backend must be 'numpy' or 'dask', got {backend!r}")
    finally:
        if bar is not None:
            bar.close()

    full, errs = _jackknife(parts, plan)
    stats: dict[int, dict[str, Statistic]] = {}
    for ell, vals in full.items():
        stats[ell] = {}
        for name, val in vals.items():
            note = ""
            if name == "four_point_cross" and plan.n[ell] < 2:
                note = "needs at least two neurons in the layer"
            if name == "six_point" and plan.n[ell] < 3:
                note = "pattern iijjkk needs 3 neurons, iiiijj needs 2 (NaN where the layer is narrower)"
            if name.startswith("ntk_") and groups < 2:
                note = "no error bar with a single group"
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


def _run_dask(plan: _Plan, client, tick) -> list[dict[str, np.ndarray]]:
    """One Dask task per group; partial sums gathered and folded in group order (exactly as in-process)."""
    try:
        from distributed import as_completed, get_client
    except ImportError as exc:  # pragma: no cover - dask is a test dependency
        raise MonteCarloError("backend='dask' needs the distributed package: pip install 'nnft[dask]'") from exc
    if client is None:
        try:
            client = get_client()
        except ValueError as exc:
            raise MonteCarloError(
                "backend='dask' needs a dask.distributed.Client: pass client=Client(...) or create one first"
            ) from exc
    futures = [client.submit(_run_group, plan, g, None, pure=False) for g in range(plan.groups)]
    index = {f.key: g for g, f in enumerate(futures)}
    parts: list[dict | None] = [None] * plan.groups
    for fut in as_completed(futures):
        g = index[fut.key]
        parts[g] = fut.result()
        tick(plan.group_sizes[g])
    return parts  # type: ignore[return-value]


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


# ----------------------------------------------------------------------------- 1/n fits
@dataclass
class InverseWidthFit:
    """Weighted least-squares fit ``y(n) = c_0 + c_1/n (+ c_2/n² …)``; ``coef``/``stderr`` in that order."""

    coef: np.ndarray
    stderr: np.ndarray
    cov: np.ndarray
    chi2: float
    dof: int
    widths: np.ndarray = field(repr=False)

    @property
    def intercept(self) -> float:
        return float(self.coef[0])

    @property
    def slope(self) -> float:
        """The coefficient of 1/n."""
        return float(self.coef[1])

    def __call__(self, n) -> np.ndarray:
        inv = 1.0 / np.asarray(n, dtype=np.float64)
        return sum(c * inv**k for k, c in enumerate(self.coef))

    def zscore(self, slope=None, intercept=None) -> dict[str, float]:
        """z-scores of a predicted slope (e.g. the theory's coefficient of 1/n) and/or intercept."""
        out = {}
        if slope is not None:
            out["slope"] = (self.slope - slope) / float(self.stderr[1])
        if intercept is not None:
            out["intercept"] = (self.intercept - intercept) / float(self.stderr[0])
        return out


def fit_inverse_width(widths, values, stderr, order: int = 1) -> InverseWidthFit:
    """Fit ``values(n) ≈ Σ_{k=0}^{order} c_k / n^k`` by weighted least squares (weights 1/stderr²).

    Returns coefficients with standard errors from the covariance (X^T W X)^{-1} and the χ² of the fit;
    the standard tool to extract a 1/n coefficient (e.g. V or K1) from estimates at several widths.
    """
    n = np.asarray(widths, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    e = np.asarray(stderr, dtype=np.float64)
    if not (n.shape == y.shape == e.shape) or n.ndim != 1:
        raise MonteCarloError("widths, values and stderr must be 1-D arrays of equal length")
    if n.size < order + 1:
        raise MonteCarloError(f"a fit of order {order} needs at least {order + 1} widths, got {n.size}")
    if np.any(n <= 0) or np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise MonteCarloError("widths must be > 0 and standard errors finite and > 0")
    X = np.stack([n ** (-k) for k in range(order + 1)], axis=1)
    w = 1.0 / e**2
    A = X.T @ (w[:, None] * X)
    cov = np.linalg.inv(A)
    coef = cov @ (X.T @ (w * y))
    chi2 = float(np.sum(w * (y - X @ coef) ** 2))
    return InverseWidthFit(coef=coef, stderr=np.sqrt(np.diag(cov)), cov=cov, chi2=chi2, dof=n.size - order - 1,
                           widths=n)
