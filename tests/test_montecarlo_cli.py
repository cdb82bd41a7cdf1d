"""Tests of the ``nnft mc`` subcommand (nnft.mc_cli)."""

import argparse
import json

import numpy as np

from nnft.mc_cli import main, register, run


def test_mc_cli_writes_json(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((2, 3))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "r.json"
    rc = main(["mc", "--activation", "tanh", "--depth", "3", "--width", "8,6", "--samples", "2e3",
               "--inputs", str(tmp_path / "x.npy"), "--out", str(out), "--C_b", "0.1", "--C_W", "1.5"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["samples"] == 2000 and data["seed"] == 0
    G = np.array(data["layers"]["3"]["G"]["value"])
    assert G.shape == (2, 2) and np.all(np.diag(G) > 0)
    assert "four_point_same" in capsys.readouterr().out


def test_mc_cli_bad_input_exits_2_with_message(capsys):
    assert main(["mc", "--samples", "1"]) == 2
    assert "samples must be >= 2" in capsys.readouterr().err
    assert main(["mc", "--width", "0"]) == 2
    assert "width" in capsys.readouterr().err


def test_register_adds_mc_subcommand():
    parser = argparse.ArgumentParser(prog="nnft")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["mc", "--samples", "1e3", "--statistics", "G"])
    assert args.samples == 1000 and args.func is run


def test_mc_cli_overflow_exits_2_and_writes_nothing(tmp_path, capsys):
    """`nnft mc --activation 'exp(z**2)' --width 4` used to exit 0 printing n/a and JSON nulls."""
    out = tmp_path / "r.json"
    assert main(["mc", "--activation", "exp(z**2)", "--width", "4", "--samples", "200", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "overflow" in err and "layer" in err and "bounded activation" in err and "Traceback" not in err
    assert not out.exists()
