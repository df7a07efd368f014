"""Output safety (:mod:`abscopal.io`): what may be written, checked before any work, and atomic writes."""

from __future__ import annotations

import os
import stat

import pytest

from abscopal.io import OutputExistsError, OutputPathError, check_output_dir, check_outputs, write_atomic

DEVICE = next(d for d in ("/dev/null", "/dev/zero", "/dev/urandom") if stat.S_ISCHR(os.stat(d).st_mode))
"""A character device of this machine (a test run by someone else may have turned /dev/null into a file)."""


def test_a_new_file_in_a_new_folder_is_accepted_and_nothing_is_created(tmp_path):
    out = tmp_path / "new" / "deeper" / "r.nc"
    assert check_outputs({"--out": out, "--figure": None}) == {"--out": out}
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []  # the writability probe is removed


def test_an_existing_file_needs_force(tmp_path):
    out = tmp_path / "r.nc"
    out.write_text("old")
    with pytest.raises(OutputExistsError, match=r"--out .*r\.nc' exists; .*--force"):
        check_outputs({"--out": out})
    assert check_outputs({"--out": out}, force=True) == {"--out": out}


@pytest.mark.parametrize("target", ["device", "folder", "fifo", "link_to_device", "dangling_link"])
def test_non_regular_targets_are_refused_even_with_force(tmp_path, target):
    if target == "device":
        path = DEVICE
    else:
        path = tmp_path / target
        if target == "folder":
            path.mkdir()
        elif target == "fifo":
            os.mkfifo(path)
        elif target == "link_to_device":
            os.symlink(DEVICE, path)
        else:
            os.symlink(tmp_path / "nowhere", path)
    with pytest.raises(OutputPathError, match="--out"):
        check_outputs({"--out": path}, force=True)
    with pytest.raises(OutputPathError):
        write_atomic(path, lambda tmp: tmp.write_text("x"), force=True)
    assert stat.S_ISCHR(os.stat(DEVICE).st_mode)


def test_an_input_is_never_an_output_also_through_a_link(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text("title = 'x'\n")
    link = tmp_path / "link.toml"
    os.symlink(scenario, link)
    hard = tmp_path / "hard.toml"
    os.link(scenario, hard)
    for out in (scenario, link, hard, tmp_path / "." / "s.toml"):
        with pytest.raises(OutputPathError, match="is an input of this command"):
            check_outputs({"--out": out}, inputs=[scenario], force=True)
    assert scenario.read_text() == "title = 'x'\n"


def test_two_outputs_with_one_path_are_refused(tmp_path):
    with pytest.raises(OutputPathError, match=r"--endpoints-out .* and --out .* name the same file"):
        check_outputs({"--out": tmp_path / "x.nc", "--endpoints-out": tmp_path / "sub" / ".." / "x.nc"})


def test_figure_formats_are_checked(tmp_path):
    check_outputs({"--figure": tmp_path / "f.svg"}, figures=["--figure"])
    check_outputs({"--figure": tmp_path / "f"}, figures=["--figure"])  # no extension: PNG
    with pytest.raises(OutputPathError, match=r"unknown figure format 'xyz'; use one of .*png"):
        check_outputs({"--figure": tmp_path / "f.xyz"}, figures=["--figure"])
    check_outputs({"--out": tmp_path / "f.xyz"}, figures=["--figure"])  # not a figure: any extension


def test_a_folder_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="is not a folder"):
        check_outputs({"--out": blocker / "r.nc"})
    with pytest.raises(OutputPathError, match="is not a folder"):
        check_output_dir(blocker / "study")
    with pytest.raises(OutputPathError, match="exists and is not a folder"):
        check_output_dir(blocker)


def test_an_unwritable_folder_is_refused(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # as on a read-only mount, where os.access may say yes
    with pytest.raises(OutputPathError, match=r"cannot create a file in .*Read-only file system"):
        check_outputs({"--out": tmp_path / "r.nc"})


def test_write_atomic_keeps_the_old_file_when_the_writer_fails(tmp_path):
    out = tmp_path / "r.txt"
    out.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(out, fail, force=True)
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.txt"]
