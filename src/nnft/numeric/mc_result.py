"""Result objects of a Monte Carlo run: estimated statistics with standard errors, and their display.

:class:`Statistic` holds one estimate (``value``, ``stderr``) with its z-scores and noise flags;
:class:`MonteCarloResult` groups the statistics of every requested layer with the run's metadata and
renders them as text, HTML (notebooks) or strict JSON. :class:`MonteCarloError` and
:class:`NoisyEstimateWarning` are the errors and warnings of :mod:`nnft.numeric.montecarlo`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nnft.errors import MonteCarloError, NoisyEstimateWarning
from nnft.network import MLP

__all__ = ["LayerStatistics", "MonteCarloError", "MonteCarloResult", "NoisyEstimateWarning", "Statistic"]


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
    "ntk_preact_same": "NTK-preactivation correlation E[ΔΘ̂_{ii;α1α2} z_{i;α3} z_{i;α4}] (same neuron)",
    "ntk_preact_cross": "NTK-preactivation correlation E[ΔΘ̂_{ii;α1α2} z_{k;α3} z_{k;α4}], i≠k (≈ D/n)",
    "ntk_preact_offdiag": "NTK-preactivation correlation E[Θ̂_{ik;α1α2} z_{i;α3} z_{k;α4}], i≠k (≈ F_{α1α3α2α4}/n)",
}


def _jsonable(a: np.ndarray):
    """Nested lists with NaN/inf replaced by None (strict JSON has no NaN)."""
    arr = np.asarray(a, dtype=object)
    arr[~np.isfinite(np.asarray(a, dtype=np.float64))] = None
    return arr.tolist()


class LayerStatistics(Mapping):
    """The statistics of one layer: attributes (``.G``, ``.four_point_same`` …) and read-only mapping access.

    ``result.at(ℓ).G`` matches ``result.G`` for the default layer; ``result.at(ℓ)["G"]``, ``in``, ``keys()``
    and iteration keep working as for the plain dict returned by earlier versions.
    """

    def __init__(self, layer: int, stats: dict[str, Statistic]) -> None:
        self._layer = layer
        self._stats = stats

    @property
    def layer(self) -> int:
        """The layer ℓ (1-based) these statistics belong to."""
        return self._layer

    def __getitem__(self, name: str) -> Statistic:
        return self._stats[name]

    def __iter__(self):
        return iter(self._stats)

    def __len__(self) -> int:
        return len(self._stats)

    def __getattr__(self, name: str) -> Statistic:
        if name.startswith("_"):
            raise AttributeError(name)
        stats = self.__dict__.get("_stats", {})
        if name in stats:
            return stats[name]
        if name in _DESCRIPTIONS:
            raise AttributeError(
                f"{name} was not estimated at layer {self.__dict__.get('_layer')}; request it with statistics=..."
                " (the NTK is available at the output layer with the explicit sampler)"
            )
        raise AttributeError(name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._stats})

    def __repr__(self) -> str:
        return f"LayerStatistics(layer {self._layer}: {', '.join(self._stats)})"


class MonteCarloResult:
    """Estimates from one Monte Carlo run; attributes are :class:`Statistic` objects of the default layer.

    ``result.G``, ``result.four_point_same``, ``result.four_point_cross``, ``result.six_point``,
    ``result.ntk_mean``, ``result.ntk_var`` (``ntk_cov_cross``, ``ntk_offdiag``, ``ntk_preact_same``,
    ``ntk_preact_cross``, ``ntk_preact_offdiag``) refer to ``result.layer``
    (the last requested layer); ``result.at(ℓ)`` gives the statistics of another requested layer as a
    :class:`LayerStatistics` (``result.at(1).G``; ``result.at(1)["G"]`` works too). ``samples``, ``seed``,
    ``sampler``, ``groups`` record how the numbers were made.
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

    def at(self, layer: int) -> LayerStatistics:
        """The statistics of one requested layer ℓ (1-based, as in CONVENTIONS.md): ``result.at(ℓ).G``."""
        if layer not in self._stats:
            raise MonteCarloError(f"layer {layer} was not requested; this result has layers {self.layers}")
        return LayerStatistics(layer, self._stats[layer])

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
