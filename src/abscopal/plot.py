"""Plots of simulation results (matplotlib). Each takes data and ``ax=None`` and returns the Axes.

Axis labels come from the variables' ``long_name`` and ``units`` attributes (:func:`label`).

Simulation dataset (:func:`abscopal.simulate`):

* :func:`plot_lesion_trajectories`: per-lesion trajectories of one patient, irradiated lesions solid;
* :func:`plot_median_burden`: median and interquartile band of a per-patient variable per arm.

Endpoints dataset (:func:`abscopal.score`):

* :func:`plot_km`: Kaplan-Meier curves per arm with a numbers-at-risk table;
* :func:`plot_waterfall`: best percentage change of the sum of diameters, one bar per patient;
* :func:`plot_spider`: percentage change of the sum of diameters over the scans, one line per patient;
* :func:`plot_swimmer`: one bar per patient to its OS (or PFS) time, with progression, new-lesion and
  death markers and an arrow for censored patients.

Every function draws on ``ax`` when given (else on a new figure), keeps no state and does not call
``plt.show``. Times of the endpoint plots are shown in months (1 month = 30.44 d, the mean calendar month)
or days (``time_unit``).

Figures of the reports (:mod:`abscopal.studies.report`, :mod:`abscopal.calibrate.report`), without pyplot or
matplotlib's global state:

* :func:`new_figure`: a :class:`matplotlib.figure.Figure` with constrained layout;
* :func:`message_figure`: a panel with only a sentence (e.g. "no data" in place of a plot);
* :func:`figure_png`: PNG bytes of a figure (Agg), closing it;
* :func:`png_data_uri`: PNG bytes as a ``data:image/png;base64,...`` URI for a self-contained HTML page.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .endpoints.survival import DAYS_PER_MONTH
from .errors import ParameterError, unknown_name_message

__all__ = [
    "RESPONSE_COLOURS",
    "figure_png",
    "label",
    "message_figure",
    "new_figure",
    "plot_km",
    "plot_lesion_trajectories",
    "plot_median_burden",
    "plot_spider",
    "plot_swimmer",
    "plot_waterfall",
    "png_data_uri",
]

#: Days per display time unit.
TIME_UNITS = {"day": 1.0, "week": 7.0, "month": DAYS_PER_MONTH, "year": 365.25}

#: Colour of each best-overall-response code (iRECIST codes use the colour of the bare code).
RESPONSE_COLOURS = {
    "CR": "#1a6e2e",
    "PR": "#5ab35f",
    "SD": "#f2b134",
    "NN": "#c9b27c",
    "UPD": "#ef7f3a",
    "PD": "#c8281e",
    "CPD": "#c8281e",
    "NE": "#9e9e9e",
}
_RESPONSE_NAMES = {
    "CR": "complete response",
    "PR": "partial response",
    "SD": "stable disease",
    "NN": "non-CR/non-PD",
    "UPD": "unconfirmed progression",
    "PD": "progressive disease",
    "CPD": "confirmed progression",
    "NE": "not evaluable",
}
_RECIST_LINES = ((20.0, "PD +20%"), (-30.0, "PR -30%"))


def label(da: xr.DataArray, *, units: str | None = None) -> str:
    """``"long_name [units]"`` of a DataArray; ``units`` overrides the stored units (e.g. after conversion)."""
    return f"{da.attrs.get('long_name', da.name)} [{units if units is not None else da.attrs.get('units', '?')}]"


# ----------------------------------------------------------------------------- report figures
def new_figure(width: float, height: float) -> Any:
    """A :class:`matplotlib.figure.Figure` of ``width`` x ``height`` inches with constrained layout (not pyplot)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def message_figure(text: str, width: float = 6.0, height: float = 2.0) -> Any:
    """A figure holding only ``text``, centred and wrapped: the panel shown where there is nothing to plot."""
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def figure_png(fig: Any, *, dpi: float = 100) -> bytes:
    """PNG bytes of ``fig`` (rendered by Agg at ``dpi``); the figure is closed afterwards.

    Layout and missing-glyph warnings are silenced: a report of a finished study or fit must not fail on them.
    Closing clears the figure and, for a pyplot figure, removes it from pyplot.
    """
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.savefig(buf, format="png", dpi=dpi)
    finally:
        if getattr(fig.canvas, "manager", None) is not None:  # made by pyplot
            import matplotlib.pyplot as plt

            plt.close(fig)
        fig.clear()
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of the PNG bytes ``png`` (an ``<img src>`` inside a self-contained page)."""
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


# ----------------------------------------------------------------------------- helpers
def _axes(ax: Any, figsize: tuple[float, float] = (6, 4)) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _require(ds: xr.Dataset, names: Sequence[str], what: str) -> None:
    for name in names:
        if name not in ds.variables:
            raise ParameterError(
                f"dataset lacks {name!r}, needed for {what}; pass the dataset returned by "
                "abscopal.score (or abscopal.simulate for lesion plots)"
            )


def _arm(ds: xr.Dataset, arm: str | None) -> str:
    """The arm to plot: ``arm`` checked against the dataset's arms, or the first arm."""
    if "arm" not in ds.coords:
        raise ParameterError("dataset has no 'arm' coordinate; pass a simulation or endpoints dataset")
    arms = [str(a) for a in ds.arm.values]
    if arm is None:
        return arms[0]
    if str(arm) not in arms:
        raise ParameterError("arm: " + unknown_name_message("arm", str(arm), arms))
    return str(arm)


