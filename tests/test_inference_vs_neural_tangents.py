"""nnft.gradient_descent against neural-tangents' gradient_descent_mse_ensemble, on stored references.

``tests/data/nt_predict_reference.npz`` is written by ``bench/nt_predict_reference.py`` under the separate
neural-tangents 0.6.5 venv (the tests never import it): three networks (relu and erf at depth 3, a scaled
erf at depth 2), P_A = 7 training and P_B = 4 test inputs, m = 2 outputs, ``diag_reg`` ∈ {0, 1e-2} with
``diag_reg_absolute_scale=True``, neural-tangents' times t_nt ∈ {0, 0.5, 3, 20, 200, ∞} and its Cholesky
path ``t=None``, for ``get="nngp"`` and ``get="ntk"``, and its own kernels K and Θ.

Two checks, both to 1e-10:

1. the closed form (:func:`nnft.numeric.gradient_flow.ensemble`) fed neural-tangents' own kernels, which
   isolates the prediction formula, its ridge convention and the time map ``t = t_nt / (P_A m)``;
2. end to end: ``nnft.gradient_descent`` with nnft's kernels of the same network.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import nnft
from nnft.numeric.gradient_flow import ensemble

DATA = Path(__file__).resolve().parent / "data" / "nt_predict_reference.npz"
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "nt_predict_reference.py"
NT_PYTHON = Path(os.environ.get("NNFT_NT_PYTHON", "/work/ntvenv/bin/python"))
with np.load(DATA, allow_pickle=False) as _f:
    REF = {k: _f[k] for k in _f.files}
P_A, M = REF["y_train"].shape
T_NNFT = REF["t_nt"] / (P_A * M)
LR = float(REF["learning_rate"])
CASES = [(c, r) for c in range(len(REF["case_name"])) for r in range(len(REF["diag_reg"]))]
IDS = [f"{REF['case_name'][c]}-rho{REF['diag_reg'][r]:g}" for c, r in CASES]
TOL = 1e-10


def _scale(a: np.ndarray) -> float:
    return max(float(np.abs(a).max()), 1.0)


@pytest.mark.parametrize("c,r", CASES, ids=IDS)
@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_closed_form_on_neural_tangents_kernels(c, r, get):
    K, Th = REF["K"][c], REF["Theta"][c]
    rho = float(REF["diag_reg"][r])
    a, b = slice(0, P_A), slice(P_A, None)
    train = K if get == "nngp" else Th
    K_AA = K[a, a] + rho * np.eye(P_A) if get == "nngp" else K[a, a]
    mean, cov = ensemble(train[a, a], train[b, a], K_AA, K[b, a], K[b, b], REF["y_train"], eta=LR,
                         times=T_NNFT, diag_reg=rho)
    ref_m, ref_c = REF[f"mean_{get}"][c, r], REF[f"cov_{get}"][c, r]
    np.testing.assert_allclose(mean, ref_m, rtol=0, atol=TOL * _scale(ref_m))
    np.testing.assert_allclose(cov, ref_c, rtol=0, atol=TOL * _scale(ref_c))
    # neural-tangents' t=None (Cholesky) path agrees with its t = ∞ eigenbasis path, and so with ours
    np.testing.assert_allclose(mean[-1], REF[f"mean_{get}_inf"][c, r], rtol=0, atol=TOL * _scale(ref_m))
    np.testing.assert_allclose(cov[-1], REF[f"cov_{get}_inf"][c, r], rtol=0, atol=TOL * _scale(ref_c))


@pytest.mark.parametrize("c,r", CASES, ids=IDS)
@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_gradient_descent_end_to_end(c, r, get):
    net = nnft.MLP(str(REF["case_nnft"][c]), depth=int(REF["case_depth"][c]), width=512,
                   C_W=float(REF["case_C_W"][c]), C_b=float(REF["case_C_b"][c]), n_out=M)
    pred = nnft.gradient_descent(net, REF["x_train"], REF["y_train"], REF["x_test"], t=T_NNFT, learning_rate=LR,
                                 diag_reg=float(REF["diag_reg"][r]), kernel=get)
    ref_m, ref_c = REF[f"mean_{get}"][c, r], REF[f"cov_{get}"][c, r]
    np.testing.assert_allclose(pred.mean, ref_m, rtol=0, atol=TOL * _scale(ref_m))
    for i in range(M):
        np.testing.assert_allclose(pred.cov[:, i, :, i, :], ref_c, rtol=0, atol=TOL * _scale(ref_c))
    np.testing.assert_array_equal(pred.cov[:, 0, :, 1, :], 0.0)


def test_time_map_is_not_trivially_satisfied():
    """The references move with t (so the time map is tested) and the ridge changes them."""
    m = REF["mean_ntk"]
    assert np.abs(m[:, :, 2] - m[:, :, 3]).max() > 1e-2
    assert np.abs(REF["cov_ntk"][:, 0] - REF["cov_ntk"][:, 1]).max() > 1e-3


@pytest.mark.slow
@pytest.mark.skipif(not NT_PYTHON.exists(), reason=f"no neural-tangents venv at {NT_PYTHON}")
def test_stored_reference_is_fresh(tmp_path):
    """Rerunning bench/nt_predict_reference.py with the live neural-tangents venv reproduces the stored file."""
    out = tmp_path / "live.npz"
    proc = subprocess.run([str(NT_PYTHON), str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(out, allow_pickle=False) as f:
        live = {k: f[k] for k in f.files}
    assert set(live) == set(REF)
    for k, v in REF.items():
        if v.dtype.kind == "f":
            np.testing.assert_allclose(live[k], v, rtol=1e-13, atol=1e-15, err_msg=k)
        else:
            assert np.array_equal(live[k], v), k
