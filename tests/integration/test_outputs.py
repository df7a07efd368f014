"""simulate()'s output options and store (abscopal.outputs): only the requested variables, float32 storage,
patients in chunks, views instead of copies.

"Exact" means bitwise equality: chunking and the store change where values are written, never how they are
computed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import abscopal.outputs as outputs
from abscopal.endpoints.readout import scored_outputs
from abscopal.errors import ParameterError, ScheduleError
from abscopal.population import LogNormal, VirtualPopulation
from abscopal.simulate import simulate
from abscopal.solver import EventSchedule, SolverOptions, solve
from abscopal.treatment import TreatmentPlan, drug_regimen, radiation_regimen

VARIABILITY = {"tumour_doubling_time_day": LogNormal(omega=0.4), "effector_baseline": LogNormal(omega=0.8)}


def _arms():
    pem = drug_regimen("pembrolizumab_200mg_q3w")
    return {
        "pembro": TreatmentPlan(drug=pem),
        "sbrt+pembro": TreatmentPlan(drug=pem, radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-7.0),)),
    }


def _run(model, n=12, **kwargs):
    pop = VirtualPopulation(n_patients=n, variability=VARIABILITY, seed=3)
    return simulate(model, _arms(), population=pop, t_end_day=120.0, output_interval_day=7.0, **kwargs)


@pytest.fixture(scope="module")
def full(nsclc3):
    return _run(nsclc3)


def test_chunks_give_the_values_of_one_chunk(nsclc3, full, monkeypatch):
    # 12 patients x 2 arms in chunks of 2 patients (the chunks straddle the arms) equal one chunk for all
    monkeypatch.setattr(outputs, "CHUNK_BYTES", 1)
    assert outputs.chunk_patients(24, 19, 37, n_threads=2) == 16  # at least 8 per thread
    monkeypatch.setattr(outputs, "chunk_patients", lambda n, t, v, threads: 2)
    small = _run(nsclc3)
    for name in full.data_vars:
        np.testing.assert_array_equal(small[name].values, full[name].values)


def test_variables_equal_the_full_run_and_skip_the_rest(nsclc3, full):
    keep = scored_outputs(nsclc3.spec)
    ds = _run(nsclc3, variables=keep)
    assert {v for v in ds.data_vars if "time" in ds[v].dims} == set(keep)
    for name in keep:
        assert ds[name].dims == full[name].dims
        np.testing.assert_array_equal(ds[name].values, full[name].values)
    states_only = _run(nsclc3, variables=["viable_volume"])  # no observable kept: none is evaluated
    np.testing.assert_array_equal(states_only.viable_volume.values, full.viable_volume.values)


def test_float32_store_is_the_float64_values_rounded(nsclc3, full):
    ds = _run(nsclc3, dtype="float32")
    assert ds.attrs["output_dtype"] == "float32" and full.attrs["output_dtype"] == "float64"
    for name in ("viable_volume", "lesion_diameter", "L", "H"):
        assert ds[name].dtype == np.float32
        np.testing.assert_array_equal(ds[name].values, full[name].values.astype(np.float32))
    assert ds.parameter_value.dtype == np.float64  # parameters and plan facts are not outputs
    assert _run(nsclc3, dtype=np.float32).attrs["output_dtype"] == "float32"


@pytest.mark.parametrize("bad", ["float16", "double", 32, None, np.int64])
def test_dtype_is_validated(nsclc3, bad):
    with pytest.raises(ParameterError, match=r"dtype must be one of \['float64', 'float32'\]"):
        _run(nsclc3, n=1, dtype=bad)


def test_cost_guard_counts_the_kept_values_and_their_size(nsclc3):
    # 200,000 patients x 2 arms x about 20 weekly times (days -7 to 120): all 37 values in float64 are 2.2 GiB,
    # refused; the 3 lesion diameters in float32 are 92 MiB and pass the guard (the next check, on out_of_bounds,
    # stops the run before any work)
    kwargs = {
        "population": VirtualPopulation(n_patients=200_000, seed=1),
        "t_end_day": 120.0,
        "output_interval_day": 7.0,
    }
    with pytest.raises(ScheduleError, match=r"x 37 values \(float64\): estimated 2.2\d* GiB"):
        simulate(nsclc3, _arms(), **kwargs)
    with pytest.raises(ParameterError, match="out_of_bounds must be"):
        simulate(nsclc3, _arms(), **kwargs, variables=["lesion_diameter"], dtype="float32", out_of_bounds="bogus")


def test_views_share_one_store(nsclc3):
    ds = _run(nsclc3, n=3, variables=["lesion_diameter", "L"])
    d, lymph = ds.lesion_diameter.values, ds.L.values
    assert ds.lesion_diameter.dims == ("arm", "patient", "lesion", "time")
    assert np.may_share_memory(d, lymph)  # interleaved views of one store, no per-variable copies
    assert not d.flags.c_contiguous
    assert json.loads(ds.attrs["provenance"])["solver"]["parallel"] is True


def test_solve_refuses_wrong_buffers(nsclc3):
    spec = nsclc3.spec
    p = np.array([[spec.default_values()[n] for n in spec.parameter_names]])
    t = np.array([0.0, 1.0])
    ns, no = len(spec.states), len(spec.observables)
    with pytest.raises(ParameterError, match="observables buffer must be C-contiguous float64"):
        solve(nsclc3, p, t, buffers=(np.empty((1, 2, ns)), np.empty((1, 2, no - 1))))
    with pytest.raises(ParameterError, match="states buffer"):
        solve(nsclc3, p, t, buffers=(np.empty((1, 2, ns), np.float32), np.empty((1, 2, no))))
    y, o = np.empty((1, 2, ns)), np.empty((1, 2, 0))
    sol = solve(nsclc3, p, t, buffers=(y, o), observables=False, events=EventSchedule.empty(nsclc3, 1))
    assert sol.y is y and sol.obs.shape == (1, 2, 0)
    np.testing.assert_array_equal(y, solve(nsclc3, p, t).y)


def test_fallback_patients_are_numbered_across_chunks(nsclc3, monkeypatch):
    # max_steps below what the explicit method needs: every patient falls back to Radau, in chunks of 2
    monkeypatch.setattr(outputs, "chunk_patients", lambda n, t, v, threads: 2)
    pop = VirtualPopulation(n_patients=3, seed=2)
    opts = SolverOptions(max_steps=10)
    with pytest.warns(Warning, match="3 of 3 patients"):
        ds = simulate(nsclc3, _arms()["pembro"], population=pop, t_end_day=14.0, solver=opts, variables=["L"])
    assert json.loads(ds.attrs["provenance"])["stiff_fallback_patients"] == 3
