"""Compute neural-tangents' analytic NNGP and NTK kernels as a stored reference for nnft's tests.

This script runs only under the separate neural-tangents venv (never under the project's own
environment) and writes ``tests/data/nt_reference.npz``, which ``tests/test_vs_neural_tangents.py``
reads. The tests never import neural-tangents.

Rerun (from the repository root)::

    /work/ntvenv/bin/python bench/nt_reference.py                 # rewrites tests/data/nt_reference.npz
    /work/ntvenv/bin/python bench/nt_reference.py --out /tmp/x.npz --only relu,erf   # a subset

The venv is made with ``python3 -m venv /work/ntvenv && /work/ntvenv/bin/pip install
neural-tangents==0.6.5 jax==0.5.3 jaxlib==0.5.3`` (see bench/README.md). Output is deterministic:
rerunning on the same versions reproduces the file's arrays bit for bit (the slow test
``test_stored_reference_is_fresh`` checks this against the live venv).

What is stored (all float64; string arrays are numpy unicode, so ``np.load`` needs no pickle):

``x``                 (P, n_0) inputs, P = 12, n_0 = 5: random directions with norms 0.5 … 2, one exact
                      duplicate pair, one nearly parallel pair (angle 1e-6, different norms) and one
                      exactly antiparallel pair (x_b = −x_a). No zero input (see ``x_zero`` below).
``duplicate_pairs``   (k, 2) index pairs with x_a == x_b.
``near_parallel_pairs``, ``antiparallel_pairs``  index pairs as described.
``case_name``         short name of each case's activation (e.g. ``"relu"``, ``"erf(2,0.5,0)"``).
``case_nnft``         the nnft activation string (a registry name or a sympy expression of z).
``case_nt``           the stax layer used, as text (e.g. ``"stax.Erf(a=2.0, b=0.5, c=0.0)"``).
``case_family``, ``case_params``  a closed-form family name and up to 3 parameters, so a test can
                      rebuild the single-input (diagonal) maps without reading ``case_nt``.
``case_C_b``, ``case_C_W``, ``case_depth``   network settings; depth L counts Dense layers
                      (L − 1 activations), NTK parameterisation, W_std² = C_W, b_std² = C_b.
``case_has_ntk``      False where the NTK is undefined (sign: σ' is a Dirac delta; NT returns 0).
``K``, ``Theta``      (n_cases, P, P) output-layer NNGP and NTK of neural-tangents.
``dropped``           text lines for (activation, setting, depth) left out because the kernel leaves
                      [1e-150, 1e150] (it collapses to 0 or blows up at that depth).
``x_zero``, ``zero_*``  a second, small input set containing the zero vector, for C_b > 0 only, for
                      relu and erf (recorded for the curious; the main tests do not use it).
``meta_*``            versions of neural-tangents, jax, jaxlib, numpy and the seed.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 20241127
P_MAIN = 12
N0 = 5
DEPTHS = (1, 2, 4, 16)
RANGE = (1e-150, 1e150)


@dataclass(frozen=True)
class Case:
    """One activation with the stax layer, the nnft string, a closed-form family and two settings."""

    name: str
    nnft: str
    nt: str  # python expression evaluated with ``stax`` and ``math`` in scope
    family: str
    params: tuple[float, ...]
    settings: tuple[tuple[float, float], ...]  # (C_b, C_W); the first has C_b = 0
    has_ntk: bool = True


#: Every activation that neural-tangents 0.6.5 computes in closed form and nnft can express.
#: Families (for the diagonal maps in the tests): abrelu(a, b) = a·min(z,0) + b·max(z,0);
#: erf(a, b, c) = a·erf(b z) + c; sin(a, b, c) = a·sin(b z + c); exp(a, b) = a·e^{b z};
#: gaussian(a, b) = a·e^{b z²}; gelu = z Φ(z); sign; monomial(k) = z^k; polynomial(c0, c1, c2).
#: Left out: stax.RectifiedMonomial (its kernel is NaN on the diagonal, θ = 0 divides by sin θ, and the
#: NaN spreads to every entry from depth 2 on), stax.Hermite (assumes unit-norm inputs), stax.Gabor,
#: stax.ExpNormalized and stax.Sigmoid_like (= Erf(0.5, 1/2.402…, 0.5), covered by the Erf family).
CASES: tuple[Case, ...] = (
    Case("relu", "relu", "stax.Relu()", "abrelu", (0.0, 1.0), ((0.0, 2.0), (0.3, 1.2))),
    Case("leaky_relu(0.1)", "leaky_relu(0.1)", "stax.LeakyRelu(0.1)", "abrelu", (0.1, 1.0),
         ((0.0, 1.98), (0.1, 1.5))),
    Case("abs", "abs", "stax.Abs()", "abrelu", (-1.0, 1.0), ((0.0, 1.0), (0.3, 1.2))),
    Case("abrelu(-0.5,2)", "Piecewise((-z/2, z < 0), (2*z, True))", "stax.ABRelu(-0.5, 2.0)", "abrelu",
         (-0.5, 2.0), ((0.0, 0.47), (0.2, 0.4))),
    Case("erf", "erf", "stax.Erf()", "erf", (1.0, 1.0, 0.0), ((0.0, 1.0), (0.1, 1.5))),
    Case("erf(2,0.5,0)", "2*erf(z/2)", "stax.Erf(a=2.0, b=0.5, c=0.0)", "erf", (2.0, 0.5, 0.0),
         ((0.0, 1.0), (0.1, 1.5))),
    Case("erf(0.5,0.25,0.5)", "erf(z/4)/2 + 1/2", "stax.Erf(a=0.5, b=0.25, c=0.5)", "erf",
         (0.5, 0.25, 0.5), ((0.0, 1.0), (0.1, 2.0))),
    Case("sin", "sin", "stax.Sin()", "sin", (1.0, 1.0, 0.0), ((0.0, 1.0), (0.5, 2.0))),
    Case("sin(1.5,2,1/3)", "3*sin(2*z + 1/3)/2", "stax.Sin(a=1.5, b=2.0, c=1/3)", "sin",
         (1.5, 2.0, 1 / 3), ((0.0, 1.0), (0.2, 0.5))),
    Case("cos", "cos", "stax.Cos()", "sin", (1.0, 1.0, math.pi / 2), ((0.0, 1.0), (0.1, 2.0))),
    Case("rbf(0.5)", "sqrt(2)*sin(z + pi/4)", "stax.Rbf(gamma=0.5)", "sin", (math.sqrt(2), 1.0, math.pi / 4),
         ((0.0, 1.0), (0.1, 2.0))),
    Case("exp", "exp", "stax.Exp()", "exp", (1.0, 1.0), ((0.0, 0.05), (0.1, 0.05))),
    Case("exp(0.5,0.7)", "exp(7*z/10)/2", "stax.Exp(a=0.5, b=0.7)", "exp", (0.5, 0.7),
         ((0.0, 0.2), (0.1, 0.2))),
    Case("gaussian", "exp(-z**2)", "stax.Gaussian()", "gaussian", (1.0, -1.0), ((0.0, 1.0), (0.1, 2.0))),
    Case("gelu", "gelu", "stax.Gelu()", "gelu", (), ((0.0, 2.0), (0.1, 1.5))),
    Case("sign", "sign", "stax.Sign()", "sign", (), ((0.0, 1.0), (0.2, 1.0)), has_ntk=False),
    Case("monomial(2)", "monomial(2)", "stax.Monomial(2)", "monomial", (2.0,), ((0.0, 0.05), (0.1, 0.05))),
    Case("monomial(3)", "monomial(3)", "stax.Monomial(3)", "monomial", (3.0,), ((0.0, 0.05), (0.1, 0.05))),
    Case("polynomial(0.1,1,0.5)", "1/10 + z + z**2/2", "stax.Polynomial([0.1, 1.0, 0.5])", "polynomial",
         (0.1, 1.0, 0.5), ((0.0, 0.3), (0.1, 0.3))),
)


def make_inputs(seed: int = SEED) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the (12, 5) input set and the index pairs of its special geometry."""
    rng = np.random.default_rng(seed)
    n_free = 9
    u = rng.standard_normal((n_free, N0))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    norms = np.array([0.5, 0.8, 1.0, 1.3, 1.7, 2.0, 0.6, 1.1, 1.5]) * math.sqrt(N0)
    x = np.empty((P_MAIN, N0))
    x[:n_free] = u * norms[:, None]
    # duplicate: row 9 == row 2
    x[9] = x[2]
    # nearly parallel to row 4 at angle 1e-6, with 1.1× its norm
    a = x[4] / np.linalg.norm(x[4])
    w = rng.standard_normal(N0)
    w -= (w @ a) * a
    w /= np.linalg.norm(w)
    theta = 1e-6
    x[10] = 1.1 * np.linalg.norm(x[4]) * (math.cos(theta) * a + math.sin(theta) * w)
    # exactly antiparallel: row 11 == -row 6
    x[11] = -x[6]
    pairs = {
        "duplicate_pairs": np.array([[2, 9]]),
        "near_parallel_pairs": np.array([[4, 10]]),
        "antiparallel_pairs": np.array([[6, 11]]),
    }
    return x, pairs


