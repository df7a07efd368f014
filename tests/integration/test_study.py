"""Scenario studies (``abscopal.studies``): grid expansion, validation before work, RT at progression, resume,
and identical results in process and on a local Dask cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from abscopal.errors import AbscopalError, ParameterError, ScheduleError
from abscopal.studies import AXES, parse_study, run_study, study, summary_table
from abscopal.studies.run import prepare_study

BASE = {
    "title": "test study",
    "fit": "none",
    "population": {"mix": "pembro_rt", "n_patients": 8, "seed": 3},
    "simulation": {"t_end_day": 400},
    "axes": {"timing": [-7]},
}


def design(**axes):
    return parse_study(BASE | {"axes": axes})


def test_grid_expands_in_axis_order_and_no_rt_cells_are_shared():
    d = design(
        timing=[-7, 0, "concurrent", "at_progression", {"label": "late", "start_day": 84}],
        fractionation=[
            "none",
            "sbrt_24gy_3fx",
            {
                "label": "PULSAR",
                "dose_per_fraction_gy": 10,
                "n_fractions": 3,
                "calendar": {"type": "spaced_pulses", "interval_day": 10},
            },
        ],
        site=["lung_primary", {"target": "largest_metastasis", "n_lesions": 2}],
        drug=["pembrolizumab_200mg_q3w", "nivolumab_240mg_q2w"],
    )
    assert d.shape == (5, 3, 2, 2)
    cells = d.cells()
    assert len(cells) == 60
    assert [lv.label for lv in d.axes["timing"]] == ["day -7", "day +0", "concurrent (day 0)", "at progression", "late"]
    assert d.axes["site"][1].label == "largest_metastasis x2"
    pulsar = d.axes["fractionation"][2].course
    assert pulsar.fraction_days == pytest.approx((0.0, 10.0, 20.0))
    # C order over (timing, fractionation, site, drug)
    assert [c.index for c in cells[:3]] == [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0)]
    first = cells[d.cells().index(next(c for c in cells if c.index == (4, 1, 0, 0)))]
    plan = first.plan((0,))
    assert plan.fractions()[0].time_day == 84.0 and plan.drug.start_day == 0.0
    # no-RT cells depend on the drug only: 2 distinct, + 4 timings x 2 RT levels x 2 sites x 2 drugs + at progression
    canon = {json.dumps(c.canonical(), sort_keys=True, default=str) for c in cells}
    assert len(canon) == 2 + 5 * 2 * 2 * 2 - 2 * 2 * 2  # "day +0" and "concurrent" are the same plan


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        ({"timing": ["soon"]}, r"axes.timing\[0\]: must be a day"),
        ({"fractionation": ["sbrt_24gy_3f"]}, "sbrt_24gy_3fx"),
        ({"fractionation": [{"dose_per_fraction_gy": 8}]}, "needs n_fractions"),
        ({"site": ["livr"]}, "liver"),
        (
            {"site": [{"target": "largest", "n_lesions": 0}]},
            r"axes\.site\[0\]\.n_lesions: must be an integer >= 1, got 0",
        ),
        ({"drug": ["pembro"]}, "pembrolizumab"),
        ({"dose": [1]}, "unknown key 'dose'"),
        ({"timing": [1, 1]}, "labels repeat"),
    ],
)
def test_bad_designs_fail_with_the_key_named(axes, match):
    with pytest.raises(ScheduleError, match=match):
        design(**axes)


def test_bad_top_level_keys_and_draws_without_fit_fail_before_any_simulation(monkeypatch):
    with pytest.raises(ScheduleError, match="'population'"):
        parse_study(BASE | {"populaton": {}})
    import abscopal.arms as arms  # every cell is simulated through abscopal.arms.run_arm

    monkeypatch.setattr(arms, "simulate_prepared", lambda *a, **k: pytest.fail("simulated before validating"))
    with pytest.raises(ParameterError, match="n_draws = 3 needs a fit"):
        run_study(parse_study(BASE | {"uncertainty": {"n_draws": 3}}))
    with pytest.raises(ParameterError, match="n_lesions = 4 but model 'nsclc' has 3 lesions"):
        run_study(design(site=[{"target": "largest", "n_lesions": 4}]))
    with pytest.raises(AbscopalError, match="no such calibration file"):
        run_study(parse_study(BASE | {"fit": "missing.json"}))
    with pytest.raises(ScheduleError, match="has no liver lesion"):
        run_study(design(site=["liver"]))  # some patients have no liver lesion


def test_rt_at_progression_starts_at_each_patients_progression_scan(nsclc3):
    d = parse_study(
        BASE
        | {
            "treatment": {"salvage_delay_day": 7},
            "axes": {"timing": ["at_progression"], "fractionation": ["none", "sbrt_24gy_3fx"]},
        }
    )
    ds = run_study(d)
    base = ds.isel(timing=0, site=0, drug=0, draw=0)
    none, salvage = base.sel(fractionation="no RT"), base.sel(fractionation="sbrt_24gy_3fx")
    setup = prepare_study(d)
    task = next(t for t in setup.tasks if not t.cell.has_rt)
    from abscopal.studies.cell import _run_arm

    ep = _run_arm(task, setup.draws[0], task.cell.plan((0,))).scored.endpoints
    prog = ep.progression_day.values[0]
    assert np.isfinite(prog).any(), "no patient progressed; the test would be vacuous"
    want = np.where(np.isfinite(prog) & (prog + 7 <= 400), prog + 7, np.nan)
    np.testing.assert_array_equal(salvage.rt_start_day.values, want)
    assert np.all(np.isnan(none.rt_start_day.values))
    # progression is unchanged by RT that starts after it; overall survival is not
    np.testing.assert_array_equal(salvage.pfs_day.values, none.pfs_day.values)
    np.testing.assert_array_equal(salvage.pfs_event.values, none.pfs_event.values)
    assert float(salvage.irradiated_fraction) == pytest.approx(np.isfinite(want).mean())
    assert float(salvage.pneumonitis_risk) > 0.0


def test_resume_skips_finished_cells_and_gives_identical_results(tmp_path):
    d = design(timing=[-7, 21], fractionation=["none", "sbrt_24gy_3fx", "conv_30gy_10fx"])
    calls = []

    def stop_after_two(done, total, cached, label):
        calls.append(done)
        if done - cached >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(d, tmp_path, progress=stop_after_two, report=False)
    assert len(list((tmp_path / "cells").glob("*.npz"))) == 2
    assert not (tmp_path / "study.json").exists() and not (tmp_path / "endpoints.nc").exists()
    first = run_study(d, tmp_path, report=False)
    assert first.attrs["cells_cached"] == 2 and first.attrs["cells_computed"] == 3
    assert (tmp_path / "study.json").exists() and (tmp_path / "summary.csv").exists()
    with pytest.raises(AbscopalError, match="holds a completed study"):
        run_study(d, tmp_path, report=False)
    again = run_study(d, tmp_path, report=False, force=True)
    assert again.attrs["cells_computed"] == 0
    fresh = run_study(d)
    for name in fresh.data_vars:
        np.testing.assert_array_equal(again[name].values, fresh[name].values, err_msg=name)
    stored = xr.load_dataset(tmp_path / "endpoints.nc", engine="h5netcdf")
    np.testing.assert_array_equal(stored.orr.values, fresh.orr.values)
    assert stored.orr.attrs["units"] == "1" and stored.median_pfs_month.attrs["units"] == "month"


def test_summary_rows_and_units(tmp_path):
    ds = study(design(timing=[0], fractionation=["none", "conv_45gy_15fx"]))
    rows = summary_table(ds)
    assert len(rows) == 2 and {r["fractionation"] for r in rows} == {"no RT", "conv_45gy_15fx"}
    conv = next(r for r in rows if r["fractionation"] == "conv_45gy_15fx")
    assert conv["total_dose_gy"] == 45.0 and conv["n_fractions"] == 15
    assert conv["bed10_gy"] == pytest.approx(45 * (1 + 3 / 10))
    assert conv["mean_lung_dose_gy"] == pytest.approx(0.25 * 45)
    assert conv["orr_lower"] is None  # no draws, no interval
    for name, var in ds.data_vars.items():
        assert "units" in var.attrs, name
    for a in AXES:
        assert a in ds.dims


def test_same_design_and_seed_give_identical_results_and_seed_matters():
    a = run_study(design(timing=[0], fractionation=["sbrt_24gy_3fx"]))
    b = run_study(design(timing=[0], fractionation=["sbrt_24gy_3fx"]))
    np.testing.assert_array_equal(a.os_day.values, b.os_day.values)
    c = run_study(
        parse_study(
            BASE
            | {
                "population": {"mix": "pembro_rt", "n_patients": 8, "seed": 4},
                "axes": {"timing": [0], "fractionation": ["sbrt_24gy_3fx"]},
            }
        )
    )
    assert not np.array_equal(a.os_day.values, c.os_day.values)


@pytest.mark.slow
def test_local_dask_cluster_gives_identical_results(tmp_path):
    d = design(timing=[-7, "at_progression"], fractionation=["none", "sbrt_24gy_3fx"])
    local = run_study(d)
    dask = run_study(d, tmp_path, workers=2, report=False)
    assert dask.attrs["cells_computed"] == len(prepare_study(d).tasks)
    for name in local.data_vars:
        np.testing.assert_array_equal(dask[name].values, local[name].values, err_msg=name)


def test_a_failed_draw_is_nan_only_when_asked_and_the_other_draws_are_kept(monkeypatch):
    """``CellTask.failed_draws``: "raise" (studies) stops at a solver failure; "nan" (sensitivity analyses) leaves
    that draw NaN and the other draws exactly as without the failure."""
    from dataclasses import replace

    import abscopal.studies.cell as cell
    from abscopal.errors import SolverError

    setup = prepare_study(design(fractionation=["sbrt_24gy_3fx"]))
    task = next(t for t in setup.tasks if t.cell.has_rt)
    marker = {"max_kill_per_day": 0.0123}  # the draw that "fails"
    task = replace(task, draws=(setup.draws[0], setup.draws[0] | marker))
    clean = cell.run_cell(replace(task, draws=(setup.draws[0],)))
    real = cell._run_arm

    def flaky(t, values, *args, **kwargs):
        if values.get("max_kill_per_day") == marker["max_kill_per_day"]:
            raise SolverError("arm 'cell', patient 0 at t = 1 day: too many steps (stiff?)")
        return real(t, values, *args, **kwargs)

    monkeypatch.setattr(cell, "_run_arm", flaky)
    with pytest.raises(SolverError, match="too many steps"):
        cell.run_cell(task)
    ds = cell.run_cell(replace(task, failed_draws="nan"))
    for name in ("os_day", "pfs_day", "best_percent_change"):
        np.testing.assert_array_equal(ds[name].values[0], clean[name].values[0])
        assert np.all(np.isnan(ds[name].values[1])), name
    assert not ds.os_event.values[1].any() and np.isnan(float(ds.orr.values[1]))
