"""The abscopal command and scenario files (run in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from abscopal.cli import main
from abscopal.errors import ScheduleError
from abscopal.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """
title = "test"
[model]
name = "nsclc"
n_lesions = 3
[simulation]
t_end_day = 168
output_interval_day = 7
[population]
n_patients = 6
seed = 3
variability = "default"
[[arm]]
name = "pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm]]
name = "sbrt+pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm.radiation]]
regimen = "sbrt_24gy_3fx"
start_day = -7
mean_lung_dose_gy = 4.0
"""


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    return path


def test_simulate_writes_netcdf_and_prints_the_endpoint_table(scenario_file, tmp_path, capsys):
    out, ep_out = tmp_path / "o.nc", tmp_path / "ep.nc"
    rc = main(
        [
            "simulate",
            str(scenario_file),
            "--out",
            str(out),
            "--patients",
            "4",
            "--endpoints",
            "--orr-visit-day",
            "84",
            "--endpoints-out",
            str(ep_out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "ORR % (95% CI)" in text and "sbrt+pembro" in text
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.sizes["patient"] == 4 and list(ds.arm.values) == ["pembro", "sbrt+pembro"]
        assert float(ds.rt_dose_gy.sel(arm="sbrt+pembro", lesion=0)) == 24.0
    with xr.open_dataset(ep_out, engine="h5netcdf") as ep:
        assert "orr" in ep and ep.sizes["patient"] == 4
    # scoring the written file again gives the same table
    assert main(["endpoints", str(out), "--orr-visit-day", "84"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == text.splitlines()[3]


def test_outputs_are_never_silently_overwritten(scenario_file, tmp_path, capsys):
    out = tmp_path / "o.nc"
    assert main(["simulate", str(scenario_file), "--out", str(out), "--patients", "2"]) == 0
    stamp = out.stat().st_mtime_ns
    assert main(["simulate", str(scenario_file), "--out", str(out), "--patients", "2"]) == 3
    assert "exists" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == stamp
    assert main(["simulate", str(scenario_file), "--out", str(out), "--patients", "2", "--force"]) == 0


def test_regimens_lists_bed_and_eqd2(capsys):
    assert main(["regimens"]) == 0
    text = capsys.readouterr().out
    line = next(row for row in text.splitlines() if row.startswith("sbrt_24gy_3fx"))
    assert "43.2" in line and "36" in line  # BED10, EQD2(10) of 24 Gy/3: 24 (1 + 8/10), 24 (8 + 10) / 12


def test_shipped_scenarios_parse():
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        sc = load_scenario(path, n_patients=2, seed=1)
        assert sc.arms and sc.population.n_patients == 2


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (("[simulation]", "[simulaton]"), "did you mean 'simulation'"),
        (('regimen = "sbrt_24gy_3fx"', 'regimen = "sbrt_24gy_3f"'), "did you mean 'sbrt_24gy_3fx'"),
        (("start_day = -7", "start_dy = -7"), "did you mean 'start_day'"),
        (('drug = "pembrolizumab_200mg_q3w"\n[[arm.radiation]]', 'drug = "pembro"\n[[arm.radiation]]'), "pembro"),
    ],
)
def test_scenario_errors_name_the_key_and_suggest(tmp_path, edit, match):
    path = tmp_path / "bad.toml"
    path.write_text(SCENARIO.replace(*edit))
    with pytest.raises(Exception, match=match) as info:
        load_scenario(path)
    assert isinstance(info.value, (ScheduleError, ValueError))


def test_missing_scenario_file_is_a_clear_error(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "x.nc")]) == 3
    assert "does not exist" in capsys.readouterr().err