def _choice(kind: str, value: str, known: Sequence[str]) -> str:
    if value not in known:
        raise ParameterError(f"{kind}: " + unknown_name_message(kind, str(value), known))
    return value


def _time_scale(time_unit: str) -> float:
    return TIME_UNITS[_choice("time_unit", time_unit, tuple(TIME_UNITS))]


def _bare(code: str) -> str:
    """Response code without the iRECIST ``i`` prefix."""
    code = str(code)
    return code[1:] if code.startswith("i") and code[1:] in RESPONSE_COLOURS else code


def _response_colour(code: str) -> str:
    return RESPONSE_COLOURS.get(_bare(code), RESPONSE_COLOURS["NE"])


def _response_legend(
    ax: Any,
    codes: Sequence[str] | np.ndarray,
    *,
    outside: bool,
    title: str = "best overall response",
    extra: Sequence[Any] = (),
) -> None:
    """Legend with one patch per response code present (in RESPONSE_COLOURS order), at the best
    place inside the axes or outside to the right."""
    from matplotlib.patches import Patch

    present = {str(c) for c in codes}
    handles = []
    for bare in RESPONSE_COLOURS:
        shown = sorted(c for c in present if _bare(c) == bare)
        for code in shown:
            handles.append(Patch(color=RESPONSE_COLOURS[bare], label=f"{code} ({_RESPONSE_NAMES[bare]})"))
    others = sorted(c for c in present if _bare(c) not in RESPONSE_COLOURS)
    handles += [Patch(color=RESPONSE_COLOURS["NE"], label=c) for c in others]
    where = {"loc": "upper left", "bbox_to_anchor": (1.08, 1.0)} if outside else {"loc": "best"}
    ax.legend(handles=[*handles, *extra], fontsize="small", title=title, title_fontsize="small", frameon=False, **where)


def _start_day(ep: xr.Dataset) -> float:
    """Simulation start (the zero of ``pfs_day``/``os_day``/``km_time``) on the simulation time axis."""
    if "start_day" in ep.attrs:
        return float(ep.attrs["start_day"])
    return float(ep.visit_day.values[0]) if "visit_day" in ep.coords else 0.0


