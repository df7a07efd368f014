"""``abscopal sensitivity`` end to end on a tiny study: the reference run is the study's own cells, results do not
depend on the chunking or on Dask, the outputs follow the study's folder rules, the CLI refuses bad input before any
work, and the study report shows the verdicts of a sensitivity output in its folder."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import xarray as xr

from abscopal.cli import main
from abscopal.endpoints import DAYS_PER_MONTH
from abscopal.errors import EXIT_CODES, AbscopalError
from abscopal.fitted import Fit
from abscopal.fitted.shipped import default_fit_path
from abscopal.io import OutputPathError
from abscopal.studies import parse_study, run_study
from abscopal.studies.robustness import read_robustness
from abscopal.studies.sensitivity import (
    CONTRASTS,
    OUTPUT_NAMES,
    SensitivitySpec,
    check_sensitivity_dir,
    parameter_ranges,
    run_sensitivity,
)

TOML = """
title = "tiny sensitivity study"
fit = "default"
[population]
mix = "pembro_rt"
n_patients = 4
seed = 3
[simulation]
t_end_day = 380
[axes]
timing = [-7, 21]
fractionation = ["none", "sbrt_24gy_3fx", "sbrt_50gy_4fx", "conv_45gy_15fx", "conv_60gy_30fx"]
"""


def tiny_design():
    import tomllib

    return parse_study(tomllib.loads(TOML), source="tiny.toml")


@pytest.fixture(scope="module")
def chosen(nsclc3_spec):
    """Two factors of the shipped fit's model (its first fitted value and a not-sourced parameter)."""
    fit = Fit.load(default_fit_path())
    if fit.provenance.get("model_hash") != nsclc3_spec.content_hash():
        pytest.skip("the shipped fit is not for the default 3-lesion model (no new kernel is compiled here)")
    factors, _ = parameter_ranges(nsclc3_spec, fit, fit.all_values(), SensitivitySpec())
    fitted = [f.name for f in factors if f.kind == "fitted"]
    assumed = [f.name for f in factors if f.kind == "not sourced"]
    return (fitted[0], assumed[0])


@pytest.fixture(scope="module")
def spec(chosen):
    return SensitivitySpec(method="morris", samples=2, seed=1, factors=chosen, chunk=3)


@pytest.fixture(scope="module")
def written(spec, tmp_path_factory):
    """The tiny analysis, written to a folder: (result, folder)."""
    out = tmp_path_factory.mktemp("sensitivity") / "sens"
    return run_sensitivity(tiny_design(), spec, out), out


@pytest.fixture(scope="module")
def result(written):
    return written[0]


def test_the_reference_run_is_the_studys_own_cells(result, spec):
    study = run_study(tiny_design())  # no parameter draws: draw 0 is the study's point values
    cell = study.isel(site=0, drug=0, draw=0)
    orr = cell.abscopal_orr.sel(timing="day -7")
    want = float(orr.sel(fractionation=list(spec.sbrt)).mean() - orr.sel(fractionation=list(spec.conventional)).mean())
    assert float(result.dataset.reference_abscopal_orr_difference) == pytest.approx(want, abs=1e-12)
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    for t in result.dataset.timing.values:
        sel = cell.sel(timing=str(t), fractionation="sbrt_24gy_3fx")
        km = KaplanMeierFitter().fit(sel.os_day.values, sel.os_event.values.astype(bool))
        want = restricted_mean_survival_time(km, t=12 * DAYS_PER_MONTH) / DAYS_PER_MONTH
        assert float(result.dataset.reference_rmst_os_month.sel(timing=t)) == pytest.approx(want, rel=1e-9)
    ds = result.dataset
    assert ds.sizes["run"] == spec.n_runs(2) == 6 and ds.sizes["factor"] == 2
    assert [c.contrast for c in result.conclusions] == list(CONTRASTS)
    unselected = [k for k, why in result.fixed.items() if why == "not selected (factors / --factors)"]
    assert len(unselected) > 10 and not set(unselected) & set(spec.factors)
    assert math.isclose(sum(result.timing_shares.values()), 1.0)


@pytest.mark.slow
def test_a_local_dask_cluster_gives_identical_results(result, spec):
    dask = run_sensitivity(tiny_design(), spec, workers=2)
    for name in result.dataset.data_vars:
        np.testing.assert_array_equal(dask.dataset[name].values, result.dataset[name].values, err_msg=name)


