"""Probe the ``abscopal`` command with bad and hostile inputs and print how each case ends.

Usage: ``.venv/bin/python scripts/probe_inputs.py [--markdown]``. Each case runs the installed ``abscopal`` command
in a fresh temporary folder (nothing outside it is touched) and reports the exit code, whether a Python traceback
was printed, and the first line of the error message. A case "fails" when it prints a traceback, exits 0 where an
error was expected, or damages a file it must not touch. The exit code is the number of failing cases.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSCOPAL = [sys.executable, "-m", "abscopal.cli"]

SCENARIO = """title = "probe"
fit = "none"
[model]
name = "nsclc"
n_lesions = 3
[simulation]
t_end_day = 56
output_interval_day = 7
[population]
n_patients = 2
seed = 1
[[arm]]
name = "pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm]]
name = "sbrt+pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm.radiation]]
regimen = "sbrt_24gy_3fx"
start_day = -7
target_lesions = [0]
"""

STUDY = """title = "probe study"
fit = "none"
[population]
mix = "pembro_rt"
n_patients = 4
seed = 1
[treatment]
drug = "pembrolizumab_200mg_q3w"
[simulation]
t_end_day = 84
[axes]
timing = [-7]
fractionation = ["none", "sbrt_24gy_3fx"]
site = ["lung_primary"]
"""


@dataclass
class Case:
    name: str
    args: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    expect_error: bool = True
    untouched: tuple[str, ...] = ()  # files (relative to the case folder) that must keep their bytes


def _sub(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _targets_with(old: str, new: str) -> str:
    return _sub((ROOT / "fits" / "targets" / "pembro_rt.toml").read_text(encoding="utf-8"), old, new)


def cases() -> list[Case]:
    sim = ["simulate", "s.toml", "--out", "out.nc"]
    st = ["study", "st.toml", "--out", "study_out"]
    fit = (ROOT / "fits" / "default.json").read_text(encoding="utf-8")
    study_with_fit = _sub(STUDY, 'fit = "none"', 'fit = "f.json"')
    return [
        # ---- scenario values of the wrong type or meaning
        Case('scenario: seed = "one"', sim, {"s.toml": _sub(SCENARIO, "seed = 1", 'seed = "one"')}),
        Case('scenario: [solver] rtol = "x"', sim, {"s.toml": SCENARIO + '[solver]\nrtol = "x"\n'}),
        Case(
            "scenario: target_lesions = 0",
            sim,
            {"s.toml": _sub(SCENARIO, "target_lesions = [0]", "target_lesions = 0")},
        ),
        Case(
            "scenario: population = [1, 2]",
            sim,
            {"s.toml": "population = [1, 2]\n" + _sub(SCENARIO, "[population]\nn_patients = 2\nseed = 1\n", "")},
        ),
        Case(
            "scenario: drug table without a regimen",
            sim,
            {
                "s.toml": _sub(
                    SCENARIO, 'drug = "pembrolizumab_200mg_q3w"\n[[arm]]', "drug = { dose_mg = 200 }\n[[arm]]"
                )
            },
        ),
        Case("scenario: not UTF-8", sim, {"s.toml": SCENARIO.replace("probe", "pr\xf6be").encode("latin-1")}),
        Case(
            "scenario: NUL in the title", sim, {"s.toml": _sub(SCENARIO, 'title = "probe"', 'title = "pro\\u0000be"')}
        ),
        Case("scenario: n_patients = 2.7", sim, {"s.toml": _sub(SCENARIO, "n_patients = 2", "n_patients = 2.7")}),
        Case('scenario: n_patients = "3"', sim, {"s.toml": _sub(SCENARIO, "n_patients = 2", 'n_patients = "3"')}),
        Case(
            'scenario: mechanisms_off = "lymphocyte_kill" (a string)',
            sim,
            {
                "s.toml": _sub(
                    SCENARIO, "output_interval_day = 7", 'output_interval_day = 7\nmechanisms_off = "lymphocyte_kill"'
                )
            },
        ),
        Case(
            "scenario: output_interval_day = 1e-6 (cost guard)",
            sim,
            {"s.toml": _sub(SCENARIO, "output_interval_day = 7", "output_interval_day = 1e-6")},
        ),
        Case(
            "scenario: RT after the simulated horizon",
            sim,
            {"s.toml": _sub(SCENARIO, "start_day = -7", "start_day = 200")},
        ),
        Case(
            "scenario: 10^7 fractions",
            sim,
            {
                "s.toml": _sub(
                    SCENARIO,
                    'regimen = "sbrt_24gy_3fx"',
                    'dose_per_fraction_gy = 0.001\nn_fractions = 10000000\ncalendar = "daily"',
                )
            },
        ),
        Case("simulate: --orr-visit-day -5", [*sim, "--endpoints", "--orr-visit-day", "-5"], {"s.toml": SCENARIO}),
        # ---- outputs
        # a FIFO stands in for a device such as /dev/null: a probe must never risk the machine's own devices
        Case(
            "simulate: --out FIFO --force (a device)",
            ["simulate", "s.toml", "--out", "fifo", "--force"],
            {"s.toml": SCENARIO, "fifo": FIFO},
            untouched=("fifo",),
        ),
        Case(
            "simulate: --out SCENARIO.toml --force",
            ["simulate", "s.toml", "--out", "s.toml", "--force"],
            {"s.toml": SCENARIO},
            untouched=("s.toml",),
        ),
        Case(
            "simulate: --out X --endpoints-out X",
            [*sim, "--endpoints", "--endpoints-out", "out.nc"],
            {"s.toml": SCENARIO},
        ),
        Case("simulate: unknown figure extension", [*sim, "--figure", "fig.xyz"], {"s.toml": SCENARIO}),
        Case(
            "simulate: output parent is a file",
            ["simulate", "s.toml", "--out", "afile/out.nc"],
            {"s.toml": SCENARIO, "afile": "x"},
        ),
        Case(
            "simulate: output folder cannot be created",
            ["simulate", "s.toml", "--out", "/proc/abscopal/out.nc"],
            {"s.toml": SCENARIO},
        ),
        Case(
            "study: --out is a folder that is not a study",
            st,
            {"st.toml": STUDY, "study_out/notes.txt": "mine"},
            untouched=("study_out/notes.txt",),
        ),
        # ---- studies
        Case(
            'study: n_fractions = "x" in a level',
            st,
            {
                "st.toml": _sub(
                    STUDY, '"sbrt_24gy_3fx"]', '{ label = "x", dose_per_fraction_gy = 8, n_fractions = "x" }]'
                )
            },
        ),
        Case("study: empty file", st, {"st.toml": ""}),
        Case(
            "study: 1000 x 1001 grid (cost guard)",
            st,
            {
                "st.toml": _sub(
                    _sub(STUDY, "timing = [-7]", "timing = [" + ", ".join(str(i) for i in range(1000)) + "]"),
                    'fractionation = ["none", "sbrt_24gy_3fx"]',
                    "fractionation = ["
                    + ", ".join(
                        f'{{ label = "f{i}", dose_per_fraction_gy = {1 + i / 1000:.4f}, n_fractions = 3 }}'
                        for i in range(1001)
                    )
                    + "]",
                )
            },
        ),
        Case("study: bad --scheduler", [*st, "--scheduler", "not a scheduler"], {"st.toml": STUDY}),
        # ---- targets and fits (an old-format fit carrying a dill payload loads by its plain fields: it may run,
        # but the payload must never)
        Case(
            "targets: ci_lower == ci_upper",
            ["fit", "t.toml", "--out", "f.json"],
            {"t.toml": _targets_with("ci_lower = 1.7\nci_upper = 6.9", "ci_lower = 1.9\nci_upper = 1.9")},
        ),
        Case(
            "targets: n_events > n",
            ["fit", "t.toml", "--out", "f.json"],
            {"t.toml": _targets_with("value = 0.18\n", "value = 0.18\nn = 40\nn_events = 50\n")},
        ),
        Case(
            'targets: criteria = "recist2"',
            ["fit", "t.toml", "--out", "f.json"],
            {"t.toml": _targets_with('criteria = "recist1.1"', 'criteria = "recist2"')},
        ),
        Case(
            "fit file that is a list",
            ["validate", "--fit", "f.json", str(ROOT / "fits/targets/pembro_rt.toml")],
            {"f.json": "[1, 2]"},
        ),
        Case(
            "fit file with a pickled payload: validate",
            ["validate", "--fit", "f.json", str(ROOT / "fits/targets/pembro_rt.toml")],
            {"f.json": _payload_fit(fit)},
            expect_error=False,
        ),
        Case(
            "fit file with a pickled payload: fit-report",
            ["fit-report", "f.json", "--out", "r.html"],
            {"f.json": _payload_fit(fit)},
            expect_error=False,
        ),
        Case(
            "fit file with a pickled payload: study",
            st,
            {"f.json": _payload_fit(fit), "st.toml": study_with_fit},
            expect_error=False,
        ),
        # ---- inputs that are missing or of the wrong kind
        Case("endpoints: missing file", ["endpoints", "missing.nc"]),
        Case("endpoints: not netCDF", ["endpoints", "x.nc"], {"x.nc": "not netcdf"}),
        Case("cite --result: missing file", ["cite", "--result", "missing.nc"]),
        Case("cite --result: not netCDF", ["cite", "--result", "x.nc"], {"x.nc": "not netcdf"}),
    ]


MARKER = "PAYLOAD_RAN"
FIFO = b"<fifo>"  # file content meaning: create a named pipe here


def _payload_fit(fit_text: str) -> str:
    """A fit file whose lmfit parameters carry a dill-pickled callable that creates MARKER if it is unpickled."""
    import base64
    import platform

    import dill

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {MARKER}",))

    data = json.loads(fit_text)
    callable_ = {
        "__class__": "Callable",
        "__name__": "boom",
        "importer": None,
        "pyversion": platform.python_version(),
        "value": base64.b64encode(dill.dumps(Boom())).decode(),
    }
    params = data["params_json"]
    if isinstance(params, list):  # plain records (format v2): rewrite as a v1 file, lmfit's Parameters.dumps() text
        data["format"] = "abscopal-calibration-v1"
        params = {
            "unique_symbols": {},
            "params": [
                [
                    r["name"],
                    r["value"],
                    r["vary"],
                    r["expr"],
                    r["min"],
                    r["max"],
                    None,
                    r["stderr"],
                    r["correl"],
                    r["value"],
                    None,
                ]
                for r in params
            ],
        }
    else:
        params = json.loads(params)
    params["unique_symbols"]["boom"] = callable_
    data["params_json"] = json.dumps(params)
    return json.dumps(data)


def _fingerprint(path: Path) -> tuple:
    """Kind and content of ``path`` (a FIFO is never read: that would block)."""
    if not path.exists():
        return ("missing",)
    st = path.lstat()
    if not path.is_file():
        return ("special", st.st_mode, st.st_ino)
    return ("file", path.read_bytes())


def run(case: Case, tmp: Path) -> dict:
    for rel, content in case.files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if content == FIFO:
            os.mkfifo(p)
            continue
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    before = {u: _fingerprint(tmp / u) for u in case.untouched}
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run([*ABSCOPAL, *case.args], cwd=tmp, capture_output=True, text=True, timeout=120, env=env)
        code, err = proc.returncode, proc.stderr + proc.stdout
    except subprocess.TimeoutExpired:
        code, err = "timeout (120 s)", ""
    problems = []
    if "Traceback (most recent call last)" in err:
        problems.append("traceback")
    if case.expect_error and code == 0:
        problems.append("accepted")
    if code == "timeout (120 s)":
        problems.append("hung")
    for u, fingerprint in before.items():
        if _fingerprint(tmp / u) != fingerprint:
            problems.append(f"{u} changed")
    if (tmp / MARKER).exists():
        problems.append("payload ran")
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    msg = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")
    return {"case": case.name, "exit": code, "ok": not problems, "problems": problems, "message": msg[:220]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    rows = []
    for case in cases():
        tmp = Path(tempfile.mkdtemp(prefix="abscopal-probe-"))
        try:
            rows.append(run(case, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.markdown:
        print("| case | exit | outcome | message |\n|---|---|---|---|")
        for r in rows:
            outcome = "ok" if r["ok"] else "FAIL: " + ", ".join(r["problems"])
            print(f"| {r['case']} | {r['exit']} | {outcome} | {r['message'].replace('|', '/')} |")
    else:
        for r in rows:
            print(f"{'ok  ' if r['ok'] else 'FAIL'} exit={r['exit']!s:<4} {r['case']}: {r['message']}")
    failing = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - failing} passed, {failing} failed")
    return failing


if __name__ == "__main__":
    sys.exit(main())
