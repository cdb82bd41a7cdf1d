"""The ``nnft mc`` subcommand: Monte Carlo statistics of finite-width networks from the command line.

``nnft mc --activation tanh --depth 4 --width 32 --samples 1e6 [--inputs x.npy] [--out r.json]``
prints the estimates with their standard errors and optionally writes them as JSON
(:meth:`nnft.montecarlo.MonteCarloResult.to_dict`). :func:`register` adds the subcommand to an argparse
subparsers object; :func:`run` executes parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np


def _count(text: str) -> int:
    """Parse a count written as an integer or in float notation (``1e6``)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not np.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def _floats(text: str) -> float | list[float]:
    parts = [float(t) for t in text.split(",")]
    return parts[0] if len(parts) == 1 else parts


def _ints(text: str) -> int | list[int]:
    parts = [_count(t) for t in text.split(",")]
    return parts[0] if len(parts) == 1 else parts


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``mc`` subcommand (its parser calls :func:`run`) to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "mc",
        help="Monte Carlo estimates (G, connected 4- and 6-point functions, NTK) of finite-width networks",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--activation", default="relu", help="activation name or expression in z (default relu)")
    p.add_argument("--depth", type=int, default=3, help="number of weight layers L (default 3)")
    p.add_argument("--width", type=_ints, default=32, help="hidden width n, or n_1,…,n_{L-1} (default 32)")
    p.add_argument("--n-out", type=int, default=1, help="output width m (default 1)")
    p.add_argument("--C_b", "--cb", dest="C_b", type=_floats, default=0.0, help="bias variance(s) (default 0)")
    p.add_argument("--C_W", "--cw", dest="C_W", type=_floats, default=1.0, help="weight variance(s) (default 1)")
    p.add_argument("--samples", type=_count, default=10_000, help="number of networks S, e.g. 1e6")
    p.add_argument("--seed", type=int, default=0, help="seed (results are bit-reproducible)")
    p.add_argument("--inputs", help="inputs x (P, n_0) as .npy/.npz/.txt/.csv/.tsv (default one input of ones)")
    p.add_argument("--n0", type=int, default=8, help="input dimension when --inputs is not given")
    p.add_argument("--layers", type=_ints, default=None, help="layers to report, e.g. 1,3 (default output)")
    p.add_argument(
        "--statistics", default="G,four_point,six_point",
        help="comma list from G, four_point, six_point, ntk (default G,four_point,six_point)",
    )
    p.add_argument("--sampler", choices=("auto", "explicit", "conditional"), default="auto")
    p.add_argument("--batch-size", type=_count, default=None, help="networks per batched matmul (default auto)")
    p.add_argument("--groups", type=_count, default=64, help="jackknife groups = seeded chunks (default 64)")
    p.add_argument("--workers", type=int, default=None, help="threads (default all cores)")
    p.add_argument("--scheduler", default=None, help="address of a dask scheduler: run there (backend dask)")
    p.add_argument("--out", help="write the result as JSON to this file")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Execute ``nnft mc``; returns 0 on success, 2 on invalid input (message on stderr)."""
    import nnft
    from nnft.cli_io import check_output, load_inputs
    from nnft.errors import NNFTError
    from nnft.montecarlo import NoisyEstimateWarning, estimate

    try:
        net = nnft.MLP(args.activation, depth=args.depth, width=args.width, C_b=args.C_b, C_W=args.C_W,
                       n_out=args.n_out)
        if args.inputs:
            x = load_inputs(args.inputs)
        else:
            x = np.ones((1, args.n0))
        if args.out:  # before sampling: a bad path must not cost the whole run
            check_output(args.out)
        client = None
        if args.scheduler:
            from distributed import Client

            client = Client(args.scheduler)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NoisyEstimateWarning)
            result = estimate(
                net, x, samples=args.samples, seed=args.seed, layers=args.layers,
                statistics=[s.strip() for s in args.statistics.split(",") if s.strip()],
                sampler=args.sampler, batch_size=args.batch_size, groups=args.groups,
                workers=args.workers, progress=args.progress,
                backend="dask" if client is not None else "numpy", client=client,
            )
    except (NNFTError, OSError, ValueError, FloatingPointError, MemoryError) as exc:
        print(f"nnft mc: error: {exc}", file=sys.stderr)
        return 2
    print(repr(result))
    print(f"({result.info['seconds']:.2f} s, batch size {result.info['batch_size']})")
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    if args.out:
        try:
            with open(args.out, "w") as fh:
                json.dump(result.to_dict(), fh, indent=1)
        except OSError as exc:
            print(f"nnft mc: error: --out {args.out}: cannot write it: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m nnft.mc_cli …``) until ``nnft.cli`` registers the subcommand."""
    parser = argparse.ArgumentParser(prog="nnft")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
