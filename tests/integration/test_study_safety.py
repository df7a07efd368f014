"""A study never trusts a stale or foreign cell, never writes into a folder that is not its own, checks its outputs
before any work and switches its outputs as a whole."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest

from abscopal.errors import AbscopalError, AbscopalWarning
from abscopal.io import OutputPathError
from abscopal.studies import parse_study, run_study

RUN = sys.modules["abscopal.studies.run"]
BASE = {
    "title": "safety study",
    "fit": "none",
    "population": {"mix": "pembro_rt", "n_patients": 6, "seed": 3},
    "simulation": {"t_end_day": 300},
}


def design(seed=3, **axes):
    return parse_study(
        BASE
        | {"population": BASE["population"] | {"seed": seed}}
        | {"axes": {"timing": [0], "fractionation": ["none", "sbrt_24gy_3fx"]} | axes}
    )


@pytest.fixture(scope="module")
def clean():
    """The study run without any folder (nothing cached)."""
    return run_study(design())


@pytest.fixture
def finished(tmp_path):
    """A finished two-cell study in tmp_path/study (no report) and its cell files."""
    out = tmp_path / "study"
    run_study(design(), out, report=False)
    return out, sorted((out / "cells").glob("*.npz"))


def assert_same(a, b):
    for name in b.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_a_cell_copied_over_another_is_recomputed_with_a_warning(finished, clean):
    out, (first, second) = finished
    shutil.copyfile(first, second)
    with pytest.warns(AbscopalWarning, match=rf"{second.name}.*copied over another.*recomputing"):
        ds = run_study(design(), out, report=False, force=True)
    assert ds.attrs["cells_computed"] == 1 and ds.attrs["cells_cached"] == 1
    assert_same(ds, clean)
    again = run_study(design(), out, report=False, force=True)  # the rewritten cell is trusted again
    assert again.attrs["cells_computed"] == 0
    assert_same(again, clean)


def _edit_cell(path, factor):
    """Rewrite a cell with one array changed but its stored key and digest kept (an edited or bit-rotted file)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["vars/orr"] = arrays["vars/orr"] * factor + 0.5
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("truncate", "unreadable"),
        ("edit", "content does not match its stored sha256"),
        ("legacy", "no stored key or digest"),
        ("empty", "unreadable"),
    ],
)
def test_a_damaged_cell_is_recomputed_with_a_warning_naming_the_file(finished, clean, damage, match):
    out, (first, _) = finished
    if damage == "truncate":
        first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    elif damage == "edit":
        _edit_cell(first, 2.0)
    elif damage == "empty":
        first.write_bytes(b"")
    else:  # the format before cells stored their key: arrays and header only
        with np.load(first, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k not in ("__key__", "__sha256__")}
        with open(first, "wb") as fh:
            np.savez(fh, **arrays)
    with pytest.warns(AbscopalWarning, match=rf"study cell '.*{first.name}': {match}"):
        ds = run_study(design(), out, report=False, force=True)
    assert ds.attrs["cells_computed"] == 1
    assert_same(ds, clean)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_cell_never_runs_code(finished, tmp_path):
    out, (first, _) = finished
    marker = tmp_path / "ran"
    with open(first, "wb") as fh:
        np.savez(fh, __meta__=np.array([_Payload(str(marker))], dtype=object))
    with pytest.warns(AbscopalWarning, match=first.name):
        ds = run_study(design(), out, report=False, force=True)
    assert ds.attrs["cells_computed"] == 1 and not marker.exists()


def test_a_folder_that_is_not_a_study_is_refused_even_with_force(tmp_path, monkeypatch):
    monkeypatch.setattr(RUN, "prepare_study", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "notes.txt").write_text("mine\n")
    for force in (False, True):
        with pytest.raises(OutputPathError, match=r"holds other files \(notes.txt\) and no study"):
            run_study(design(), tmp_path, force=force)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(OutputPathError, match="exists and is not a folder"):
        run_study(design(), tmp_path / "notes.txt")


@pytest.mark.parametrize("blocker", ["parent_is_a_file", "report_is_a_folder"])
def test_unwritable_outputs_fail_before_any_cell_is_computed(tmp_path, monkeypatch, blocker):
    monkeypatch.setattr(RUN, "run_cell", lambda task: pytest.fail("a cell was computed"))
    if blocker == "parent_is_a_file":
        (tmp_path / "file").write_text("x")
        out, match = tmp_path / "file" / "study", "is not a folder"
    else:
        out, match = tmp_path / "study", "is not a regular file"
        (out / "cells").mkdir(parents=True)  # an interrupted study
        (out / "report.html").mkdir()
    with pytest.raises(OutputPathError, match=match):
        run_study(design(), out)


def _snapshot(out):
    """The bytes of every output reachable at OUT/<name> (data, table, figures, report, manifest)."""
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("interruption", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_output_write_leaves_the_old_complete_study(tmp_path, monkeypatch, interruption):
    out = tmp_path / "study"
    run_study(design(), out)
    before = _snapshot(out)
    assert (out / "report.html").is_symlink() and os.readlink(out / "report.html") == "outputs/report.html"

    def fail(ds, rows, out_dir, robustness=None):  # endpoints.nc and summary.csv of the new study are written by then
        assert (out_dir / "endpoints.nc").is_file() and (out_dir / "summary.csv").is_file()
        raise interruption

    monkeypatch.setattr("abscopal.studies.report.write_study_report", fail)
    with pytest.raises(type(interruption)):
        run_study(design(seed=4), out, force=True)  # new patients: every output would change
    assert _snapshot(out) == before
    assert json.loads((out / "study.json").read_text())["provenance"]["seed"] == 3
    assert [p.name for p in out.glob(".outputs-*")] == [os.readlink(out / "outputs")]  # no half-written folder
    monkeypatch.undo()
    run_study(design(seed=4), out, force=True)
    after = _snapshot(out)
    assert all(after[k] != before[k] for k in ("endpoints.nc", "summary.csv", "report.html", "study.json"))
    assert len(list(out.glob(".outputs-*"))) == 1


def test_a_rerun_without_report_drops_the_old_report_links(tmp_path):
    out = tmp_path / "study"
    run_study(design(), out)
    assert (out / "report.html").is_file()
    run_study(design(), out, force=True, report=False)
    assert not os.path.lexists(out / "report.html") and not list(out.glob("*.png"))
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["outputs"] == ["endpoints.nc", "summary.csv"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "cells",
        "endpoints.nc",
        "outputs",
        "study.json",
        "summary.csv",
    ]


def test_a_completed_study_needs_force(finished):
    out, _ = finished
    with pytest.raises(AbscopalError, match="holds a completed study"):
        run_study(design(), out, report=False)
