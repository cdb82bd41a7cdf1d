"""What a report is about: the network, its inputs and the Monte Carlo budget, from the CLI or a TOML file.

A :class:`ReportConfig` is pure data. ``ReportConfig.from_toml(path)`` reads a TOML file whose keys are
exactly the field names below (unknown keys are refused with the list of allowed ones); activation
strings go through :func:`nnft.activation`, whose parser never evaluates code. The default is the
report's showcase: a tanh network at criticality (``C_b = 0``, ``C_W = 1``, PDLT §5) on the built-in
input set.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from nnft.errors import InputError

#: Widths of the Monte Carlo ensembles (full report, quick report).
DEFAULT_WIDTHS = (16, 32, 64, 128)
QUICK_WIDTHS = (16, 32, 64)


@dataclass(frozen=True)
class ReportConfig:
    """The network, inputs and budgets of one ``nnft report`` run (see the module docstring)."""

    activation: str = "tanh"
    depth: int = 4
    width: int = 64
    C_b: float | list[float] = 0.0
    C_W: float | list[float] = 1.0
    lambda_b: float | list[float] | None = None
    lambda_W: float | list[float] | None = None
    inputs: str | None = None
    samples: int = 10000
    seed: int = 0
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    quick: bool = False
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_toml(cls, path: str | Path) -> ReportConfig:
        """Read a config file; every key must be a field of :class:`ReportConfig`."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(f"--config {p}: no such file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--config {p}: cannot read it ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"--config {p} is not valid TOML: {exc}") from exc
        table = data.pop("network", None)  # settings may sit at top level or in a [network] table
        if isinstance(table, dict):
            data = {**table, **data}
        elif table is not None:
            raise InputError(f"--config {p}: 'network' must be a table ([network]), got {table!r}")
        return cls().updated(**data)

    def updated(self, **changes) -> ReportConfig:
        """A copy with ``changes`` applied and checked; ``None`` values leave a field as it is."""
        allowed = {f.name for f in fields(self)} - {"extra"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InputError(f"unknown report setting(s) {unknown}; allowed: {sorted(allowed)}")
        changes = {k: v for k, v in changes.items() if v is not None}
        if "widths" in changes:
            changes["widths"] = tuple(changes["widths"])
        out = replace(self, **changes)
        out._check()
        return out

    def _check(self) -> None:
        def integer(name: str, v, lo: int) -> None:
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InputError(f"report setting {name} must be an integer >= {lo}, got {v!r}")

        integer("depth", self.depth, 1)
        integer("width", self.width, 1)
        integer("samples", self.samples, 0)
        integer("seed", self.seed, 0)
        if not isinstance(self.activation, str):
            raise InputError(f"report setting activation must be a string, got {self.activation!r}")
        for w in self.widths:
            integer("widths entry", w, 2)
        if self.samples and len(self.widths) < 3:
            raise InputError("the Monte Carlo check fits G(n) = c0 + c1/n (+ c2/n² from four widths on): "
                             "give at least 3 widths")
        for name in ("C_b", "C_W", "lambda_b", "lambda_W"):
            v = getattr(self, name)
            for x in v if isinstance(v, list | tuple) else [v]:
                if x is not None and (isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)):
                    raise InputError(f"report setting {name} must be a finite number or a list of them, got {v!r}")
        if not isinstance(self.quick, bool):
            raise InputError(f"report setting quick must be true or false, got {self.quick!r}")

    def effective(self) -> ReportConfig:
        """The config a run uses: ``quick`` trims the Monte Carlo budget (fewer widths and samples)."""
        if not self.quick:
            return self
        widths = tuple(w for w in self.widths if w <= 64) if self.widths == DEFAULT_WIDTHS else self.widths
        return replace(self, widths=widths if len(widths) >= 3 else QUICK_WIDTHS, samples=min(self.samples, 1500))


__all__ = ["DEFAULT_WIDTHS", "QUICK_WIDTHS", "ReportConfig"]