def make_zero_inputs(seed: int = SEED + 1) -> np.ndarray:
    """Return a (4, 5) input set whose first row is the zero vector."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, N0))
    x[0] = 0.0
    return x


def nt_kernels(case: Case, C_b: float, C_W: float, depth: int, x: np.ndarray):
    """Return neural-tangents' (NNGP, NTK) of L Dense layers with L − 1 activations, float64."""
    from neural_tangents import stax

    w_std, b_std = math.sqrt(C_W), math.sqrt(C_b)
    layers = []
    for _ in range(depth - 1):
        layers += [stax.Dense(512, W_std=w_std, b_std=b_std, parameterization="ntk"),
                   eval(case.nt, {"stax": stax, "math": math})]  # noqa: S307 - trusted table above
    layers.append(stax.Dense(1, W_std=w_std, b_std=b_std, parameterization="ntk"))
    _, _, kernel_fn = stax.serial(*layers)
    k = kernel_fn(x, None, ("nngp", "ntk"))
    K, T = np.asarray(k.nngp, dtype=np.float64), np.asarray(k.ntk, dtype=np.float64)
    assert K.dtype == np.float64 and T.dtype == np.float64
    return K, T


def _in_range(K: np.ndarray) -> bool:
    d = np.abs(np.diag(K))
    return bool(np.all(np.isfinite(K)) and d.min() > RANGE[0] and d.max() < RANGE[1])


