"""``nnft report``: the command-line front of :func:`nnft.report.build_report`."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to the ``nnft`` parser's subparsers."""
    from nnft.cli import _floats

    p = sub.add_parser("report", help="the whole derivation of a network: maps, kernels, Monte Carlo check "
                       "(HTML, Markdown, LaTeX, JSON, figures)",
                       description="Write a complete derivation report of a network. With no arguments: a tanh "
                       "network at criticality on a built-in input set, into ./nnft-report/.")
    p.add_argument("--activation", "-a", default=None, help="activation (default tanh): a built-in name or an "
                   "expression of z")
    p.add_argument("--depth", "-L", type=int, default=None, help="number of weight layers L (default 4)")
    p.add_argument("--width", "-n", type=int, default=None, help="hidden width shown in the network table "
                   "(default 64)")
    p.add_argument("--C_b", type=_floats, default=None, help="bias variance (default 0)")
    p.add_argument("--C_W", type=_floats, default=None, help="weight variance (default 1)")
    p.add_argument("--lambda_b", type=_floats, default=None, help="bias learning rate (default C_b)")
    p.add_argument("--lambda_W", type=_floats, default=None, help="weight learning rate (default C_W)")
    p.add_argument("--inputs", "-x", default=None, help="inputs (P, n0) as .npy/.txt/.csv (default: built-in set)")
    p.add_argument("--config", default=None, help="a TOML file with any of these settings (flags override it)")
    p.add_argument("--samples", type=int, default=None, help="Monte Carlo networks per width (default 10000; 0 "
                   "skips the check)")
    p.add_argument("--seed", type=int, default=None, help="Monte Carlo seed (default 0)")
    p.add_argument("--out", "-o", default="nnft-report", help="output directory (default ./nnft-report)")
    p.add_argument("--quick", action="store_true", default=None, help="a smaller Monte Carlo budget "
                   "(under a minute)")
    return p


def run(args: argparse.Namespace) -> int:
    """Build the report described by ``args``; errors reach ``nnft.cli.main`` as nnft exceptions."""
    from nnft.report import ReportConfig, build_report

    cfg = ReportConfig.from_toml(args.config) if args.config else ReportConfig()
    cfg = cfg.updated(activation=args.activation, depth=args.depth, width=args.width, C_b=args.C_b, C_W=args.C_W,
                      lambda_b=args.lambda_b, lambda_W=args.lambda_W, inputs=args.inputs, samples=args.samples,
                      seed=args.seed, quick=args.quick)
    try:
        report = build_report(cfg, args.out)
    except KeyboardInterrupt:
        print("nnft: interrupted; no report was written (the partial output was removed)", file=sys.stderr)
        return 130
    print(f"report written to {report.path}/ (report.html, report.md, formulas.tex, results.json, figures/, "
          f"modules/) in {report.seconds:.1f} s")
    return 0


__all__ = ["register", "run"]
