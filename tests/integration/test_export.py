"""``abscopal export`` and :mod:`abscopal.export`: exact long tables, patient tables, a NONMEM-style PK dataset that
reproduces the simulated concentrations from its own records, and the output-safety guarantees of every command."""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.integrate import solve_ivp

from abscopal.cli import main
from abscopal.errors import AbscopalError
from abscopal.export import (
    LONG_COLUMNS,
    NONMEM_COLUMNS,
    long_table,
    nonmem_concentrations,
    nonmem_table,
    patient_table,
    read_table,
    regimens_from_provenance,
    write_table,
)

DEVICE = next(d for d in ("/dev/null", "/dev/zero", "/dev/urandom") if stat.S_ISCHR(os.stat(d).st_mode))
SCENARIO = """
title = "export"
fit = "none"
[model]
name = "nsclc"
n_lesions = 3
[simulation]
t_end_day = 60
output_interval_day = 3
[population]
n_patients = 3
seed = 5
[population.variability]
body_weight_kg = { distribution = "lognormal", omega = 0.2 }
pk_cl_l_per_day = { distribution = "lognormal", omega = 0.3 }
[[arm]]
name = "pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm]]
name = "sbrt + pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm.radiation]]
regimen = "sbrt_24gy_3fx"
start_day = -7
target_lesions = [0]
[[arm]]
name = "nivo 3 mg/kg"
[arm.drug]
drug = "nivolumab"
dose_mg_per_kg = 3
interval_day = 14
constant_clearance = true
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A simulate result (3 arms: flat dose, flat dose + SBRT, weight-based dose; 3 patients) and its endpoints."""
    d = tmp_path_factory.mktemp("export")
    (d / "s.toml").write_text(SCENARIO)
    rc = main(["-q", "simulate", str(d / "s.toml"), "--out", str(d / "r.nc"), "--endpoints-out", str(d / "e.nc")])
    assert rc == 0
    return d


def _load(path) -> xr.Dataset:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def test_the_scenario_really_varies_weight_and_clearance(result):
    ds = _load(result / "r.nc")
    pv = ds.parameter_value
    assert np.ptp(pv.sel(parameter="body_weight_kg").values) > 0
    assert np.ptp(pv.sel(parameter="pk_cl_l_per_day").values) > 0


def test_long_csv_round_trip_is_exact_and_rebuilds_every_value(result, tmp_path):
    ds = _load(result / "r.nc")
    table = long_table(ds)
    assert tuple(table.columns) == LONG_COLUMNS
    write_table(table, tmp_path / "l.csv")
    back = read_table(tmp_path / "l.csv")
    pd.testing.assert_frame_equal(table, back, check_exact=True)
    # rebuild each variable from the re-read rows: bit-for-bit the dataset's values
    n_checked = 0
    for name, rows in back.groupby("variable"):
        da = ds[name]
        order = [d for d in ("arm", "patient", "lesion", "time") if d in da.dims]
        want = np.asarray(da.transpose(*order).values, dtype=np.float64).reshape(-1)
        np.testing.assert_array_equal(rows["value"].to_numpy(), want, err_msg=str(name))
        assert set(rows["units"]) == {da.attrs["units"]}, name
        n_checked += want.size
    assert n_checked == len(back)
    assert (back["units"] != "").all()
    lesion_rows = back[back.variable == "lesion_diameter"]
    assert lesion_rows["lesion"].notna().all() and (lesion_rows["units"] == "mm").all()
    assert back.loc[back.variable == "drug_concentration", "lesion"].isna().all()
    assert set(back.loc[back.variable == "drug_concentration", "time"]) == set(ds.time.values)


def test_patient_table_has_covariates_parameters_and_units(result, tmp_path):
    ds = _load(result / "r.nc")
    table = patient_table(ds)
    assert len(table) == ds.sizes["arm"] * ds.sizes["patient"]
    assert "body_weight_kg [kg]" in table.columns and "pk_cl_l_per_day [L/day]" in table.columns
    assert "rt_start_day [day]" in table.columns
    write_table(table, tmp_path / "p.csv")
    back = read_table(tmp_path / "p.csv")
    pd.testing.assert_frame_equal(table, back, check_exact=True)
    wt = back["body_weight_kg [kg]"].to_numpy()
    np.testing.assert_array_equal(wt, ds.parameter_value.sel(parameter="body_weight_kg").values.reshape(-1))


