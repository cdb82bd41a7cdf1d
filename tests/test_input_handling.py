"""Inputs, memory and files (issue 12, items 9 and 10): clear nnft errors before any work, never a traceback.

Memory refusals are tested with the NNFT_MEMORY_LIMIT override and small inputs: no test allocates a big
array, and the planner is replaced by a tripwire to show the refusal comes before any allocation.
"""

import json

import numpy as np
import pytest

import nnft
import nnft.numeric.kernels as kernels_mod
from nnft.cli import main
from nnft.cli_io import check_output, load_inputs
from nnft.errors import InputError, NetworkError, ResourceError
from nnft.network import validate_inputs
from nnft.numeric.memory import _parse_bytes, available_memory

GiB = 1 << 30


# ----------------------------------------------------------------------------- item 10: input values
@pytest.mark.parametrize(
    "bad, match",
    [
        ([[1, 2], [3]], r"ragged: row 0 has 2 entries but row 1 has 1 entry"),
        ([[1, 2], 3], r"ragged: row 0 has 2 entries but row 1 has a scalar"),
        ([[1, 2], [3, [4]]], "ragged"),
        ([[1, None]], r"None / non-numeric entry None at x\[0, 1\]"),
        (np.array([[1.0, None]], dtype=object), r"None / non-numeric entry None at x\[0, 1\]"),
        ([[1, "a"]], r"non-numeric entry 'a' at x\[0, 1\]"),
    ],
)
def test_ragged_and_missing_entries_are_named(bad, match):
    """Ragged lists used to raise numpy's ValueError; None was reported as NaN/inf."""
    with pytest.raises(NetworkError, match=match):
        validate_inputs(bad)
    with pytest.raises(NetworkError, match=match):
        nnft.MLP("relu", depth=2).nngp(bad)


def test_real_nan_is_still_reported_as_nan():
    with pytest.raises(NetworkError, match=r"NaN or inf \(first at x\[0, 1\]\)"):
        validate_inputs([[1.0, float("nan")]])
    assert validate_inputs([[1, 2.5], [True, 0]]).dtype == np.float64


# ----------------------------------------------------------------------------- item 9: memory before allocation
def test_memory_limit_parsing(monkeypatch):
    assert _parse_bytes("2G") == 2 * GiB and _parse_bytes("512M") == 512 << 20 and _parse_bytes("1.5GiB") == 3 << 29
    assert _parse_bytes("4096") == 4096 and _parse_bytes("8GB") == 8 * GiB
    assert _parse_bytes("none") is None and _parse_bytes("0") is None
    with pytest.raises(InputError, match="NNFT_MEMORY_LIMIT"):
        _parse_bytes("lots")
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "3G")
    assert available_memory() == 3 * GiB
    monkeypatch.delenv("NNFT_MEMORY_LIMIT")
    real = available_memory()
    assert real is None or real > 0


@pytest.fixture
def tripwire(monkeypatch):
    """Make building a kernel plan (the first step that allocates) fail loudly."""
    def boom(*args, **kwargs):
        raise AssertionError("the memory check must refuse before any plan or allocation")

    monkeypatch.setattr(kernels_mod, "_Plan", boom)


def test_nngp_too_big_names_chunks_before_allocating(monkeypatch, tripwire):
    """P = 60000 needs 26.8 GiB for K alone: refused with a ResourceError naming chunks= (was numpy's MemoryError)."""
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "16G")
    x = np.ones((60_000, 2))  # 1 MB of inputs; nothing P × P is allocated
    with pytest.raises(ResourceError, match=r"net\.nngp\(x\) at P = 60000 needs about 3\d\.\d GiB.*chunks="):
        nnft.MLP("relu", depth=3).nngp(x)
    with pytest.raises(MemoryError):  # still a MemoryError for callers that catch the built-in
        nnft.MLP("relu", depth=3).ntk(x)


