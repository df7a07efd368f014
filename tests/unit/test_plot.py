"""Tests of abscopal.plot: every plot returns its Axes, labels come from long_name/units, and the
drawn artists match the data (one bar/line per patient, one curve per arm, numbers at risk).

Data: a tiny simulation (NSCLC model with 3 lesions, 12 patients, weekly output to day 365) and
its endpoints, built once per module; small synthetic datasets for edge cases.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.axes import Axes

import abscopal as ab
from abscopal.endpoints import DAYS_PER_MONTH, TrialAssessment, score
from abscopal.errors import ParameterError
from abscopal.plot import (
    RESPONSE_COLOURS,
    label,
    plot_km,
    plot_lesion_trajectories,
    plot_median_burden,
    plot_spider,
    plot_swimmer,
    plot_waterfall,
)

N_PATIENTS = 12
ARMS = ("pembro", "sbrt+pembro", "none")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sim(nsclc3) -> xr.Dataset:
    pem = ab.drug_regimen("pembrolizumab_200mg_q3w")
    sbrt = ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7, mean_lung_dose_gy=5.0)
    arms = {
        "pembro": ab.TreatmentPlan(drug=pem),
        "sbrt+pembro": ab.TreatmentPlan(drug=pem, radiation=(sbrt,)),
        "none": ab.TreatmentPlan(),
    }
    pop = ab.VirtualPopulation(n_patients=N_PATIENTS, variability=ab.default_variability(), seed=3)
    return ab.simulate(nsclc3, arms, population=pop, t_end_day=365, output_interval_day=7)


@pytest.fixture(scope="module")
def ep(sim: xr.Dataset) -> xr.Dataset:
    return score(sim, TrialAssessment(orr_visit_day=84))


def _texts(ax: Axes, gid: str) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == gid]


def _lines(ax: Axes, prefix: str) -> list:
    return [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith(prefix)]


# ----------------------------------------------------------------------------- every plot
@pytest.mark.parametrize("name", ["km", "waterfall", "spider", "swimmer", "lesions", "burden"])
def test_returns_axes_on_a_new_figure_and_on_a_given_axes(name, sim, ep):
    draw = {
        "km": lambda ax: plot_km(ep, ax=ax),
        "waterfall": lambda ax: plot_waterfall(ep, ax=ax),
        "spider": lambda ax: plot_spider(ep, ax=ax),
        "swimmer": lambda ax: plot_swimmer(ep, ax=ax),
        "lesions": lambda ax: plot_lesion_trajectories(sim, ax=ax),
        "burden": lambda ax: plot_median_burden(sim, ax=ax),
    }[name]
    assert isinstance(draw(None), Axes)
    fig, given = plt.subplots()
    assert draw(given) is given
    assert len(fig.axes) == 1  # nothing else added to the figure
    fig.canvas.draw()  # renders without error


def test_label_uses_long_name_and_units():
    da = xr.DataArray([1.0], dims="x", name="v", attrs={"long_name": "tumour size", "units": "mm"})
    assert label(da) == "tumour size [mm]"
    assert label(da, units="cm") == "tumour size [cm]"
    assert label(xr.DataArray([1.0], dims="x", name="v")) == "v [?]"


# ----------------------------------------------------------------------------- Kaplan-Meier
@pytest.mark.parametrize("endpoint", ["pfs", "os"])
def test_km_one_curve_per_arm_and_numbers_at_risk(ep, endpoint):
    ax = plot_km(ep, endpoint)
    curves = _lines(ax, "km ")
    assert [c.get_gid() for c in curves] == [f"km {a}" for a in ARMS]
    for curve, arm in zip(curves, ARMS, strict=True):
        y = curve.get_ydata()
        assert y[0] == 1.0 and np.all(np.diff(y) <= 1e-12)  # starts at 1, non-increasing
        assert curve.get_drawstyle() == "steps-post"
        km = ep[f"km_{endpoint}"].sel(arm=arm).values
        x_day = np.asarray(curve.get_xdata()) * DAYS_PER_MONTH
        at_grid = y[np.searchsorted(x_day, ep.km_time.values + 1e-6, side="right") - 1]
        np.testing.assert_allclose(at_grid, km, atol=1e-12)  # the refit agrees with the stored grid values
    ticks = ax.get_xticks()
    assert ticks[0] == 0.0
    days = ep[f"{endpoint}_day"]
    for arm in ARMS:
        row = _texts(ax, f"at risk {arm}")
        assert len(row) == ticks.size
        assert row[0] == str(N_PATIENTS)  # everybody at risk at time 0
        expected = [int((days.sel(arm=arm).values >= t * DAYS_PER_MONTH).sum()) for t in ticks]
        assert row == [str(n) for n in expected]
    assert _texts(ax, "at risk header") == ["number at risk"]
    assert [t for t in ax.texts if (t.get_gid() or "").startswith("at risk label")]


def test_km_labels_from_attributes_and_time_unit(ep):
    ep2 = ep.copy()
    ep2["km_pfs"].attrs.update(long_name="probability free of progression", units="fraction")
    ep2["km_time"].attrs.update(long_name="time on study", units="day")
    ax = plot_km(ep2, "pfs")
    assert ax.get_ylabel() == "probability free of progression [fraction]"
    assert ax.get_xlabel() == "time on study [month]"
    ax = plot_km(ep2, "pfs", time_unit="day", at_risk=False)
    assert ax.get_xlabel() == "time on study [day]"
    assert ax.get_xlim()[1] == pytest.approx(float(ep.km_time.values[-1]))
    assert not ax.texts  # no table


def test_km_grid_source_uses_stored_curves(ep):
    """Without per-patient times the curves and numbers at risk come from the km_time grid."""
    grid_only = ep[["km_pfs", "at_risk_pfs", "median_pfs_day"]]
    ax = plot_km(grid_only, "pfs", time_unit="day")
    for arm in ARMS:
        (curve,) = _lines(ax, f"km {arm}")
        np.testing.assert_array_equal(curve.get_ydata(), ep.km_pfs.sel(arm=arm).values)
        np.testing.assert_array_equal(curve.get_xdata(), ep.km_time.values)
        row = _texts(ax, f"at risk {arm}")
        assert row[0] == str(N_PATIENTS)
        # the left-continuous count at a tick is the stored value at the next grid time
        nxt = np.searchsorted(ep.km_time.values, ax.get_xticks() - 1e-9)
        stored = np.append(ep.at_risk_pfs.sel(arm=arm).values, 0)[nxt]
        assert row == [str(int(n)) for n in stored]
    # at the grid times the stored numbers equal the exact ones
    exact = plot_km(ep, "pfs", time_unit="day", source="patients")
    assert _texts(exact, "at risk pembro")[0] == str(N_PATIENTS)


def test_km_medians_arms_and_options(ep):
    ax = plot_km(ep, "os", median=True, arms=["none", "pembro"], at_risk=False)
    assert [c.get_gid() for c in _lines(ax, "km ")] == ["km none", "km pembro"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for arm, text in zip(["none", "pembro"], legend, strict=True):
        med = float(ep.median_os_day.sel(arm=arm))
        assert text == f"{arm}: " + (f"{med / DAYS_PER_MONTH:.1f}" if np.isfinite(med) else "not reached")
    # colours stay with the arm whatever the subset
    full = plot_km(ep, "os", at_risk=False)
    assert _lines(ax, "km pembro")[0].get_color() == _lines(full, "km pembro")[0].get_color()


# ----------------------------------------------------------------------------- waterfall
def test_waterfall_one_bar_per_patient_sorted_descending(ep):
    ax = plot_waterfall(ep, arm="sbrt+pembro")
    heights = np.array([p.get_height() for p in ax.patches])
    values = ep.best_percent_change.sel(arm="sbrt+pembro").values
    values = values[np.isfinite(values)]
    assert heights.size == values.size
    np.testing.assert_allclose(heights, np.sort(values)[::-1])
    assert np.all(np.diff(heights) <= 0)
    # coloured by best overall response
    bor = ep.best_overall_response.sel(arm="sbrt+pembro").values.astype(str)
    order = np.argsort(-ep.best_percent_change.sel(arm="sbrt+pembro").values, kind="stable")
    expected = [
        matplotlib.colors.to_rgba(RESPONSE_COLOURS.get(c.removeprefix("i"), RESPONSE_COLOURS["NE"])) for c in bor[order]
    ]
    assert [p.get_facecolor() for p in ax.patches] == expected
    # RECIST reference lines at +20% and -30%
    refs = sorted(ln.get_ydata()[0] for ln in _lines(ax, "reference"))
    assert refs == [-30.0, 20.0]


def test_waterfall_labels_and_missing_patients():
    n = 5
    change = np.array([10.0, np.nan, -50.0, 35.0, -100.0])
    ep = xr.Dataset(
        {
            "best_percent_change": (("arm", "patient"), change[None], {"long_name": "best shrinkage", "units": "pct"}),
            "best_overall_response": (("arm", "patient"), np.array([["SD", "NE", "PR", "iCPD", "CR"]])),
        },
        coords={"arm": ["a"], "patient": ("patient", np.arange(n), {"long_name": "subject", "units": "1"})},
    )
    ax = plot_waterfall(ep)
    assert ax.get_ylabel() == "best shrinkage [pct]"
    assert ax.get_xlabel().startswith("subject [1]")
    assert [p.get_height() for p in ax.patches] == [35.0, 10.0, -50.0, -100.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "0", "2", "4"]
    assert "1 without measurable disease" in ax.get_title()
    assert ax.patches[0].get_facecolor() == matplotlib.colors.to_rgba(RESPONSE_COLOURS["CPD"])


# ----------------------------------------------------------------------------- spider
def test_spider_one_line_per_patient(ep):
    ax = plot_spider(ep, arm="pembro")
    lines = _lines(ax, "patient ")
    assert len(lines) == N_PATIENTS
    assert [ln.get_gid() for ln in lines] == [f"patient {p}" for p in ep.patient.values]
    pct = ep.percent_change.sel(arm="pembro").values
    resp = ep.response.sel(arm="pembro").values.astype(str)
    for i, ln in enumerate(lines):
        np.testing.assert_allclose(ln.get_xdata(), ep.visit_day.values / DAYS_PER_MONTH)
        y = np.asarray(ln.get_ydata(), float)
        assert np.all(np.isnan(y[resp[i] == "NA"]))  # stops at progression
        scored = (resp[i] != "NA") & (ep.visit_day.values <= float(ep.death_day.sel(arm="pembro")[i]))
        np.testing.assert_allclose(y[scored], pct[i][scored])
    every = plot_spider(ep, arm="pembro", after_progression=True, time_unit="day")
    assert every.get_xlabel() == label(ep.visit_day)
    assert sorted(ln.get_ydata()[0] for ln in _lines(every, "reference")) == [-30.0, 20.0]


def test_spider_labels_from_attributes(ep):
    ep2 = ep.copy()
    ep2["percent_change"].attrs.update(long_name="size change", units="percent")
    ep2["visit_day"].attrs.update(long_name="imaging day", units="day")
    ax = plot_spider(ep2, time_unit="week")
    assert ax.get_ylabel() == "size change [percent]"
    assert ax.get_xlabel() == "imaging day [week]"


# ----------------------------------------------------------------------------- swimmer
@pytest.mark.parametrize("max_patients", [1, 5, N_PATIENTS, 100])
def test_swimmer_respects_max_patients(ep, max_patients):
    ax = plot_swimmer(ep, arm="sbrt+pembro", max_patients=max_patients)
    n = min(max_patients, N_PATIENTS)
    assert len(ax.patches) == n
    widths = np.array([p.get_width() for p in ax.patches])
    assert np.all(np.diff(widths) >= 0)  # shortest at the bottom
    shown = sorted(int(t.get_text()) for t in ax.get_yticklabels())
    assert shown == list(range(n))  # the first n patients
    os_month = ep.os_day.sel(arm="sbrt+pembro").values[:n] / DAYS_PER_MONTH
    np.testing.assert_allclose(widths, np.sort(os_month))


def test_swimmer_markers_and_labels(ep):
    arm = "pembro"
    ax = plot_swimmer(ep, arm=arm, time_unit="day")
    assert ax.get_xlabel() == label(ep.os_day)
    assert ax.get_ylabel() == label(ep.patient)
    start = float(ep.attrs["start_day"])
    os_day = ep.os_day.sel(arm=arm).values
    death = _lines(ax, "death")
    n_deaths = int(ep.os_event.sel(arm=arm).sum())
    assert (len(death[0].get_xdata()) if death else 0) == n_deaths
    if death:
        expected = np.sort(ep.death_day.sel(arm=arm).values[ep.os_event.sel(arm=arm).values] - start)
        np.testing.assert_allclose(np.sort(death[0].get_xdata()), expected)
    censored = _lines(ax, "censored")
    assert (len(censored[0].get_xdata()) if censored else 0) == N_PATIENTS - n_deaths
    progression = _lines(ax, "progression")
    if progression:
        assert np.all(progression[0].get_xdata() <= os_day.max() + 1e-9)
    pfs = plot_swimmer(ep, arm=arm, endpoint="pfs")
    np.testing.assert_allclose(
        sorted(p.get_width() for p in pfs.patches), np.sort(ep.pfs_day.sel(arm=arm).values) / DAYS_PER_MONTH
    )
    assert pfs.get_xlabel() == label(ep.pfs_day, units="month")


# ----------------------------------------------------------------------------- lesion trajectories
def test_lesion_trajectories_irradiated_solid(sim):
    ax = plot_lesion_trajectories(sim, arm="sbrt+pembro", patient=2)
    dose = sim.rt_dose_gy.sel(arm="sbrt+pembro").values
    assert dose[0] > 0 and np.all(dose[1:] == 0)
    lines = ax.get_lines()
    assert len(lines) == sim.sizes["lesion"]
    for ln, d in zip(lines, dose, strict=True):
        if d > 0:
            assert ln.get_linestyle() == "-" and "irradiated" in ln.get_label()
            assert "not irradiated" not in ln.get_label()
        else:
            assert ln.get_linestyle() == "--" and "not irradiated" in ln.get_label()
    np.testing.assert_allclose(
        lines[0].get_ydata(), sim.lesion_diameter.sel(arm="sbrt+pembro", patient=2, lesion=0).values
    )
    assert ax.get_xlabel() == label(sim.time)
    assert ax.get_ylabel() == label(sim.lesion_diameter)
    # no irradiated lesion in the drug-only arm
    assert all(ln.get_linestyle() == "--" for ln in plot_lesion_trajectories(sim, arm="pembro").get_lines())


# ----------------------------------------------------------------------------- bad arguments
def test_unknown_arm_suggests(sim, ep):
    for call in (
        lambda: plot_waterfall(ep, arm="pembo"),
        lambda: plot_spider(ep, arm="pembo"),
        lambda: plot_swimmer(ep, arm="pembo"),
        lambda: plot_km(ep, arms=["pembo"]),
        lambda: plot_lesion_trajectories(sim, arm="pembo"),
    ):
        with pytest.raises(ParameterError, match=r"unknown arm 'pembo'; did you mean 'pembro'"):
            call()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ep: plot_km(ep, "pfs_day"), r"unknown endpoint 'pfs_day'"),
        (lambda ep: plot_km(ep, "orr"), r"unknown endpoint 'orr'"),
        (lambda ep: plot_swimmer(ep, endpoint="ps"), r"unknown endpoint 'ps'"),
        (lambda ep: plot_km(ep, time_unit="months"), r"unknown time_unit 'months'; did you mean 'month'"),
        (lambda ep: plot_km(ep, source="lifelines"), r"unknown source 'lifelines'"),
        (lambda ep: plot_spider(ep, time_unit="hour"), r"unknown time_unit 'hour'"),
        (lambda ep: plot_swimmer(ep, max_patients=0), r"max_patients must be an integer >= 1, got 0"),
        (lambda ep: plot_swimmer(ep, max_patients=2.5), r"max_patients must be an integer >= 1"),
        (lambda ep: plot_km(ep[["best_percent_change"]]), r"dataset lacks 'km_pfs'"),
        (lambda ep: plot_waterfall(ep[["km_pfs"]]), r"dataset lacks 'best_percent_change'"),
    ],
)
def test_bad_arguments_raise_parameter_error(ep, call, match):
    with pytest.raises(ParameterError, match=match):
        call(ep)
    assert not plt.get_fignums()  # validated before a figure is created


def test_lesion_trajectories_bad_patient_and_variable(sim):
    with pytest.raises(ParameterError, match="patient 99 is not in the dataset"):
        plot_lesion_trajectories(sim, patient=99)
    with pytest.raises(ParameterError, match="dataset lacks 'diameter'"):
        plot_lesion_trajectories(sim, variable="diameter")


# ----------------------------------------------------------------------------- report figure helpers
def test_new_figure_is_not_managed_by_pyplot():
    from abscopal.plot import new_figure

    fig = new_figure(4.0, 2.5)
    assert tuple(fig.get_size_inches()) == (4.0, 2.5)
    assert fig.get_layout_engine() is not None
    assert fig.canvas.manager is None


def test_figure_png_renders_and_closes():
    from abscopal.plot import figure_png, message_figure, new_figure, png_data_uri

    fig = message_figure("no data here")
    assert [t.get_text() for t in fig.axes[0].texts] == ["no data here"]
    png = figure_png(fig, dpi=50)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and not fig.axes  # closed: cleared
    small = figure_png(new_figure(2.0, 1.0), dpi=50)
    assert int.from_bytes(small[16:20], "big") == 100  # width in pixels: 2 in at 50 dpi
    managed = plt.figure()
    figure_png(managed)
    assert managed.number not in plt.get_fignums()  # a pyplot figure is closed in pyplot too
    assert png_data_uri(b"abc") == "data:image/png;base64,YWJj"
