"""The ``nnft`` command line: ``nnft report`` (the main job), ``nnft kernels``, ``nnft mc``,
``nnft recursion`` and ``nnft activations``.

Examples::

    nnft kernels --activation relu --depth 5 --C_W 2 --inputs data.npy --out K.npy
    nnft kernels --activation erf --depth 4 --inputs big.npy --chunks 4096 --out K.zarr   # out of core
    nnft recursion --activation tanh --map ntk
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from nnft import __version__
from nnft.cli_io import check_output, load_inputs
from nnft.errors import InputError, NNFTError


def default_inputs(P: int = 8, n0: int = 3, seed: int = 0) -> np.ndarray:
    """The built-in input set: P seeded Gaussian points in R^{n0} scaled to |x|² = n0, plus a duplicate."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((P, n0))
    x *= np.sqrt(n0) / np.linalg.norm(x, axis=1, keepdims=True)
    x[-1] = x[0]
    return x


def _floats(text: str) -> float | list[float]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number or a comma-separated list, got {text!r}") from exc
    return vals[0] if len(vals) == 1 else vals


def _add_net_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--activation", "-a", default="relu", help="registry name (e.g. relu, tanh, leaky_relu(0.1)) "
                   "or a sympy expression of z (e.g. 'z*tanh(z)')")
    p.add_argument("--depth", "-L", type=int, default=3, help="number of weight layers L (L-1 hidden layers)")
    p.add_argument("--C_b", type=_floats, default=0.0, help="bias variance, a number or one per layer")
    p.add_argument("--C_W", type=_floats, default=1.0, help="weight variance, a number or one per layer")
    p.add_argument("--lambda_b", type=_floats, default=None, help="bias learning rate (default C_b)")
    p.add_argument("--lambda_W", type=_floats, default=None, help="weight learning rate (default C_W)")


def _load_inputs(path: str | None) -> np.ndarray:
    if path is None:
        return default_inputs()
    return load_inputs(path)


def _ntk_path(args: argparse.Namespace) -> str:
    tp = Path(args.out)
    return args.ntk_out or str(tp.with_name(tp.stem + "_ntk" + tp.suffix))


def _store_lazily(arr, path: str):
    """(a delayed store of ``arr`` into ``path``, where, the memmap to flush or None): .zarr or .npy."""
    import dask.array as da

    p = Path(path)
    if not hasattr(arr, "dask"):
        arr = da.from_array(arr, chunks=min(4096, arr.shape[0]))
    if p.suffix == ".zarr" or str(path).endswith(".zarr/"):
        return arr.to_zarr(str(p), overwrite=True, compute=False), f"zarr store {p}", None
    if p.suffix != ".npy":
        raise InputError(f"--out {path}: the output must end in .npy or .zarr")
    mm = np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=arr.shape)
    return da.store(arr, mm, lock=False, compute=False), f"{p}", mm


def _save(arr, path: str) -> str:
    p = Path(path)
    if p.suffix == ".zarr" or str(path).endswith(".zarr/") or hasattr(arr, "dask"):
        import dask

        store, where, mm = _store_lazily(arr, path)
        dask.compute(store)
        if mm is not None:
            mm.flush()
        return where
    if p.suffix != ".npy":
        raise InputError(f"--out {path}: the output must end in .npy or .zarr")
    np.save(p, arr)
    return f"{p}"


def _save_lazy_pair(K, T, path: str, ntk_path: str) -> tuple[str, str]:
    """Store lazy K and Θ in one dask computation, so the blocks they share are computed once."""
    import dask

    sk, wk, mk = _store_lazily(K, path)
    st, wt, mt = _store_lazily(T, ntk_path)
    dask.compute(sk, st)
    for mm in (mk, mt):
        if mm is not None:
            mm.flush()
    return wk, wt


