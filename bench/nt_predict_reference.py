"""Store neural-tangents' gradient-descent ensemble predictions as a reference for ``nnft.gradient_descent``.

This script runs only under the separate neural-tangents venv (see bench/README.md) and writes
``tests/data/nt_predict_reference.npz``, which ``tests/test_inference_vs_neural_tangents.py`` reads; the
tests never import neural-tangents.

Rerun (from the repository root)::

    /work/ntvenv/bin/python bench/nt_predict_reference.py      # ~10 s, rewrites tests/data/nt_predict_reference.npz

For each case (activation, C_b, C_W, depth L = number of Dense layers, NTK parameterisation with
``W_std = sqrt(C_W)``, ``b_std = sqrt(C_b)``) and each ``diag_reg`` it calls
``nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, learning_rate=lr,
diag_reg=ρ, diag_reg_absolute_scale=True)`` and stores, for ``get`` in {"nngp", "ntk"} and
``compute_cov=True``, the mean and covariance at the neural-tangents times ``t_nt`` (``np.inf``
included) and at ``t=None`` (its Cholesky path). Everything is float64 (``jax_enable_x64``).

What is stored:

``x_train`` (P_A, n_0), ``y_train`` (P_A, m), ``x_test`` (P_B, n_0), ``t_nt`` (T,), ``learning_rate``,
``diag_reg`` (R,), ``case_name``, ``case_nnft`` (the nnft activation string), ``case_C_b``, ``case_C_W``,
``case_depth``; per case ``c``: ``K`` and ``Theta`` (n_cases, P_A + P_B, P_A + P_B), neural-tangents' own
kernels on ``vstack([x_train, x_test])``; ``mean_{get}`` (n_cases, R, T, P_B, m), ``cov_{get}``
(n_cases, R, T, P_B, P_B), ``mean_{get}_inf`` / ``cov_{get}_inf`` (n_cases, R, P_B, m | P_B, P_B) from
``t=None``; ``meta_*`` versions.

neural-tangents' loss is the mean over the ``P_A m`` squared errors, so its time is ``t_nt = t P_A m`` for
nnft's time ``t`` of the ``½ Σ`` loss at the same learning rate (read off ``_make_expm1_fn``:
``exp(−λ t_nt lr / y_train.size)``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

SEED = 20261204
P_A, P_B, N0, M = 7, 4, 4, 2
T_NT = (0.0, 0.5, 3.0, 20.0, 200.0, math.inf)
LR = 0.7
DIAG_REG = (0.0, 1e-2)
#: (name, stax layer as text, nnft activation string, C_b, C_W, depth)
CASES = (
    ("relu", "stax.Relu()", "relu", 0.1, 2.0, 3),
    ("erf", "stax.Erf()", "erf", 0.2, 1.4, 3),
    ("tanh-like erf(2,0.5,0)", "stax.Erf(a=2.0, b=0.5, c=0.0)", "2*erf(z/2)", 0.0, 1.2, 2),
)


def make_data(seed: int = SEED):
    """Training inputs with norms 0.7 … 1.5, targets of order one, and test inputs (no duplicates)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(P_A + P_B, N0))
    x *= (rng.uniform(0.7, 1.5, size=P_A + P_B) / np.linalg.norm(x, axis=1))[:, None]
    y = np.sin(2.0 * x[:P_A, :1]) + 0.3 * rng.normal(size=(P_A, M))
    return x[:P_A], y, x[P_A:]


def build() -> dict[str, np.ndarray]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jaxlib
    import neural_tangents as nt
    from neural_tangents import stax

    x_train, y_train, x_test = make_data()
    x_all = np.vstack([x_train, x_test])
    out: dict[str, list] = {k: [] for k in ("K", "Theta", "mean_nngp", "cov_nngp", "mean_ntk", "cov_ntk",
                                            "mean_nngp_inf", "cov_nngp_inf", "mean_ntk_inf", "cov_ntk_inf")}
    for _, layer, _, C_b, C_W, depth in CASES:
        w, b = math.sqrt(C_W), math.sqrt(C_b)
        layers = []
        for _ in range(depth - 1):
            layers += [stax.Dense(512, W_std=w, b_std=b, parameterization="ntk"),
                       eval(layer, {"stax": stax})]  # noqa: S307 - trusted table above
        layers.append(stax.Dense(1, W_std=w, b_std=b, parameterization="ntk"))
        _, _, kernel_fn = stax.serial(*layers)
        kk = kernel_fn(jnp.asarray(x_all), None, ("nngp", "ntk"))
        out["K"].append(np.asarray(kk.nngp))
        out["Theta"].append(np.asarray(kk.ntk))
        per = {k: [] for k in out if k not in ("K", "Theta")}
        for rho in DIAG_REG:
            predict = nt.predict.gradient_descent_mse_ensemble(
                kernel_fn, jnp.asarray(x_train), jnp.asarray(y_train), learning_rate=LR, diag_reg=rho,
                diag_reg_absolute_scale=True)
            for get in ("nngp", "ntk"):
                g = predict(t=jnp.asarray(T_NT), x_test=jnp.asarray(x_test), get=get, compute_cov=True)
                per[f"mean_{get}"].append(np.asarray(g.mean))
                per[f"cov_{get}"].append(np.asarray(g.covariance))
                g = predict(t=None, x_test=jnp.asarray(x_test), get=get, compute_cov=True)
                per[f"mean_{get}_inf"].append(np.asarray(g.mean))
                per[f"cov_{get}_inf"].append(np.asarray(g.covariance))
        for k, v in per.items():
            out[k].append(np.stack(v))
    res = {k: np.stack(v).astype(np.float64) for k, v in out.items()}
    res.update(
        x_train=x_train, y_train=y_train, x_test=x_test, t_nt=np.asarray(T_NT), learning_rate=np.float64(LR),
        diag_reg=np.asarray(DIAG_REG), case_name=np.array([c[0] for c in CASES]),
        case_nnft=np.array([c[2] for c in CASES]), case_C_b=np.array([c[3] for c in CASES]),
        case_C_W=np.array([c[4] for c in CASES]), case_depth=np.array([c[5] for c in CASES]),
        meta_neural_tangents=np.array(nt.__version__), meta_jax=np.array(jax.__version__),
        meta_jaxlib=np.array(jaxlib.__version__), meta_numpy=np.array(np.__version__), meta_seed=np.int64(SEED))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parents[1] / "tests" / "data" / "nt_predict_reference.npz")
    args = ap.parse_args()
    res = build()
    np.savez_compressed(args.out, **res)
    print(f"wrote {args.out}: {len(CASES)} cases × {len(DIAG_REG)} diag_reg × {len(T_NT)} times")


if __name__ == "__main__":
    main()