def _points_below(ax: Any) -> float:
    """Height in points from the bottom of the axes to below its x tick labels and x label."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties

    def pt(size: Any) -> float:
        return float(FontProperties(size=size).get_size_in_points())

    tick = float(rcParams["xtick.major.size"]) + float(rcParams["xtick.major.pad"])
    tick += 1.25 * pt(rcParams["xtick.labelsize"])
    xlabel = float(rcParams["axes.labelpad"]) + 1.25 * pt(rcParams["axes.labelsize"]) if ax.get_xlabel() else 0.0
    return tick + xlabel + 6.0


def _reference_lines(ax: Any) -> None:
    """Dashed RECIST lines at +20% and -30%, labelled just outside the right edge of the axes."""
    for level, text in _RECIST_LINES:
        ax.axhline(level, color="0.3", linestyle="--", linewidth=0.8, gid=f"reference {text}")
        ax.annotate(
            text,
            xy=(1.0, level),
            xycoords=ax.get_yaxis_transform(),
            xytext=(3, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize="x-small",
            color="0.3",
            annotation_clip=False,
        )


# ----------------------------------------------------------------------------- simulation dataset
def plot_lesion_trajectories(
    ds: xr.Dataset, *, arm: str | None = None, patient: int = 0, variable: str = "lesion_diameter", ax: Any = None
) -> Any:
    """Per-lesion trajectories of one patient: irradiated lesions solid, the others dashed.

    A lesion is irradiated in ``arm`` when ``rt_dose_gy`` (arm, lesion) is > 0; without
    ``rt_dose_gy`` in the dataset every lesion is drawn solid.
    """
    arm = _arm(ds, arm)
    _require(ds, (variable,), "plot_lesion_trajectories")
    if patient not in ds.patient.values:
        raise ParameterError(
            f"patient {patient!r} is not in the dataset; give one of {ds.patient.values[0]}..{ds.patient.values[-1]}"
        )
    ax = _axes(ax)
    da = ds[variable].sel(arm=arm, patient=patient)
    dose = ds.rt_dose_gy.sel(arm=arm) if "rt_dose_gy" in ds else None
    for i, lesion in enumerate(da.lesion.values):
        if dose is None:
            style, text = "-", f"lesion {lesion}"
        elif float(dose.sel(lesion=lesion)) > 0:
            style, text = "-", f"lesion {lesion}, irradiated ({float(dose.sel(lesion=lesion)):g} Gy)"
        else:
            style, text = "--", f"lesion {lesion}, not irradiated"
        ax.plot(ds.time, da.sel(lesion=lesion), linestyle=style, color=f"C{i}", label=text)
    ax.set_xlabel(label(ds.time))
    ax.set_ylabel(label(da))
    ax.set_title(f"{arm}, patient {patient}")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_median_burden(ds: xr.Dataset, *, variable: str = "total_burden", ax: Any = None) -> Any:
    """Median (and 25-75% band) of a per-patient variable over time, one line per arm."""
    _require(ds, (variable,), "plot_median_burden")
    ax = _axes(ax)
    for arm in ds.arm.values:
        da = ds[variable].sel(arm=arm)
        q = np.nanquantile(da.values, [0.25, 0.5, 0.75], axis=0)
        ax.plot(ds.time, q[1], label=str(arm))
        ax.fill_between(ds.time, q[0], q[2], alpha=0.2)
    ax.set_xlabel(label(ds.time))
    ax.set_ylabel("median " + label(ds[variable]))
    ax.set_yscale("log")
    ax.legend(frameon=False)
    return ax


# ----------------------------------------------------------------------------- Kaplan-Meier
def _km_curve(ep: xr.Dataset, endpoint: str, arm: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Step points ``(time_day, survival)`` of one arm, its censoring times (days; none on the grid)
    and its numbers-at-risk function of time (days).

    ``source="patients"`` refits the product-limit estimate from the per-patient times (exact steps
    and exact numbers at risk at any time); ``"grid"`` uses the stored ``km_<endpoint>`` and
    ``at_risk_<endpoint>`` on the ``km_time`` grid: survival by step lookup (last grid time <= t),
    numbers at risk at the next grid time >= t (both exact when the times fall on the grid).
    """
    if source == "patients":
        from .endpoints.survival import kaplan_meier

        fit = kaplan_meier(
            ep[f"{endpoint}_day"].sel(arm=arm).values, ep[f"{endpoint}_event"].sel(arm=arm).values.astype(bool)
        )
        censored = np.asarray(fit.time_day)[np.asarray(fit.censored) > 0]
        return np.asarray(fit.time_day), np.asarray(fit.survival), censored, fit.numbers_at_risk
    grid = ep.km_time.values
    surv = ep[f"km_{endpoint}"].sel(arm=arm).values
    risk = np.append(ep[f"at_risk_{endpoint}"].sel(arm=arm).values, 0.0)

    def at_risk(t: np.ndarray) -> np.ndarray:
        # #{T >= t} is left-continuous: between grid times it equals its value at the next grid
        # time (exact when all event and censoring times are grid times, as scan-detected PFS)
        return risk[np.searchsorted(grid, t - 1e-9, side="left")]

    return grid, surv, np.empty(0), at_risk