def test_outputs_are_switched_in_as_a_whole_and_never_written_over_a_foreign_folder(written, tmp_path, spec):
    from abscopal.studies.sensitivity import _write

    result, out = written
    for name in OUTPUT_NAMES:
        assert (out / name).is_symlink() and (out / name).is_file(), name
    manifest = json.loads((out / "sensitivity.json").read_text())
    assert manifest["format"] == "abscopal-sensitivity-v1" and manifest["outputs"][-1] == "sensitivity.json"
    assert [c["verdict"] for c in manifest["conclusions"]] == [c.verdict for c in result.conclusions]
    prov = manifest["provenance"]
    assert prov["environment"]["SALib"] and prov["model_hash"] and prov["spec"]["seed"] == 1
    rows = (out / "indices.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 and rows[0].startswith("contrast,factor,kind")
    with xr.open_dataset(out / "samples.nc", engine="h5netcdf") as ds:
        assert json.loads(ds.attrs["provenance"])["model_hash"] == prov["model_hash"]
        np.testing.assert_array_equal(ds.value.values, result.dataset.value.values)
    assert "## Verdicts" in (out / "report.md").read_text()
    with pytest.raises(AbscopalError, match="holds a completed sensitivity output"):
        run_sensitivity(tiny_design(), spec, out)  # refused before any run
    check_sensitivity_dir(out, force=True)
    first = os.readlink(out / "outputs")
    _write(result, out)  # what a forced rerun does at its end: a new folder switched in, the old one removed
    assert os.readlink(out / "outputs") != first and not (out / first).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_NAMES, "outputs", os.readlink(out / "outputs")])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"holds other files \(notes.txt\) and no sensitivity output"):
        check_sensitivity_dir(foreign, force=True)
    inside = out / "outputs" / "s.toml"
    inside.write_text(TOML)
    try:
        with pytest.raises(OutputPathError, match="is inside the sensitivity output folder"):
            check_sensitivity_dir(out, force=True, inputs=[inside])
    finally:
        inside.unlink()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--method", "lhs"], "method = 'lhs' (--method): unknown sensitivity method; give one of morris, sobol"),
        (["--samples", "1"], "samples = 1 (--samples): must be an integer >= 2; morris needs at least 2"),
        (["--method", "sobol", "--samples", "48"], "power of 2"),
        (["--patients", "0"], "--patients 0: give a number of virtual patients >= 1"),
        (["--workers", "0"], "--workers 0: give a number of worker processes >= 1"),
        (["--factors", "not_a_parameter"], "factors ['not_a_parameter'] (--factors): not varied in this study"),
    ],
)
def test_bad_command_lines_fail_before_any_work(tmp_path, capsys, args, match):
    study = tmp_path / "tiny.toml"
    study.write_text(TOML)
    out = tmp_path / "out"
    code = main(["sensitivity", str(study), "--out", str(out), "-q", *args])
    assert code == EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (out / "sensitivity.json").exists()


def test_a_missing_study_file_is_named(tmp_path, capsys):
    code = main(["sensitivity", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")])
    assert code == EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert "nope.toml" in err and "no such file" in err and "Traceback" not in err


def test_the_command_gives_the_librarys_results_and_the_study_report_shows_its_verdicts(
    tmp_path, capsys, chosen, result
):
    study = tmp_path / "tiny.toml"
    study.write_text(TOML)
    folder = tmp_path / "study"
    sens = folder / "sensitivity"
    code = main(
        [
            "sensitivity",
            str(study),
            "--out",
            str(sens),
            "--samples",
            "2",
            "--seed",
            "1",
            "--factors",
            ",".join(chosen),
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "sign holds" in text and "best timing (share of runs)" in text
    with xr.open_dataset(sens / "samples.nc", engine="h5netcdf") as ds:  # chunk 8 here, 3 in the library run
        for name in result.dataset.data_vars:
            np.testing.assert_array_equal(ds[name].values, result.dataset[name].values, err_msg=name)
    manifest = json.loads((sens / "sensitivity.json").read_text())
    assert main(["study", str(study), "--out", str(folder), "-q"]) == 0
    html = (folder / "report.html").read_text()
    assert "How robust are these conclusions" in html
    for c in manifest["conclusions"]:
        assert c["statement"] in html and c["verdict"] in html
    study_prov = json.loads((folder / "study.json").read_text())["provenance"]
    assert read_robustness(sens, study_prov)["note"] is None
    other = dict(study_prov, design=dict(study_prov["design"], t_end_day=390.0))
    assert "was made for another study" in read_robustness(sens, other)["note"]
    assert read_robustness(tmp_path, study_prov) is None