def test_endpoints_dataset_exports_long_and_per_patient(result, tmp_path):
    ep = _load(result / "e.nc")
    table = long_table(ep)
    assert {"percent_change", "pfs_day", "km_os"} <= set(table.variable)
    write_table(table, tmp_path / "e.csv")
    pd.testing.assert_frame_equal(table, read_table(tmp_path / "e.csv"), check_exact=True)
    visits = table[table.variable == "percent_change"]
    assert set(visits.time) <= set(ep.visit_day.values)
    patients = patient_table(ep)
    assert {"best_overall_response [1]", "os_day [day]"} <= set(patients.columns)


def test_regimens_are_read_back_from_the_provenance(result):
    regs = regimens_from_provenance(_load(result / "r.nc"))
    assert regs["pembro"] is not None and regs["pembro"].dose_mg == 200 and regs["pembro"].interval_day == 21
    assert regs["sbrt + pembro"] == regs["pembro"]
    nivo = regs["nivo 3 mg/kg"]
    assert nivo is not None and nivo.dose_mg_per_kg == 3 and nivo.interval_day == 14


def _ode_concentrations(rows: pd.DataFrame) -> np.ndarray:
    """An independent check: integrate the two-compartment ODEs (per hour) between the records with scipy."""
    first = rows.iloc[0]
    cl, v1, q, v2 = first["CL"], first["V1"], first["Q"], first["V2"]

    def rhs(_t, y):
        a1, a2 = y
        return [-(cl + q) / v1 * a1 + q / v2 * a2, q / v1 * a1 - q / v2 * a2]

    y, t_now, out = np.zeros(2), float(rows["TIME"].iloc[0]), []
    for _, r in rows.iterrows():  # doses come before observations at the same time
        if r["TIME"] > t_now:
            sol = solve_ivp(rhs, (t_now, r["TIME"]), y, method="LSODA", rtol=1e-12, atol=1e-12)
            y, t_now = sol.y[:, -1], float(r["TIME"])
        if r["EVID"] == 1:
            y = y + np.array([r["AMT"], 0.0])
        out.append(y[0] / v1)
    return np.array(out)


def test_nonmem_dataset_reproduces_the_concentrations(result, tmp_path):
    ds = _load(result / "r.nc")
    rc = main(["-q", "export", str(result / "r.nc"), "--format", "nonmem", "--out", str(tmp_path / "nm.csv")])
    assert rc == 0
    text = (tmp_path / "nm.csv").read_text()
    assert text.splitlines()[0].startswith(",".join(NONMEM_COLUMNS))
    assert ",.," in text  # NONMEM missing DV on dose records
    nm = read_table(tmp_path / "nm.csv", nonmem=True)
    pd.testing.assert_frame_equal(nm, nonmem_table(ds), check_exact=True)
    obs, dose = nm[nm.EVID == 0], nm[nm.EVID == 1]
    assert (obs.MDV == 0).all() and (dose.MDV == 1).all() and (nm.CMT == 1).all() and dose.DV.isna().all()
    # units: TIME in hours, AMT in mg (weight-based: 3 mg/kg x WT)
    np.testing.assert_array_equal(np.sort(obs.TIME.unique()), ds.time.values * 24.0)
    nivo = dose[dose.ARM == 2]
    np.testing.assert_allclose(nivo.AMT, 3.0 * nivo.WT, rtol=0, atol=0)
    assert set(dose[dose.ARM < 2].AMT) == {200.0}
    # DV is abscopal's drug_concentration, record for record
    conc = ds.drug_concentration.transpose("arm", "patient", "time").values.reshape(-1)
    np.testing.assert_array_equal(obs.DV.to_numpy(), conc)
    # reproduced from the re-read file alone: closed form and scipy ODEs, both within 1e-6 relative
    closed = nonmem_concentrations(nm)[nm.EVID.to_numpy() == 0]
    dv = obs.DV.to_numpy()
    positive = dv > 0
    assert np.max(np.abs(closed[positive] / dv[positive] - 1.0)) < 1e-6
    ode = np.concatenate([_ode_concentrations(rows)[rows.EVID.to_numpy() == 0] for _, rows in nm.groupby("ID")])
    assert np.max(np.abs(ode[positive] / dv[positive] - 1.0)) < 1e-6


