"""The `nnft` command line: kernels (in memory and streamed to disk), recursion, activations, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import nnft
from nnft.cli import default_inputs, main


def test_kernels_default_inputs_prints_both_kernels(capsys):
    """`nnft kernels` with no inputs uses the built-in set and prints K and Θ."""
    assert main(["kernels", "--activation", "relu", "--depth", "5", "--C_W", "2"]) == 0
    out = capsys.readouterr().out
    assert "K^(L) =" in out and "Theta^(L) =" in out and "built-in default set" in out


def test_kernels_inputs_and_outputs_match_the_api(tmp_path):
    """--inputs x.npy --out K.npy writes K and K_ntk.npy equal to net.nngp / net.ntk."""
    x = np.random.default_rng(3).standard_normal((7, 4))
    np.save(tmp_path / "x.npy", x)
    rc = main(["kernels", "-a", "erf", "-L", "3", "--C_b", "0.1", "--C_W", "1.5", "--inputs", str(tmp_path / "x.npy"),
               "--out", str(tmp_path / "K.npy")])
    assert rc == 0
    net = nnft.MLP("erf", depth=3, C_b=0.1, C_W=1.5)
    np.testing.assert_allclose(np.load(tmp_path / "K.npy"), net.nngp(x), rtol=1e-14)
    np.testing.assert_allclose(np.load(tmp_path / "K_ntk.npy"), net.ntk(x), rtol=1e-14)


@pytest.mark.parametrize("suffix", [".npy", ".zarr"])
def test_kernels_streamed_to_disk_with_chunks(tmp_path, suffix):
    """--chunks computes block by block with dask and streams into a .npy memmap or a zarr store."""
    x = np.random.default_rng(4).standard_normal((50, 3))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / f"K{suffix}"
    rc = main(["kernels", "-a", "relu", "-L", "4", "--C_W", "2", "--inputs", str(tmp_path / "x.npy"), "--chunks", "16",
               "--out", str(out), "--no-ntk"])
    assert rc == 0
    if suffix == ".npy":
        K = np.load(out)
    else:
        import zarr

        K = np.asarray(zarr.open_array(str(out), mode="r"))
    np.testing.assert_allclose(K, nnft.MLP("relu", depth=4, C_W=2.0).nngp(x), rtol=1e-14)


def test_per_layer_parameters_on_the_command_line(tmp_path, capsys):
    """--C_W takes a comma list, one value per layer."""
    assert main(["kernels", "-a", "tanh", "-L", "3", "--C_W", "1.0,1.5,2.0", "--no-ntk"]) == 0
    x = default_inputs()
    K = nnft.MLP("tanh", depth=3, C_W=[1.0, 1.5, 2.0]).nngp(x)
    assert f"{K[0, 1]:.6f}" in capsys.readouterr().out


def test_recursion_and_activations_commands(capsys):
    """`nnft recursion` prints LaTeX; `nnft activations` lists the registry."""
    assert main(["recursion", "--activation", "erf", "--map", "ntk"]) == 0
    assert r"\arcsin" in capsys.readouterr().out
    assert main(["activations"]) == 0
    assert "leaky_relu" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["kernels", "-a", "rleu"], "did you mean"),
        (["kernels", "-a", "relu", "--C_W", "-1"], "C_W must be >= 0"),
        (["kernels", "-a", "relu", "--depth", "0"], "depth must be >= 1"),
    ],
)
def test_errors_exit_2_with_a_message(argv, message, capsys):
    """Bad arguments exit with status 2 and a one-line message naming the problem."""
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_input_file_and_chunks_without_out(tmp_path, capsys):
    """A missing --inputs file and --chunks without --out are refused (exit 2, one-line message)."""
    assert main(["kernels", "--inputs", str(tmp_path / "nope.npy")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["kernels", "--chunks", "4"]) == 2
    assert "--out" in capsys.readouterr().err


def test_console_script_runs():
    """The installed `nnft` entry point runs the main job (as the README says)."""
    proc = subprocess.run([sys.executable, "-m", "nnft.cli", "kernels", "--activation", "relu", "--depth", "5",
                           "--C_W", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done in" in proc.stdout


def test_chunked_nngp_and_ntk_share_one_pass(tmp_path, monkeypatch):
    """--chunks with the NTK stores K and Θ from one computation: each upper-triangle block's tile runs once."""
    import nnft.numeric.kernels as km

    calls = []
    tile = km._Plan.tile
    monkeypatch.setattr(km._Plan, "tile", lambda self, *a, **k: calls.append(1) or tile(self, *a, **k))
    x = np.random.default_rng(4).standard_normal((50, 3))
    np.save(tmp_path / "x.npy", x)
    assert main(["kernels", "-a", "erf", "-L", "3", "--inputs", str(tmp_path / "x.npy"), "--chunks", "16",
                 "--out", str(tmp_path / "K.npy")]) == 0
    assert len(calls) == 4 * 5 // 2  # 4 × 4 blocks, 10 with j >= i
    net = nnft.MLP("erf", depth=3)
    np.testing.assert_allclose(np.load(tmp_path / "K.npy"), net.nngp(x), rtol=1e-14)
    np.testing.assert_allclose(np.load(tmp_path / "K_ntk.npy"), net.ntk(x), rtol=1e-14)