def test_kernels_counts_k_and_theta_together(monkeypatch, tripwire):
    """At P = 40000 K and Θ are 11.9 GiB each: each alone fits 16 GiB, both do not — refused upfront.

    This is the 35k–53k window of issue 12 where kernels() allocated K and Θ one after the other and
    would have been killed while filling them.
    """
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "16G")
    x = np.ones((40_000, 2))
    net = nnft.MLP("relu", depth=3)
    with pytest.raises(ResourceError, match=r"layers='last'.*needs about 2\d\.\d GiB.*chunks=.*ntk=False"):
        net.kernels(x, layers="last")
    with pytest.raises(ResourceError, match=r'chunks=.*layers="last"'):
        net.kernels(x, layers="all")
    # K alone (11.9 GiB + its 1.5 GiB finiteness mask) passes the same check
    kernels_mod._check_request(net, x, kept=1, arrays=1, tile=None, what="K", fix="")


def test_small_requests_and_chunks_pass_the_check(monkeypatch):
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "64M")
    x = np.random.default_rng(0).standard_normal((5, 3))
    net = nnft.MLP("relu", depth=2)
    assert net.kernels(x).K.shape == (2, 5, 5)
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "1K")
    with pytest.raises(ResourceError):
        net.nngp(x)
    assert net.nngp(x, chunks=2).shape == (5, 5)  # lazy: not refused