def plot_km(
    ep: xr.Dataset,
    endpoint: str = "pfs",
    *,
    ax: Any = None,
    at_risk: bool = True,
    time_unit: str = "month",
    median: bool = False,
    censor_marks: bool = True,
    arms: Sequence[str] | None = None,
    source: str = "auto",
) -> Any:
    """Kaplan-Meier curves, one step line per arm, with an optional numbers-at-risk table.

    Parameters
    ----------
    ep
        Endpoints dataset (:func:`abscopal.score`).
    endpoint
        ``"pfs"`` or ``"os"``.
    ax
        Axes to draw on; default a new figure. With ``at_risk`` the table is drawn below the
        axes (below the x label), so leave room under the axes when passing ``ax``.
    at_risk
        Draw the numbers at risk (``#{T_i >= t}``) of each arm at the x tick times.
    time_unit
        ``"month"`` (30.44 d), ``"day"``, ``"week"`` or ``"year"``.
    median
        Draw dotted lines at S = 0.5 down to each arm's median. The legend always shows the medians.
    censor_marks
        Mark censoring times with ``|`` (only with the per-patient times, see ``source``).
    arms
        Arms to draw (default all, in the dataset's order).
    source
        ``"patients"``: refit the curves from the per-patient ``<endpoint>_day``/``<endpoint>_event``
        (exact steps and numbers at risk); ``"grid"``: the stored ``km_<endpoint>`` and
        ``at_risk_<endpoint>`` on the ``km_time`` grid (scan days), numbers at risk by step lookup;
        ``"auto"`` (default): ``"patients"`` when the per-patient variables are present.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _choice("endpoint", endpoint, ("pfs", "os"))
    _choice("source", source, ("auto", "patients", "grid"))
    scale = _time_scale(time_unit)
    _require(ep, (f"km_{endpoint}", f"at_risk_{endpoint}", "km_time"), "plot_km")
    if source == "auto":
        source = "patients" if f"{endpoint}_day" in ep and f"{endpoint}_event" in ep else "grid"
    elif source == "patients":
        _require(ep, (f"{endpoint}_day", f"{endpoint}_event"), "plot_km(source='patients')")
    names = [str(a) for a in ep.arm.values] if arms is None else [_arm(ep, a) for a in arms]
    colours = {str(a): f"C{i}" for i, a in enumerate(ep.arm.values)}
    if ax is None:
        ax = _axes(None, figsize=(7.0, 4.2 + (0.22 * (len(names) + 1) if at_risk else 0.0)))
    t_end = float(ep.km_time.values[-1])
    risk_of = {}
    for name in names:
        t, s, cens, risk_of[name] = _km_curve(ep, endpoint, name, source)
        if t[-1] < t_end:  # hold the last value to the end of follow-up
            t, s = np.append(t, t_end), np.append(s, s[-1])
        med = float(ep[f"median_{endpoint}_day"].sel(arm=name)) if f"median_{endpoint}_day" in ep else np.nan
        if not np.isfinite(med) and (s <= 0.5 + 1e-12).any():
            med = float(t[np.argmax(s <= 0.5 + 1e-12)])
        digits = 0 if time_unit == "day" else 1
        text = f"{med / scale:.{digits}f}" if np.isfinite(med) else "not reached"
        ax.step(t / scale, s, where="post", color=colours[name], label=f"{name}: {text}", gid=f"km {name}")
        if censor_marks and cens.size:
            s_cens = s[np.searchsorted(t, cens, side="right") - 1]
            ax.plot(
                cens / scale,
                s_cens,
                linestyle="none",
                marker="|",
                markersize=5,
                color=colours[name],
                gid=f"censored {name}",
            )
        if median and np.isfinite(med):
            ax.plot([0, med / scale, med / scale], [0.5, 0.5, 0.0], linestyle=":", linewidth=0.8, color=colours[name])
    ax.set_xlim(0.0, t_end / scale)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(label(ep.km_time, units=time_unit))
    ax.set_ylabel(label(ep[f"km_{endpoint}"]))
    ax.legend(frameon=False, loc="upper right", fontsize="small", title=f"median [{time_unit}]", title_fontsize="small")
    from matplotlib.ticker import MaxNLocator

    ticks = np.asarray(MaxNLocator(nbins=8, steps=[1, 2, 3, 6, 10]).tick_values(0.0, t_end / scale), dtype=float)
    ticks = ticks[(ticks >= -1e-9) & (ticks <= t_end / scale + 1e-9)]
    ax.set_xticks(ticks)
    if at_risk:
        _at_risk_table(ax, ticks, scale, names, risk_of, colours)
    return ax


def _at_risk_table(
    ax: Any, ticks: np.ndarray, scale: float, names: Sequence[str], risk_of: dict[str, Any], colours: dict[str, str]
) -> None:
    """Numbers at risk under the x label: a header row, then one row per arm at the tick times."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties

    fs = float(FontProperties(size="small").get_size_in_points())
    row = 1.45 * fs
    counts = {name: np.asarray(risk_of[name](ticks * scale)) for name in names}
    widest = max((len(f"{round(float(n))}") for c in counts.values() for n in c), default=1)
    gap = 0.5 * 0.65 * fs * widest + 0.5 * fs  # half the widest count at x = 0, plus a space
    top = _points_below(ax)
    blended = ax.get_xaxis_transform()  # x in data, y in axes fraction
    ax.annotate(
        "number at risk",
        xy=(0.0, 0.0),
        xycoords="axes fraction",
        xytext=(-gap, -top),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize="small",
        fontweight="bold",
        annotation_clip=False,
        gid="at risk header",
    )
    for r, name in enumerate(names):
        y = -top - (r + 1) * row
        ax.annotate(
            name,
            xy=(0.0, 0.0),
            xycoords="axes fraction",
            xytext=(-gap, y),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize="small",
            color=colours[name],
            annotation_clip=False,
            gid=f"at risk label {name}",
        )
        for tick, n in zip(ticks, counts[name], strict=True):
            ax.annotate(
                f"{round(float(n))}",
                xy=(tick, 0.0),
                xycoords=blended,
                xytext=(0.0, y),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize="small",
                color=rcParams["text.color"],
                annotation_clip=False,
                gid=f"at risk {name}",
            )