def _cmd_kernels(args: argparse.Namespace) -> int:
    import nnft

    x = _load_inputs(args.inputs)
    net = nnft.MLP(args.activation, depth=args.depth, C_b=args.C_b, C_W=args.C_W,
                   lambda_b=args.lambda_b, lambda_W=args.lambda_W)
    want_ntk = not args.no_ntk and not net.activation.has_distributional_derivative
    if args.chunks is not None:
        if isinstance(args.chunks, bool) or args.chunks < 1:
            raise InputError(f"--chunks must be a positive block size, got {args.chunks}")
        if args.out is None:
            raise InputError("--chunks streams the kernel to disk: give --out K.npy or K.zarr")
    if args.out:  # before computing: a bad path must not cost the whole computation
        check_output(args.out, suffixes=(".npy", ".zarr"))
        if want_ntk:
            check_output(_ntk_path(args), option="--ntk-out", suffixes=(".npy", ".zarr"))
    print(f"# {net!r}")
    print(f"# inputs: P = {x.shape[0]}, n0 = {x.shape[1] if x.ndim == 2 else '?'}"
          + ("" if args.inputs else " (built-in default set; pass --inputs x.npy for your data)"))
    t0 = time.perf_counter()
    if args.chunks is not None:
        # one lazy pass for both kernels: each block's tile yields its K and Θ blocks
        lazy = net.kernels(x, ntk=want_ntk, layers="last", backend=args.backend, chunks=args.chunks)
        K = lazy.K[0]
        T = lazy.Theta[0] if want_ntk else None
    else:
        kern = net.kernels(x, ntk=want_ntk, layers="last", backend=args.backend)
        K = kern.nngp
        T = kern.ntk if want_ntk else None
    if args.out:
        if T is not None and args.chunks is not None:
            where, twhere = _save_lazy_pair(K, T, args.out, _ntk_path(args))
        else:
            where = _save(K, args.out)
            twhere = _save(T, _ntk_path(args)) if T is not None else None
        print(f"# NNGP K^(L) written to {where}")
        if twhere is not None:
            print(f"# NTK Theta^(L) written to {twhere}")
    dt = time.perf_counter() - t0
    if args.chunks is None:
        P = K.shape[0]
        np.set_printoptions(precision=6, suppress=True, linewidth=120)
        if P <= 10:
            print("K^(L) =")
            print(K)
            if T is not None:
                print("Theta^(L) =")
                print(T)
        else:
            print(f"K^(L): mean diagonal {np.mean(np.diag(K)):.6g}, mean off-diagonal "
                  f"{(K.sum() - np.trace(K)) / (P * P - P):.6g}")
    print(f"# done in {dt:.3f} s")
    return 0


def _cmd_recursion(args: argparse.Namespace) -> int:
    import nnft

    m = nnft.MLP(args.activation, depth=2).recursion(args.map)
    print(m.latex())
    return 0


def _cmd_activations(args: argparse.Namespace) -> int:
    from nnft.activations import REGISTRY

    for name, (_, defaults, desc) in sorted(REGISTRY.items()):
        params = ", ".join(f"{k}={v}" for k, v in defaults.items())
        print(f"{name + ('(' + params + ')' if params else ''):24s} {desc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nnft`` command."""
    parser = argparse.ArgumentParser(prog="nnft", description="Statistical field theory of wide neural networks.")
    parser.add_argument("--version", action="version", version=f"nnft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    pk = sub.add_parser("kernels", help="infinite-width NNGP K and NTK Theta of the output layer")
    _add_net_args(pk)
    pk.add_argument("--inputs", "-x", default=None,
                    help="inputs (P, n0) as .npy/.npz/.txt/.csv/.tsv (default: built-in set)")
    pk.add_argument("--out", "-o", default=None, help="write K to this .npy or .zarr (Theta to *_ntk.*)")
    pk.add_argument("--ntk-out", default=None, help="where to write Theta (default: <out>_ntk.<ext>)")
    pk.add_argument("--no-ntk", action="store_true", help="compute only the NNGP kernel")
    pk.add_argument("--chunks", type=int, default=None, help="block size: compute out of core with dask")
    pk.add_argument("--backend", choices=("numpy", "numba"), default="numpy")
    pk.set_defaults(func=_cmd_kernels)

    pr = sub.add_parser("recursion", help="print the symbolic one-layer map in LaTeX")
    pr.add_argument("--activation", "-a", default="relu")
    pr.add_argument("--map", choices=("nngp", "ntk"), default="ntk")
    pr.set_defaults(func=_cmd_recursion)

    pa = sub.add_parser("activations", help="list the built-in activations")
    pa.set_defaults(func=_cmd_activations)

    from nnft.report import cli as report_cli

    report_cli.register(sub).set_defaults(func=report_cli.run)

    try:
        from nnft import mc_cli
    except ImportError:  # pragma: no cover
        mc_cli = None
    if mc_cli is not None:
        pm = mc_cli.register(sub)
        pm.set_defaults(func=mc_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nnft`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (NNFTError, ValueError, FloatingPointError, MemoryError, OSError) as exc:
        print(f"nnft: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
