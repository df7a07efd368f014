"""The study report (:mod:`abscopal.studies.report`): figures, report.html, draws and degenerate grids."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from abscopal.studies import parse_study, run_study, summary_table
from abscopal.studies.report import FIGURES, study_report_html, write_study_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TITLE = "Report <test> & timing"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    """A 2 x 2 study (timing x fractionation) of 10 virtual patients with model defaults."""
    design = parse_study(
        {
            "title": TITLE,
            "fit": "none",
            "population": {"mix": "pembro_rt", "n_patients": 10, "seed": 3},
            "axes": {
                "timing": [0, "at_progression"],
                "fractionation": ["none", "sbrt_24gy_3fx"],
                "site": ["lung_primary"],
            },
        }
    )
    return run_study(design, tmp_path_factory.mktemp("study") / "out", report=False)


def _with_fake_draws(ds: xr.Dataset, n: int = 4, seed: int = 0) -> xr.Dataset:
    """``ds`` with ``n`` perturbed copies of draw 0 appended along ``draw``."""
    rng = np.random.default_rng(seed)
    base = ds.isel(draw=[0])
    copies = [base]
    for k in range(1, n + 1):
        c = base.copy(deep=True)
        for name in ("orr", "dcr", "pfs_12mo", "os_12mo", "os_24mo", "pneumonitis_risk", "pfs_survival", "os_survival"):
            v = c[name].values
            c[name].values = np.clip(v + rng.normal(0.0, 0.03, v.shape), 0.0, 1.0)
        for name in ("median_pfs_month", "median_os_month", "hr_pfs", "hr_os"):
            c[name].values = c[name].values * (1.0 + rng.normal(0.0, 0.1, c[name].shape))
        copies.append(c.assign_coords(draw=[k]))
    out = xr.concat(copies, dim="draw", data_vars="all", coords="minimal", compat="override")
    out.attrs = dict(ds.attrs)
    return out


def _check_outputs(paths: list[Path], out: Path) -> str:
    names = [p.name for p in paths]
    assert names == [f"{n}.png" for n in FIGURES] + ["report.html"]
    text = (out / "report.html").read_text(encoding="utf-8")
    for name in FIGURES:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}" in text, name
    return text


def test_report_files_and_html(study: xr.Dataset, tmp_path: Path) -> None:
    rows = summary_table(study)
    paths = write_study_report(study, rows, tmp_path)
    text = _check_outputs(paths, tmp_path)
    assert html.escape(TITLE) in text and TITLE not in text  # escaped
    for axis in ("timing", "fractionation", "site", "drug"):
        for label in study[axis].values:
            assert html.escape(str(label)) in text, label
    assert "uncalibrated" in text
    assert study.attrs["model_hash"] in text
    assert "What the model favours" in text and "Summary table" in text and "Sources" in text
    assert "[" not in text.split("Summary table")[1].split("Figures")[0]  # no draws: no intervals


def test_fake_draws_give_intervals(study: xr.Dataset, tmp_path: Path) -> None:
    ds = _with_fake_draws(study)
    (tmp_path / "report.html").write_text("old", encoding="utf-8")  # the report overwrites earlier outputs
    rows = summary_table(ds)
    assert rows[1]["os_12mo_lower"] is not None
    paths = write_study_report(ds, rows, tmp_path)
    text = _check_outputs(paths, tmp_path)
    table = text.split("Summary table")[1].split("<h2>Figures")[0]
    assert table.count('<span class="iv">[') >= len(rows)
    assert "95% interval" in text


def test_degenerate_one_cell(study: xr.Dataset, tmp_path: Path) -> None:
    ds = study.isel(timing=[0], fractionation=[1]).copy(deep=True)  # 1 x 1, RT only: no no-RT reference
    ds["orr"].values[:] = np.nan
    ds["median_pfs_month"].values[:] = np.inf
    ds["pneumonitis_risk"].values[:] = np.nan
    rows = summary_table(ds)
    text = _check_outputs(write_study_report(ds, rows, tmp_path), tmp_path)
    assert "NR" in text
    assert "The study has no 'no RT' fractionation" in html.unescape(text)


def test_html_without_images_and_fit(study: xr.Dataset) -> None:
    import json

    ds = study.copy()
    prov = json.loads(ds.attrs["provenance"])
    prov.update(
        fit="fits/example.json", fit_hash="abc123", fit_values={"k_growth": 0.01}, fit_targets={"PEMBRO-RT": "deadbeef"}
    )
    ds.attrs["provenance"] = json.dumps(prov)
    text = study_report_html(ds, summary_table(ds), {})
    assert "fits/example.json" in text and "abc123" in text and "PEMBRO-RT" in text and "k_growth" in text
    assert "uncalibrated" not in text.split("Which calibration")[1].split("What the model favours")[0]
    assert "data:image/png" not in text


def test_text_from_the_provenance_is_escaped(study: xr.Dataset) -> None:
    """Every text of the dataset is escaped, the assessment settings too (they were inserted as raw JSON)."""
    import json

    ds = study.copy()
    prov = json.loads(ds.attrs["provenance"])
    script = "<script>alert(1)</script>"
    design = dict(prov.get("design") or {})
    design.update(assessment={"criteria": script}, description=script, mix=script)
    prov.update(
        design=design, fit="fit.json", fit_values={script: 1.0}, fit_targets={script: script}, mix_source=script
    )
    prov["sources"] = {script: script}
    ds.attrs["provenance"] = json.dumps(prov)
    ds.attrs["title"] = script
    text = study_report_html(ds, summary_table(ds), {})
    assert "<script" not in text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "Assessment settings of this study: {&#34;criteria&#34;: &#34;" + escaped in text
    assert text.count(escaped) >= 9  # title twice, description, mix, assessment, fit value, trial and hash, source