# ----------------------------------------------------------------------------- response plots
def plot_waterfall(ep: xr.Dataset, *, arm: str | None = None, ax: Any = None, reference_lines: bool = True) -> Any:
    """Waterfall plot: one bar per patient of ``best_percent_change``, sorted descending.

    Bars are coloured by ``best_overall_response``; dashed lines at +20% (RECIST progression) and
    -30% (partial response). Patients without measurable disease (NaN change) have no bar; the
    title gives their number. ``arm`` defaults to the first arm.
    """
    arm = _arm(ep, arm)
    _require(ep, ("best_percent_change", "best_overall_response"), "plot_waterfall")
    ax = _axes(ax, figsize=(7.0, 4.0))
    change = ep.best_percent_change.sel(arm=arm)
    bor = ep.best_overall_response.sel(arm=arm).values.astype(str)
    values = change.values.astype(float)
    keep = np.flatnonzero(np.isfinite(values))
    order = keep[np.argsort(-values[keep], kind="stable")]
    x = np.arange(order.size)
    ax.bar(x, values[order], width=0.85, color=[_response_colour(c) for c in bor[order]], gid="waterfall")
    ax.axhline(0.0, color="black", linewidth=0.8)
    if reference_lines:
        _reference_lines(ax)
    ax.set_xlim(-0.6, max(order.size, 1) - 0.4)
    if order.size <= 40:
        ax.set_xticks(x, [str(p) for p in ep.patient.values[order]], fontsize="x-small", rotation=90)
    else:
        ax.set_xticks([])
    ax.set_xlabel(label(ep.patient) + ", sorted by best change")
    ax.set_ylabel(label(change))
    missing = values.size - keep.size
    ax.set_title(f"{arm}: {keep.size} patients" + (f" ({missing} without measurable disease)" if missing else ""))
    _response_legend(ax, bor[order], outside=False)
    return ax


