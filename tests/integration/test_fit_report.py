"""Fit reports (``abscopal.calibrate.report``): HTML with embedded figures, Markdown with PNG files, no silent
overwrite, the ``fit-report`` command.

One least-squares fit of ``max_kill_per_day`` to synthetic PEMBRO-RT targets (40 virtual patients per arm, ~3 s), a
5-point profile and a 6-evaluation posterior (too short to mean anything; it exercises the plots) are shared.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import re
from pathlib import Path

import pytest
from markupsafe import escape

from abscopal.calibrate.fit import Calibration, calibrate
from abscopal.calibrate.objective import CalibrationProblem, default_parameters
from abscopal.calibrate.report import FIGURES, fit_report, report_paths
from abscopal.calibrate.uncertainty import posterior, profile_likelihood, with_uncertainty
from abscopal.cli.fit import add_fit_report_command
from abscopal.errors import AbscopalError
from abscopal.io import OutputExistsError
from abscopal.trials import load_targets

TARGETS = Path(__file__).resolve().parents[2] / "fits" / "targets" / "pembro_rt.toml"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synthetic(nsclc3, reachable_os_base) -> CalibrationProblem:
    """Synthetic PEMBRO-RT targets, the OS link's fields fixed so the OS medians are reached (tests/conftest.py)."""
    base = CalibrationProblem(
        targets=(load_targets(TARGETS),),
        model=nsclc3,
        n_patients_per_arm=40,
        seed=1,
        base_parameters=reachable_os_base,
    )
    return dataclasses.replace(base, targets=base.synthetic_targets({"max_kill_per_day": 0.06}))


@pytest.fixture(scope="module")
def plain(synthetic) -> Calibration:
    params = default_parameters(synthetic, names=("max_kill_per_day",))
    params["max_kill_per_day"].set(value=0.058)  # near the truth: a few evaluations
    return calibrate(synthetic, params)


@pytest.fixture(scope="module")
def full(synthetic, plain) -> Calibration:
    profiles = profile_likelihood(synthetic, plain, n_points=5, max_extend=1)
    post = posterior(synthetic, plain, n_walkers=2, n_steps=3, burn=0, seed=1)
    return with_uncertainty(plain, profiles=profiles, posterior=post)


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_html_report_is_one_file_with_hash_targets_figures_and_sources(full, tmp_path):
    written = fit_report(full, tmp_path / "fit.html")
    assert written == [tmp_path / "fit.html"] and sorted(p.name for p in tmp_path.iterdir()) == ["fit.html"]
    text = written[0].read_text(encoding="utf-8")
    prov = full.provenance
    assert prov["model_hash"] in text and prov["targets"]["pembro_rt"] in text
    for p in full.predictions:  # every target appears in the predicted-vs-observed table
        assert f"<td>{p['trial']}</td><td>{p['arm']}</td><td>{p['outcome']}</td>" in text
    images = _images(text)
    assert len(images) == 4 and all(img.startswith(PNG) for img in images)  # forest, residuals, profile, posterior
    assert "Theelen" in text and "doi:10.1001/jamaoncol.2019.1478" in text  # the target's citation
    for sentence in full.identifiability:
        assert str(escape(sentence)) in text
    assert "max_kill_per_day" in text and "95% profile" in text and "least_squares" in text


def test_html_report_escapes_every_text(plain, tmp_path):
    script = "<script>alert(1)</script>"
    cal = dataclasses.replace(
        plain,
        identifiability=[script],
        provenance={**plain.provenance, "model_name": script, "target_paths": {"pembro_rt": script}},
    )
    text = fit_report(cal, tmp_path / "fit.html")[0].read_text(encoding="utf-8")
    assert "<script" not in text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>Calibration report: {escaped}</title>" in text and f"<li>{escaped}</li>" in text
    assert text.count(escaped) >= 5  # title, heading, provenance table, target file, identifiability
    md = fit_report(cal, tmp_path / "fit.md")[0].read_text(encoding="utf-8")
    assert f"- {script}\n" in md  # Markdown shows the text as written


def test_report_refuses_to_overwrite_without_force(plain, tmp_path):
    path = tmp_path / "fit.html"
    path.write_text("old")
    with pytest.raises(OutputExistsError, match=r"fit\.html"):
        fit_report(plain, path)
    assert path.read_text() == "old"
    fit_report(plain, path, force=True)
    assert len(_images(path.read_text())) == 2  # no profiles or posterior: forest and residuals only
    with pytest.raises(AbscopalError, match=r"\.txt"):
        fit_report(plain, tmp_path / "fit.txt")


def test_markdown_report_writes_the_figures_next_to_it(full, tmp_path):
    written = fit_report(full, tmp_path / "fit.md")
    assert [p.name for p in written] == ["fit.md"] + [f"fit-{f}.png" for f in FIGURES]
    text = written[0].read_text(encoding="utf-8")
    for f in FIGURES:
        assert f"](fit-{f}.png)" in text and (tmp_path / f"fit-{f}.png").read_bytes().startswith(PNG)
    assert full.provenance["model_hash"] in text and "| pembro_rt | sbrt+pembro vs pembro | hr_os |" in text
    (tmp_path / "other-forest.png").write_text("x")
    with pytest.raises(OutputExistsError, match=r"other-forest\.png"):  # a figure file counts too
        fit_report(full, tmp_path / "other.md")
    assert not (tmp_path / "other.md").exists() and (tmp_path / "other-forest.png").read_text() == "x"
    assert report_paths(tmp_path / "new.html") == [tmp_path / "new.html"]


def test_fit_report_command_renders_a_saved_calibration(full, tmp_path, monkeypatch, capsys):
    fit_json = full.save(tmp_path / "fit.json")
    parser = argparse.ArgumentParser(prog="abscopal")
    add_fit_report_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fit-report", str(fit_json), "--out", str(tmp_path / "r.html")])
    assert args.func(args) == 0
    assert (tmp_path / "r.html").is_file() and "r.html" in capsys.readouterr().out
    monkeypatch.setattr(Calibration, "load", lambda *a: pytest.fail("loaded before checking --out"))
    with pytest.raises(OutputExistsError, match=r"r\.html"):
        args.func(args)