def test_cli_reports_resource_error_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "1K")
    assert main(["kernels", "--depth", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnft: error:") and "chunks=" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- item 10: MLP.kernels(chunks=)
@pytest.mark.parametrize("layers", ["all", "last"])
@pytest.mark.parametrize("chunks", [1, 4, 7, 100])
def test_kernels_chunks_equals_in_memory(layers, chunks):
    """kernels(x, chunks=c) gives lazy K and Θ equal to the in-memory ones (duplicates across blocks too)."""
    dask = pytest.importorskip("dask")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((13, 4))
    x[7], x[9] = x[2], -x[3]
    net = nnft.MLP("erf", depth=3, C_b=0.1, C_W=1.7)
    ref = net.kernels(x, layers=layers)
    lazy = net.kernels(x, layers=layers, chunks=chunks)
    assert lazy.lazy and not ref.lazy and lazy.layers == ref.layers and "lazy" in repr(lazy)
    K, T = dask.compute(lazy.K, lazy.Theta)
    assert K.shape == ref.K.shape and T.shape == ref.Theta.shape
    np.testing.assert_allclose(K, ref.K, rtol=1e-13)
    np.testing.assert_allclose(T, ref.Theta, rtol=1e-13)
    assert np.array_equal(K, np.swapaxes(K, 1, 2)) and np.array_equal(T, np.swapaxes(T, 1, 2))
    assert np.array_equal(K[:, 7, 7], K[:, 2, 7]) and np.array_equal(T[:, 2, 2], T[:, 2, 7])  # duplicates exact
    # the same blocks as nngp/ntk(chunks=): bit-identical output layer
    assert np.array_equal(K[-1], net.nngp(x, chunks=chunks).compute())
    assert np.array_equal(T[-1], net.ntk(x, chunks=chunks).compute())


def test_kernels_chunks_without_ntk_and_bad_chunks():
    pytest.importorskip("dask")
    x = np.random.default_rng(0).standard_normal((6, 2))
    k = nnft.MLP("relu", depth=2).kernels(x, ntk=False, chunks=4)
    assert k.Theta is None and k.layer(2)[0].compute().shape == (6, 6)
    with pytest.raises(ValueError, match="chunks must be a positive integer"):
        nnft.MLP("relu", depth=2).kernels(x, chunks=0)


# ----------------------------------------------------------------------------- item 10: files and the CLI
def test_one_loader_for_every_format(tmp_path):
    x = np.random.default_rng(1).standard_normal((3, 2))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x, y=np.ones(2))
    np.savez(tmp_path / "one.npz", x)
    np.savetxt(tmp_path / "x.txt", x, header="comment")
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    np.savetxt(tmp_path / "x.tsv", x, delimiter="\t")
    for name in ("x.npy", "x.npz", "one.npz", "x.txt", "x.csv", "x.tsv"):
        np.testing.assert_allclose(load_inputs(str(tmp_path / name)), x, rtol=1e-15, err_msg=name)


@pytest.mark.parametrize(
    "name, write, match",
    [
        ("p.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickled"),
        ("c.npy", lambda p: np.save(p, np.ones((2, 2, 2))), r"--inputs .*c\.npy: inputs must have shape \(P, n_0\)"),
        ("t.txt", lambda p: p.write_text("1 2\n3 x\n"), "not a numeric table"),
        ("r.txt", lambda p: p.write_text("1 2\n3\n"), "not a numeric table"),
        ("e.txt", lambda p: p.write_text(""), "at least one sample"),
        ("m.npz", lambda p: np.savez(p, a=np.ones((1, 1)), b=np.ones((1, 1))), "name the inputs 'x'"),
        ("x.json", lambda p: p.write_text("[]"), "unsupported file type"),
        ("n.npy", lambda p: np.save(p, np.array([[1.0, np.nan]])), "NaN or inf"),
    ],
)
def test_unreadable_or_wrong_inputs_are_clear(tmp_path, name, write, match):
    path = tmp_path / name
    write(path)
    with pytest.raises(InputError, match=match):
        load_inputs(str(path))


def test_mc_accepts_text_inputs_like_kernels(tmp_path, capsys):
    """`nnft mc --inputs x.txt` failed with "pickled data"; now it reads the same file types as kernels."""
    x = np.random.default_rng(0).standard_normal((2, 3))
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.txt", x, fmt="%.17g")
    outs = []
    for name in ("x.npy", "x.txt"):
        out = tmp_path / (name + ".json")
        assert main(["mc", "--depth", "2", "--width", "4", "--samples", "200", "--statistics", "G",
                     "--inputs", str(tmp_path / name), "--out", str(out)]) == 0
        outs.append(json.loads(out.read_text())["layers"]["2"]["G"]["value"])
    assert outs[0] == outs[1]
    assert main(["kernels", "--depth", "2", "--inputs", str(tmp_path / "x.txt")]) == 0
    capsys.readouterr()


def test_out_into_missing_directory_is_refused_before_computing(tmp_path, monkeypatch, capsys):
    """--out into a missing directory computed everything then crashed with a traceback (kernels and mc)."""
    def boom(*args, **kwargs):
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(kernels_mod, "layer_kernels", boom)
    monkeypatch.setattr(kernels_mod, "output_kernel", boom)
    monkeypatch.setattr(nnft.montecarlo, "estimate", boom)
    missing = tmp_path / "no" / "such"
    for argv in (["kernels", "--out", str(missing / "K.npy")],
                 ["kernels", "--chunks", "4", "--out", str(missing / "K.zarr")],
                 ["kernels", "--out", str(tmp_path / "K.npy"), "--ntk-out", str(missing / "T.npy")],
                 ["mc", "--out", str(missing / "r.json")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "does not exist" in err and "mkdir -p" in err and "Traceback" not in err
    assert main(["kernels", "--out", str(tmp_path / "K.txt")]) == 2
    assert "must end in .npy or .zarr" in capsys.readouterr().err
    with pytest.raises(InputError, match="is a directory"):
        check_output(str(tmp_path))


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"nnft {nnft.__version__}"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["kernels", "--depth", "-3"], "depth must be >= 1"),
        (["kernels", "--C_b", "-0.5"], "C_b must be >= 0"),
        (["kernels", "--activation", "nosuch"], "nosuch"),
        (["kernels", "--activation", "relu(", "--no-ntk"], "relu("),
        (["kernels", "--chunks", "0", "--out", "K.npy"], "--chunks must be a positive"),
        (["mc", "--depth", "0"], "depth must be >= 1"),
        (["mc", "--C_W", "-1"], "C_W must be >= 0"),
        (["mc", "--activation", "nosuch"], "nosuch"),
        (["mc", "--groups", "1"], "groups must be >= 2"),
        (["mc", "--inputs", "missing.npy"], "no such file"),
        (["recursion", "--activation", "nosuch"], "nosuch"),
    ],
)
def test_cli_error_paths_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_argument_type_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["kernels", "--depth", "x"])
    assert exc.value.code == 2 and "invalid int value" in capsys.readouterr().err