def plot_spider(
    ep: xr.Dataset,
    *,
    arm: str | None = None,
    ax: Any = None,
    time_unit: str = "month",
    after_progression: bool = False,
    reference_lines: bool = True,
) -> Any:
    """Spider plot: ``percent_change`` of the sum of diameters at the scans, one line per patient.

    Lines are coloured by the patient's best overall response. By default a trajectory stops at
    progression (scans coded ``"NA"``) and at death, as in trials; ``after_progression=True``
    draws every scan up to death. ``arm`` defaults to the first arm.
    """
    arm = _arm(ep, arm)
    _require(ep, ("percent_change", "visit_day"), "plot_spider")
    scale = _time_scale(time_unit)
    ax = _axes(ax, figsize=(8.5, 4.0))
    pct = ep.percent_change.sel(arm=arm)
    days = ep.visit_day.values.astype(float)
    bor = (
        ep.best_overall_response.sel(arm=arm).values.astype(str)
        if "best_overall_response" in ep
        else np.full(ep.sizes["patient"], "NE")
    )
    resp = ep.response.sel(arm=arm).values.astype(str) if "response" in ep else None
    death = ep.death_day.sel(arm=arm).values if "death_day" in ep else np.full(ep.sizes["patient"], np.inf)
    for i, patient in enumerate(ep.patient.values):
        y = pct.sel(patient=patient).values.astype(float).copy()
        if not after_progression and resp is not None:
            y[resp[i] == "NA"] = np.nan
        y[days > death[i]] = np.nan
        ax.plot(
            days / scale,
            y,
            color=_response_colour(bor[i]),
            linewidth=1.0,
            marker="o",
            markersize=2.5,
            alpha=0.85,
            gid=f"patient {patient}",
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    if reference_lines:
        _reference_lines(ax)
    ax.set_xlabel(label(ep.visit_day, units=time_unit))
    ax.set_ylabel(label(pct))
    ax.set_title(f"{arm}: {ep.sizes['patient']} patients")
    _response_legend(ax, bor, outside=True)
    return ax


def plot_swimmer(
    ep: xr.Dataset,
    *,
    arm: str | None = None,
    ax: Any = None,
    max_patients: int = 30,
    endpoint: str = "os",
    time_unit: str = "month",
) -> Any:
    """Swimmer plot: one horizontal bar per patient to its OS (or PFS) time, longest on top.

    Bars are coloured by best overall response; markers show RECIST progression, the first new
    lesion and death within the bar; an arrow marks patients censored (alive, or progression-free,
    at the end of follow-up). The first ``max_patients`` patients of ``arm`` (default the first
    arm) are drawn, in patient order, then sorted by time.
    """
    from matplotlib.lines import Line2D

    arm = _arm(ep, arm)
    _choice("endpoint", endpoint, ("pfs", "os"))
    scale = _time_scale(time_unit)
    if isinstance(max_patients, bool) or not isinstance(max_patients, int | np.integer) or max_patients < 1:
        raise ParameterError(f"max_patients must be an integer >= 1, got {max_patients!r}")
    _require(ep, (f"{endpoint}_day", f"{endpoint}_event"), "plot_swimmer")
    sel = ep.isel(patient=slice(0, int(max_patients))).sel(arm=arm)
    n = sel.sizes["patient"]
    if ax is None:
        ax = _axes(None, figsize=(8.5, 1.6 + 0.2 * n))
    start = _start_day(ep)
    end = sel[f"{endpoint}_day"].values.astype(float)
    event = sel[f"{endpoint}_event"].values.astype(bool)
    bor = sel.best_overall_response.values.astype(str) if "best_overall_response" in sel else np.full(n, "NE")
    order = np.argsort(end, kind="stable")  # shortest at the bottom (y = 0), longest on top
    y = np.arange(n)
    ax.barh(y, end[order] / scale, height=0.7, color=[_response_colour(c) for c in bor[order]], gid="swimmer")
    handles = []
    marks = (
        ("progression_day", "v", "black", "progression"),
        ("new_lesion_day", "*", "#6a3d9a", "new lesion"),
        ("death_day", "X", "black", "death"),
    )
    for var, marker, colour, text in marks:
        if var not in sel:
            continue
        t = sel[var].values.astype(float)[order] - start  # simulation time -> time from start
        shown = np.isfinite(t) & (t <= end[order] + 1e-9)
        if var == "death_day" and endpoint == "os":
            shown &= event[order]
        if shown.any():
            ax.plot(
                t[shown] / scale,
                y[shown],
                linestyle="none",
                marker=marker,
                color=colour,
                markersize=6 if marker != "*" else 8,
                gid=text,
            )
        handles.append(Line2D([], [], linestyle="none", marker=marker, color=colour, label=text))
    cens = ~event[order]
    if cens.any():
        ax.plot(
            end[order][cens] / scale, y[cens], linestyle="none", marker=">", color="0.25", markersize=6, gid="censored"
        )
    handles.append(
        Line2D(
            [],
            [],
            linestyle="none",
            marker=">",
            color="0.25",
            label="alive at follow-up end" if endpoint == "os" else "progression-free at end",
        )
    )
    ax.set_yticks(y, [str(p) for p in sel.patient.values[order]], fontsize="x-small")
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(0.0, max(float(np.nanmax(end)) / scale, 1e-9) * 1.04)
    ax.set_xlabel(label(sel[f"{endpoint}_day"], units=time_unit))
    ax.set_ylabel(label(ep.patient))
    total = ep.sizes["patient"]
    ax.set_title(f"{arm}: {n} of {total} patients" if n < total else f"{arm}: {n} patients")
    _response_legend(ax, bor, outside=True, extra=handles)
    return ax