def test_a_wrong_schedule_is_refused_not_written(result):
    from abscopal.treatment.drugs import DrugRegimen

    ds = _load(result / "r.nc")
    wrong = dict(regimens_from_provenance(ds), pembro=DrugRegimen(drug="pembrolizumab", dose_mg=200, interval_day=14))
    with pytest.raises(AbscopalError, match="does not reproduce the stored drug concentration"):
        nonmem_table(ds, regimens=wrong)


def test_cli_writes_long_and_patient_tables(result, tmp_path, capsys):
    out, pts = tmp_path / "l.csv", tmp_path / "p.csv"
    assert main(["-q", "export", str(result / "r.nc"), "--out", str(out), "--patients-out", str(pts)]) == 0
    pd.testing.assert_frame_equal(read_table(out), long_table(_load(result / "r.nc")), check_exact=True)
    assert "patient table" in capsys.readouterr().out


def test_cli_refuses_to_overwrite_without_force(result, tmp_path, capsys):
    out = tmp_path / "l.csv"
    out.write_text("keep me")
    assert main(["export", str(result / "r.nc"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "keep me"
    assert main(["-q", "export", str(result / "r.nc"), "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith(",".join(LONG_COLUMNS))


@pytest.mark.parametrize("fmt", ["csv", "nonmem"])
def test_cli_never_writes_over_its_input_or_a_device(result, tmp_path, capsys, fmt):
    src = result / "r.nc"
    before = src.read_bytes()
    link = tmp_path / "link.nc"
    os.link(src, link)
    for target, match in ((src, "is an input"), (link, "is an input"), (DEVICE, "not a regular file")):
        rc = main(["export", str(src), "--format", fmt, "--out", str(target), "--force"])
        err = capsys.readouterr().err
        assert rc == 3 and match in err and "Traceback" not in err, err
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--format", "xlsx"], "--format 'xlsx' is not a format; use one of csv, parquet, nonmem"),
        (["--format", "nonmem", "--patients-out", "P.csv"], "--patients-out 'P.csv' does not go with"),
    ],
)
def test_bad_arguments_are_one_line_errors(result, tmp_path, capsys, argv, match):
    rc = main(["export", str(result / "r.nc"), "--out", str(tmp_path / "x.csv"), *argv])
    err = capsys.readouterr().err
    assert rc == 3 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


def test_nonmem_of_an_endpoints_file_is_a_clear_error(result, tmp_path, capsys):
    rc = main(["export", str(result / "e.nc"), "--format", "nonmem", "--out", str(tmp_path / "x.csv")])
    assert rc == 3 and "has no drug PK" in capsys.readouterr().err


def test_parquet_round_trip_or_a_clear_error(result, tmp_path, capsys):
    out = tmp_path / "l.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        rc = main(["export", str(result / "r.nc"), "--format", "parquet", "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 3 and "pip install abscopal[export]" in err and not out.exists()
        pytest.skip("pyarrow is not installed (optional extra abscopal[export]); the error was checked")
    assert main(["-q", "export", str(result / "r.nc"), "--format", "parquet", "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(read_table(out), long_table(_load(result / "r.nc")), check_exact=True)


def test_no_time_dimension_rows_have_nan_time(result):
    table = long_table(_load(result / "r.nc"))
    rows = table[table.variable == "rt_dose_gy"]
    assert rows["time"].isna().all() and rows["patient"].isna().all() and rows["lesion"].notna().all()
    assert not math.isnan(table.loc[table.variable == "L", "time"].iloc[0])