def build(only: set[str] | None = None) -> dict[str, np.ndarray]:
    """Compute every case (or those named in ``only``) and return the arrays to store."""
    import jax

    x, pairs = make_inputs()
    names, nnft_s, nt_s, fams, params, cbs, cws, depths, has_ntk, Ks, Ts, dropped = ([] for _ in range(12))
    for case in CASES:
        if only and case.name not in only:
            continue
        for C_b, C_W in case.settings:
            for L in DEPTHS:
                K, T = nt_kernels(case, C_b, C_W, L, x)
                if not _in_range(K) or (case.has_ntk and not _in_range(T)):
                    dropped.append(f"{case.name} C_b={C_b} C_W={C_W} depth={L}: kernel out of {RANGE}")
                    continue
                names.append(case.name)
                nnft_s.append(case.nnft)
                nt_s.append(case.nt)
                fams.append(case.family)
                params.append(list(case.params) + [np.nan] * (3 - len(case.params)))
                cbs.append(C_b)
                cws.append(C_W)
                depths.append(L)
                has_ntk.append(case.has_ntk)
                Ks.append(K)
                Ts.append(T if case.has_ntk else np.full_like(T, np.nan))
    out: dict[str, np.ndarray] = {
        "x": x,
        **pairs,
        "case_name": np.array(names),
        "case_nnft": np.array(nnft_s),
        "case_nt": np.array(nt_s),
        "case_family": np.array(fams),
        "case_params": np.array(params, dtype=np.float64).reshape(-1, 3),
        "case_C_b": np.array(cbs, dtype=np.float64),
        "case_C_W": np.array(cws, dtype=np.float64),
        "case_depth": np.array(depths, dtype=np.int64),
        "case_has_ntk": np.array(has_ntk, dtype=bool),
        "K": np.array(Ks, dtype=np.float64),
        "Theta": np.array(Ts, dtype=np.float64),
        "dropped": np.array(dropped, dtype="U200"),
    }
    # zero-input set (C_b > 0 settings only; relu and erf)
    xz = make_zero_inputs()
    zK, zT, zname = [], [], []
    for case in CASES:
        if case.name not in ("relu", "erf") or (only and case.name not in only):
            continue
        C_b, C_W = case.settings[1]
        for L in DEPTHS:
            K, T = nt_kernels(case, C_b, C_W, L, xz)
            zK.append(K)
            zT.append(T)
            zname.append(f"{case.name} C_b={C_b} C_W={C_W} depth={L}")
    out.update({"x_zero": xz, "zero_case": np.array(zname), "zero_K": np.array(zK),
                "zero_Theta": np.array(zT)})
    import jaxlib
    import neural_tangents

    out.update({
        "meta_neural_tangents": np.array(neural_tangents.__version__),
        "meta_jax": np.array(jax.__version__),
        "meta_jaxlib": np.array(jaxlib.__version__),
        "meta_numpy": np.array(np.__version__),
        "meta_seed": np.array(SEED),
    })
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, compute the reference kernels and write the npz file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_out = Path(__file__).resolve().parents[1] / "tests" / "data" / "nt_reference.npz"
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    data = build(only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    n = len(data["case_name"])
    print(f"wrote {args.out}: {n} cases, {len(data['dropped'])} dropped", file=sys.stderr)
    for line in data["dropped"]:
        print("  dropped:", line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
