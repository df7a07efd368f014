"""The abscopal command never clobbers, checks outputs before any work and ends with documented exit codes."""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
import sys

import pytest

import abscopal.simulate  # noqa: F401 - the module, patched through sys.modules
from abscopal import cli
from abscopal.cli import main
from abscopal.errors import EXIT_CODES, AbscopalError, SolverError

DEVICE = next(d for d in ("/dev/null", "/dev/zero", "/dev/urandom") if stat.S_ISCHR(os.stat(d).st_mode))
"""A character device of this machine (a test run by someone else may have turned /dev/null into a file)."""
SCENARIO = """
title = "test"
fit = "none"
[model]
name = "nsclc"
n_lesions = 3
[simulation]
t_end_day = 84
output_interval_day = 7
[population]
n_patients = 2
seed = 3
[[arm]]
name = "pembro"
drug = "pembrolizumab_200mg_q3w"
"""


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    return path


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if a command starts simulating."""

    def forbidden(*args, **kwargs):
        raise AssertionError("simulate() was called before the outputs were checked")

    monkeypatch.setattr(sys.modules["abscopal.simulate"], "simulate", forbidden)


def test_exit_codes_are_documented_in_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for outcome, code in EXIT_CODES.items():
        assert f"  {code:<4} " in text, outcome
    assert "interrupted (Ctrl-C)" in text and "numerical failure" in text


def test_a_usage_error_exits_with_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--no-such-option"])
    assert info.value.code == EXIT_CODES["usage"] == 2


@pytest.mark.parametrize(
    ("out", "extra", "match"),
    [
        ("SCENARIO", [], "is an input of this command"),
        (DEVICE, [], "not a regular file"),
        ("FIFO", [], "not a regular file"),
        ("x.nc", ["--endpoints-out", "x.nc"], "name the same file"),
        ("x.nc", ["--figure", "f.xyz"], "unknown figure format 'xyz'"),
        ("x.nc", ["--endpoints-figure", "DIR"], "is a folder"),
    ],
)
def test_simulate_refuses_bad_outputs_before_any_work_even_with_force(
    scenario_file, tmp_path, capsys, no_simulation, out, extra, match
):
    (tmp_path / "DIR").mkdir()
    os.mkfifo(tmp_path / "FIFO")

    def where(p):
        return str(scenario_file) if p == "SCENARIO" else p if p.startswith("/") else str(tmp_path / p)

    args = [
        "simulate",
        str(scenario_file),
        "--out",
        where(out),
        "--force",
        *[a if a.startswith("--") else where(a) for a in extra],
    ]
    assert main(args) == EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert scenario_file.read_text() == SCENARIO
    assert not (tmp_path / "x.nc").exists()


def test_endpoints_refuses_to_write_over_its_input(tmp_path, capsys):
    result = tmp_path / "r.nc"
    result.write_bytes(b"\x89HDF\r\n\x1a\nnot really")
    assert main(["endpoints", str(result), "--out", str(result), "--force"]) == EXIT_CODES["input"]
    assert "is an input of this command" in capsys.readouterr().err
    assert result.read_bytes() == b"\x89HDF\r\n\x1a\nnot really"


@pytest.mark.parametrize("command", [["endpoints"], ["cite", "--result"]])
@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        ("folder", "is not a file"),
        (b"title = 'x'\n", "is not a netCDF-4 file"),
        (b"\x89HDF\r\n\x1a\ntruncated", "cannot be read as netCDF"),
    ],
)
def test_missing_or_non_netcdf_results_are_clear_errors(tmp_path, capsys, command, content, match):
    path = tmp_path / "r.nc"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert main([*command, str(path)]) == EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert match in err and str(path) in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (AbscopalError("bad value"), 3, "abscopal: error: bad value"),
        (SolverError("solver failed at t = 3"), 4, "abscopal: error: solver failed at t = 3"),
        (KeyboardInterrupt(), 130, "abscopal: interrupted"),
        (
            PermissionError(13, "Permission denied", "/data/in.toml"),
            3,
            "abscopal: error: cannot access '/data/in.toml': Permission denied",
        ),
    ],
)
def test_each_outcome_has_its_exit_code_and_one_line(monkeypatch, capsys, error, code, message):
    def raising(args):
        raise error

    monkeypatch.setattr(cli, "_cmd_regimens", raising)
    assert main(["regimens"]) == code
    err = capsys.readouterr().err
    assert err.strip() == message or (err.startswith(message) and len(err.strip().splitlines()) == 1)


def test_ctrl_c_in_a_real_process_prints_one_line_and_exits_130(tmp_path):
    code = (
        "import abscopal.cli as c, sys\n"
        "def stop(args):\n    raise KeyboardInterrupt\n"
        "c._cmd_regimens = stop\nsys.exit(c.main(['regimens']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 130
    assert proc.stderr.strip() == "abscopal: interrupted"


def test_unreadable_input_is_an_input_error_not_a_traceback(tmp_path, capsys):
    folder = tmp_path / "s.toml"
    folder.mkdir()  # reading a folder as a file raises IsADirectoryError (an OSError)
    code = main(["simulate", str(folder), "--out", str(tmp_path / "x.nc")])
    err = capsys.readouterr().err
    assert code == EXIT_CODES["input"] and "Traceback" not in err and str(folder) in err


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "model"],
        ["model", "-v"],
        ["-q", "model"],
        ["model", "--quiet"],
        ["study", "x.toml", "--out", "o", "-q", "--help"],
    ],
)
def test_verbosity_options_work_before_and_after_every_command(argv, capsys):
    if "--help" in argv:
        with pytest.raises(SystemExit):
            main(argv)
        assert "-q, --quiet" in capsys.readouterr().out
        return
    assert main(argv) == 0


def test_verbose_logs_progress_and_quiet_silences_it(capsys):
    import logging

    def talk(args):
        logging.getLogger("abscopal.calibrate.validate").info("fold 1 of 2")
        logging.getLogger("abscopal.studies.run").warning("something to know")
        return 0

    cli_cmd = cli._cmd_regimens
    try:
        cli._cmd_regimens = talk
        main(["-v", "regimens"])
        assert capsys.readouterr().err.splitlines() == ["abscopal: fold 1 of 2", "abscopal: something to know"]
        main(["regimens"])
        assert capsys.readouterr().err.splitlines() == ["abscopal: something to know"]
        main(["regimens", "-q"])
        assert capsys.readouterr().err == ""
    finally:
        cli._cmd_regimens = cli_cmd


@pytest.mark.parametrize("address", ["bad address", "tcp://host", "tcp://host:99999", "http://x:1"])
def test_a_bad_scheduler_address_fails_before_any_work(tmp_path, capsys, address):
    study = tmp_path / "study.toml"
    study.write_text("title = 'x'\n")
    assert main(["study", str(study), "--out", str(tmp_path / "out"), "--scheduler", address]) == 3
    err = capsys.readouterr().err
    assert f"--scheduler {address!r} is not a Dask scheduler address" in err
    assert not (tmp_path / "out").exists()


def test_study_refuses_a_folder_that_is_not_a_study(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text("title = 'x'\n")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "summary.csv").write_text("precious\n")
    for extra in ([], ["--force"]):
        assert main(["study", str(study), "--out", str(folder), *extra]) == 3
        assert "holds other files (summary.csv) and no study" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["summary.csv"]
    assert (folder / "summary.csv").read_text() == "precious\n"


def test_a_scheduler_that_does_not_answer_is_a_clear_error(monkeypatch):
    run = importlib.import_module("abscopal.studies.run")
    monkeypatch.setattr(run, "_CONNECT_TIMEOUT_S", 2)
    with pytest.raises(AbscopalError, match=r"--scheduler 'tcp://127.0.0.1:9': cannot connect to a Dask scheduler"):
        list(run._execute([], "tcp://127.0.0.1:9", None))


@pytest.fixture
def calibration_inputs(tmp_path):
    """Copies of the shipped fit and two target files (a failing check must not touch the repository's files)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "fits"
    fit = tmp_path / "fit.json"
    fit.write_bytes((root / "default.json").read_bytes())
    targets = []
    for name in ("pembro_rt.toml", "ratnayake2020.toml"):
        (tmp_path / name).write_bytes((root / "targets" / name).read_bytes())
        targets.append(tmp_path / name)
    return fit, targets


@pytest.mark.parametrize(
    ("argv", "victim", "match"),
    [
        (["fit", "T0", "--out", "T0", "--force"], "T0", "is an input of this command"),
        (["fit", "T0", "--out", DEVICE, "--force"], None, "not a regular file"),
        (["fit-report", "FITHTML", "--out", "FITHTML", "--force"], "FITHTML", "is an input of this command"),
        (["validate", "T0", "--fit", "FIT", "--out", "FIT", "--force"], "FIT", "is an input of this command"),
        (["validate", "T0", "--fit", "FIT", "--out", "T0", "--force"], "T0", "is an input of this command"),
        (["crossval", "T0", "T1", "--like", "FIT", "--out", "FIT", "--force"], "FIT", "is an input of this command"),
        (["crossval", "T0", "T1", "--out", DEVICE, "--force"], None, "not a regular file"),
    ],
)
def test_calibration_commands_never_write_over_their_inputs_or_a_device(
    calibration_inputs, tmp_path, capsys, monkeypatch, argv, victim, match
):
    arms = importlib.import_module("abscopal.arms")  # every arm is simulated through abscopal.arms.run_arm
    monkeypatch.setattr(arms, "simulate_prepared", lambda *a, **k: pytest.fail("simulated before checking the outputs"))
    fit, targets = calibration_inputs
    fit_html = tmp_path / "fit.html"  # a fit file with a report suffix: the only way --out can name it
    fit_html.write_bytes(fit.read_bytes())
    names = {"FIT": fit, "FITHTML": fit_html, "T0": targets[0], "T1": targets[1]}
    before = {k: p.read_bytes() for k, p in names.items()}
    assert main([str(names.get(a, a)) for a in argv]) == EXIT_CODES["input"]
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert {k: p.read_bytes() for k, p in names.items()} == before
    if victim is not None:
        assert str(names[victim]) in err


def test_simulate_never_writes_over_the_fit_it_reads(scenario_file, tmp_path, capsys, no_simulation):
    from pathlib import Path

    fit = tmp_path / "fit.json"
    fit.write_bytes((Path(__file__).resolve().parents[2] / "fits" / "default.json").read_bytes())
    before = fit.read_bytes()
    scenario_file.write_text(SCENARIO.replace('fit = "none"', f"fit = {str(fit)!r}"))
    assert main(["simulate", str(scenario_file), "--out", str(fit), "--force"]) == EXIT_CODES["input"]
    assert "is an input of this command" in capsys.readouterr().err and fit.read_bytes() == before


def test_asking_for_an_endpoints_file_scores_the_patients(scenario_file, tmp_path, capsys):
    ep = tmp_path / "ep.nc"
    assert main(["simulate", str(scenario_file), "--out", str(tmp_path / "r.nc"), "--endpoints-out", str(ep)]) == 0
    assert ep.is_file() and "pembro" in capsys.readouterr().out
