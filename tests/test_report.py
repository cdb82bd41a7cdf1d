"""``nnft report``: files, formats, provenance, atomic writes, bad input, and the HTML as a browser renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from nnft.cli import main
from nnft.errors import InputError
from nnft.report import ReportConfig, build_report
from nnft.report import sections as report_sections
from nnft.report.mathml import to_mathml

SMALL = dict(activation="relu", depth=3, C_W=2.0, samples=300, widths=(8, 16, 32))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "nnft-report"
    return build_report(ReportConfig().updated(**SMALL), out, progress=False)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1


def test_report_writes_every_format(report):
    p = report.path
    for name in ("report.html", "report.md", "formulas.tex", "results.json"):
        assert (p / name).stat().st_size > 0, name
    for fig in ("kernels_depth", "montecarlo_inverse_width", "eft_diagrams", "eft_flow"):
        assert (p / "figures" / f"{fig}.png").stat().st_size > 1000
        assert (p / "figures" / f"{fig}.svg").stat().st_size > 1000
    assert list((p / "modules").glob("*.py")), "the generated numeric module is part of the report"
    assert not list(p.parent.glob(".nnft-report.partial-*")), "no temporary directory left behind"


def test_html_is_self_contained_with_mathml_and_figures(report):
    text = (report.path / "report.html").read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(text)
    assert tags.tags.get("math", 0) >= 3 and tags.tags.get("mtable", 0) >= 1
    n_fig = len(list((report.path / "figures").glob("*.svg")))
    assert n_fig >= 3 and tags.tags.get("svg", 0) == n_fig, "every figure is embedded once as SVG"
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", text), "nothing may be fetched from the network"
    assert "<link" not in text and "<script" not in text
    assert "<mi>&</mi>" not in text, "alignment markers must not leak into the formulas"


def test_results_json_has_provenance_and_numbers(report):
    d = json.loads((report.path / "results.json").read_text(encoding="utf-8"))
    assert d["kind"] == "nnft-report" and d["seed"] == 0
    assert set(d["versions"]) >= {"nnft", "sympy", "numpy"}
    K = np.array(d["sections"]["kernels"]["K"])
    x = np.array(d["sections"]["network"]["inputs"])
    # ReLU at C_W = 2, C_b = 0 keeps the diagonal: K_αα = 2|x_α|²/n_0 at every layer (independent check)
    np.testing.assert_allclose(np.diag(K), 2 * np.sum(x * x, axis=1) / x.shape[1], rtol=1e-13)
    mc = d["sections"]["montecarlo"]
    assert np.array(mc["G"]["value"]).shape == (3, *K.shape)
    assert mc["intercept_zscore"]["max_abs"] < 4.5
    assert {s["status"] for s in d["sections"].values()} <= {"done", "planned", "skipped"}
    fw = d["sections"]["finite_width"]["input1"]  # ReLU at criticality, equal widths: V/K² = 5(ℓ − 1), K1 = 0
    np.testing.assert_allclose(np.array(fw["V"]) / np.array(fw["K"]) ** 2, [0.0, 5.0, 10.0], rtol=1e-13, atol=1e-13)
    assert np.all(np.array(fw["K1"]) == 0) and d["sections"]["finite_width"]["status"] == "done"
    eft = d["sections"]["eft"]  # one input: n γ4 K² = V/K² = 5(ℓ − 1); output (m = 1): n γ2¹ K = (m + 2)V/(2K²)
    assert eft["status"] == "done" and eft["diagrams"] == {"two_point": 2, "four_point": 3}
    np.testing.assert_allclose(eft["flow"]["n_gamma4_K2_input1"], [0.0, 5.0, 10.0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eft["flow"]["n_gamma2_1_K_input1"][-1], 1.5 * 10.0, rtol=1e-12)


def test_montecarlo_check_flags_a_wrong_theory(tmp_path, monkeypatch):
    """The Monte Carlo verdict can fail: the true kernel passes, the same kernel 50 % off is flagged."""
    real = report_sections.kernels
    scale = {"value": 1.0}

    def scaled(ctx):
        s = real(ctx)
        ctx.shared["kernels"].K[-1] *= scale["value"]
        return s

    monkeypatch.setattr("nnft.report.build.SECTIONS", [report_sections.network, scaled, report_sections.montecarlo])
    cfg = ReportConfig().updated(activation="linear", depth=2, samples=2000, widths=(8, 16, 32))
    z = {}
    for factor in (1.0, 1.5):
        scale["value"] = factor
        r = build_report(cfg, tmp_path / f"r{factor}", progress=False)
        z[factor] = json.loads((r.path / "results.json").read_text())["sections"]["montecarlo"]["intercept_zscore"]
    assert z[1.0]["max_abs"] < 4 and z[1.5]["max_abs"] > 6


def test_latex_formulas_are_a_standalone_document(report):
    tex = (report.path / "formulas.tex").read_text()
    assert tex.startswith(r"\documentclass") and r"\end{document}" in tex and r"\begin{aligned}" in tex
    assert tex.count(r"\[") == tex.count(r"\]") >= 3
    bad = sorted({c for c in tex if not c.isascii()})
    assert not bad, f"formulas.tex must be ASCII for pdflatex without inputenc: {bad}"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex on this machine: compile check not run")
def test_latex_formulas_compile(report, tmp_path):
    shutil.copy(report.path / "formulas.tex", tmp_path)
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "formulas.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]


def test_mathml_aligned_blocks_become_tables():
    m = to_mathml(r"\begin{aligned} a &= b^{2} \\ c &= \frac{d}{e} \end{aligned}")
    assert m.count("<mtr>") == 2 and m.count("<mtd>") == 4 and "<mfrac>" in m and "<msup>" in m


def test_existing_report_is_replaced_other_directories_refused(report, tmp_path):
    cfg = ReportConfig().updated(**{**SMALL, "samples": 0})
    out = tmp_path / "again"
    build_report(cfg, out, progress=False)
    build_report(cfg, out, progress=False)  # an earlier report is replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="not an nnft report"):
        build_report(cfg, other, progress=False)
    assert (other / "thesis.tex").read_text() == "precious"


def test_unwritable_output_fails_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    monkeypatch.setattr("nnft.report.build.SECTIONS", [])  # would not even be reached
    with pytest.raises(InputError, match="writable --out|not a directory"):
        build_report(ReportConfig(), blocker / "sub", progress=False)


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch, capsys):
    def interrupt(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr("nnft.report.build.SECTIONS", [report_sections.network, interrupt])
    rc = main(["report", "--out", str(tmp_path / "r"), "--samples", "0"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("activation = 'tanh'\nlearning_rate = 3\n", "unknown report setting"),
        ("depth = 'deep'\n", "depth must be an integer"),
        ("depth = 3\n[network\n", "not valid TOML"),
        ("activation = \"__import__('os').system('touch PWNED') or z\"\n", "activation"),
    ],
)
def test_bad_configs_are_refused(tmp_path, capsys, monkeypatch, config, message):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "net.toml"
    cfg.write_text(config)
    rc = main(["report", "--config", str(cfg), "--out", str(tmp_path / "r"), "--samples", "0"])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "PWNED").exists()


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text("[network]\nactivation = 'erf'\ndepth = 2\nC_W = 1.5\n")
    c = ReportConfig.from_toml(cfg).updated(depth=3)
    assert (c.activation, c.depth, c.C_W) == ("erf", 3, 1.5)


def test_bad_input_files(tmp_path, capsys):
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((2, 2, 2)))
    assert main(["report", "--inputs", str(bad), "--out", str(tmp_path / "r"), "--samples", "0"]) == 2
    assert "shape (P, n_0)" in capsys.readouterr().err
    junk = tmp_path / "x.txt"
    junk.write_text("1 2\nthree 4\n")
    assert main(["report", "--inputs", str(junk), "--out", str(tmp_path / "r"), "--samples", "0"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _chromium() -> str | None:
    return next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium (Debian package 'chromium') on this machine")
def test_html_renders_in_headless_chromium(report, tmp_path):
    """Chromium lays out the formulas and figures with non-zero size, and a screenshot is taken."""
    page = tmp_path / "probe.html"
    probe = ("<script>window.addEventListener('load',()=>{const s=q=>[...document.querySelectorAll(q)]"
             ".map(e=>{const r=e.getBoundingClientRect();return [r.width,r.height]});"
             "document.body.setAttribute('data-sizes',JSON.stringify({math:s('math'),svg:s('figure svg')}))});"
             "</script></body>")
    page.write_text((report.path / "report.html").read_text().replace("</body>", probe))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([*cmd, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    raw = dom.split("data-sizes=\"", 1)[1].split("\"", 1)[0].replace("&quot;", "\"")
    sizes = json.loads(raw)
    assert len(sizes["math"]) >= 3 and all(w > 5 and h > 5 for w, h in sizes["math"])
    n_fig = len(list((report.path / "figures").glob("*.svg")))
    assert len(sizes["svg"]) == n_fig >= 3 and all(w > 100 and h > 100 for w, h in sizes["svg"])
    shot = tmp_path / "shot.png"
    subprocess.run([*cmd, f"--screenshot={shot}", "--window-size=1100,2400", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000


def test_report_command_is_in_the_cli():
    r = subprocess.run([sys.executable, "-c", "from nnft.cli import main; main(['report', '--help'])"],
                       capture_output=True, text=True, timeout=60)
    assert "--quick" in r.stdout and "--config" in r.stdout
    assert Path(report_sections.__file__).name == "sections.py"


@pytest.mark.slow
def test_readme_main_job_runs_as_written(tmp_path):
    """`nnft report` with no arguments (the README's first command) writes the default report in ./nnft-report."""
    exe = shutil.which("nnft")
    cmd = [exe, "report"] if exe else [sys.executable, "-m", "nnft.cli", "report"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = json.loads((tmp_path / "nnft-report" / "results.json").read_text())
    assert d["config"]["activation"] == "tanh" and d["sections"]["montecarlo"]["status"] == "done"
    assert d["sections"]["montecarlo"]["intercept_zscore"]["max_abs"] < 4.5
