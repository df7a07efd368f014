"""Per-patient exports of a result: long tables (CSV, Parquet) and a NONMEM-style PK dataset.

* :func:`long_table`: every numeric value of a ``simulate`` (or ``endpoints``) result, one row per value, with
  the columns ``arm, patient, lesion, time, variable, value, units`` (``patient`` / ``lesion`` / ``time`` empty
  where the variable has no such dimension; ``time`` in days; for an endpoints dataset, visit variables take the
  visit's scan day and Kaplan-Meier curves their ``km_time``).
* :func:`patient_table`: one row per arm x patient: the per-patient parameter values a ``simulate`` result stores
  (``parameter_value``: every model parameter, the population's draws and covariates such as
  ``body_weight_kg`` and ``pdl1_tps`` included) and the per-patient variables (``rt_start_day``; for an
  endpoints dataset the best response, PFS, OS, ...). Column names are ``name [units]``.
* :func:`nonmem_table`: the drug PK as a NONMEM-style event dataset (``ID TIME EVID AMT CMT DV MDV`` and
  covariates); :func:`nonmem_concentrations` recomputes the concentrations from that table alone.
* :func:`write_table`: CSV (floats at full ``repr`` precision, so a re-read gives the same numbers) or Parquet
  (needs pyarrow: ``pip install abscopal[export]``), written atomically.

The module reads results by their dimensions and attributes only (no simulation, no scoring); it prints nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import AbscopalError
from .io import write_atomic
from .treatment.drugs import DrugRegimen

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = [
    "LONG_COLUMNS",
    "NONMEM_COLUMNS",
    "TABLE_FORMATS",
    "long_table",
    "nonmem_concentrations",
    "nonmem_table",
    "patient_table",
    "read_table",
    "regimens_from_provenance",
    "write_table",
]

LONG_COLUMNS = ("arm", "patient", "lesion", "time", "variable", "value", "units")
"""Columns of :func:`long_table`."""
NONMEM_COLUMNS = ("ID", "TIME", "EVID", "AMT", "CMT", "DV", "MDV")
"""The first columns of :func:`nonmem_table` (covariates follow)."""
TABLE_FORMATS = ("csv", "parquet")
"""File formats of :func:`write_table`."""

_TIME_DIMS = {"time": "time", "visit": "visit_day", "km_time": "km_time"}
"""Dimension -> the coordinate that gives its day (``time`` column of the long table)."""
_LONG_DIMS = {"arm", "patient", "lesion", *_TIME_DIMS}
_PK = {"CL": "pk_cl_l_per_day", "V1": "pk_vc_l", "Q": "pk_q_l_per_day", "V2": "pk_vp_l"}
_PK_TIME = {"CLEMAX": "pk_cl_time_emax", "CLT50": "pk_cl_time_t50_day", "CLHILL": "pk_cl_time_hill"}
_COVARIATES = {"WT": "body_weight_kg", "PDL1": "pdl1_tps"}
_HOURS = 24.0
_REGIMEN = re.compile(
    r"(?P<drug>[A-Za-z0-9_-]+) (?P<dose>\S+) (?P<unit>mg/kg|mg) q(?P<interval>\S+)d from day (?P<start>\S+) "
    r"for up to (?P<max>\S+) d(?:, at most (?P<n>\d+) doses)?$"
)


def _units(da: xr.DataArray) -> str:
    return str(da.attrs.get("units", ""))


def _require_arm(ds: xr.Dataset) -> None:
    if "arm" not in ds.dims:
        raise AbscopalError(
            "the dataset has no 'arm' dimension; pass a result written by abscopal simulate or endpoints"
        )


def long_table(ds: xr.Dataset) -> pd.DataFrame:
    """Every numeric variable of ``ds`` over (arm, patient, lesion, time) in long form (:data:`LONG_COLUMNS`).

    Variables with other dimensions (``parameter_value``: see :func:`patient_table`) and text variables (RECIST
    categories) are left out; booleans become 0/1. ``patient`` and ``lesion`` are nullable integers (``<NA>``
    where the variable has no such dimension), ``time`` is the day (NaN where it has none), ``units`` the
    variable's ``units`` attribute.
    """
    import pandas as pd

    _require_arm(ds)
    frames = []
    for name in ds.data_vars:
        da = ds[name]
        dims = set(da.dims)
        if "arm" not in dims or not dims <= _LONG_DIMS or da.dtype.kind not in "biuf":
            continue
        time_dim = next((d for d in da.dims if d in _TIME_DIMS), None)
        order = [d for d in ("arm", "patient", "lesion") if d in dims] + ([time_dim] if time_dim else [])
        da = da.transpose(*order)
        index = np.indices(da.shape).reshape(len(order), -1)
        cols: dict[str, object] = {}
        n = index.shape[1]
        for col in ("arm", "patient", "lesion"):
            if col in order:
                cols[col] = ds[col].values[index[order.index(col)]]
            else:
                cols[col] = [None] * n if col == "arm" else pd.array([pd.NA] * n, dtype="Int64")
        if time_dim is not None:
            cols["time"] = np.asarray(ds[_TIME_DIMS[time_dim]].values, dtype=np.float64)[index[-1]]
        else:
            cols["time"] = np.full(n, np.nan)
        cols["variable"] = [str(name)] * n
        cols["value"] = np.asarray(da.values, dtype=np.float64).reshape(-1)
        cols["units"] = [_units(ds[name])] * n
        frames.append(pd.DataFrame(cols, columns=list(LONG_COLUMNS)))
    if not frames:
        raise AbscopalError("the dataset has no numeric per-arm variable to export")
    out = pd.concat(frames, ignore_index=True)
    out["arm"] = out["arm"].astype(str)
    for col in ("patient", "lesion"):
        out[col] = out[col].astype("Int64")
    return out


def patient_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per arm x patient: every variable over exactly (arm, patient) and every per-patient parameter value.

    Columns ``arm``, ``patient``, then ``name [units]``. A ``simulate`` result stores each patient's full
    parameter vector (``parameter_value``, with ``parameter_units``): the typical values, the population's
    random draws, covariates (``body_weight_kg``, ``pdl1_tps``, baseline lesion volumes) and the arm's drug PK,
    in that order of precedence already applied. An endpoints dataset has no parameters; its per-patient outcomes
    (best response, PFS, OS, events, lymphocyte nadir) are the columns.
    """
    import pandas as pd

    _require_arm(ds)
    if "patient" not in ds.dims:
        raise AbscopalError("the dataset has no 'patient' dimension; pass a result written by abscopal simulate")
    n_arm, n_pat = ds.sizes["arm"], ds.sizes["patient"]
    cols: dict[str, object] = {
        "arm": np.repeat(ds["arm"].values.astype(str), n_pat),
        "patient": pd.array(np.tile(ds["patient"].values, n_arm), dtype="Int64"),
    }
    for name in ds.data_vars:
        da = ds[name]
        if set(da.dims) == {"arm", "patient"}:
            cols[f"{name} [{_units(da)}]"] = da.transpose("arm", "patient").values.reshape(-1)
    if "parameter_value" in ds:
        pv = ds["parameter_value"].transpose("arm", "patient", "parameter").values.reshape(n_arm * n_pat, -1)
        units = ds["parameter_units"].values if "parameter_units" in ds.coords else [""] * pv.shape[1]
        for j, (p, u) in enumerate(zip(ds["parameter"].values, units, strict=True)):
            cols[f"{p} [{u}]"] = pv[:, j]
    return pd.DataFrame(cols)


# ---- NONMEM ----------------------------------------------------------------------------------------------------
def regimens_from_provenance(ds: xr.Dataset) -> dict[str, DrugRegimen | None]:
    """Each arm's drug regimen, rebuilt from the plan description stored in ``ds.attrs["provenance"]``.

    The description (:meth:`DrugRegimen.describe`) prints numbers with 6 significant digits;
    :func:`nonmem_table` checks the rebuilt doses against the stored concentrations. ``None`` for an arm
    without a drug. Raises :class:`AbscopalError` if the provenance is missing or a plan cannot be read.
    """
    try:
        arms = json.loads(ds.attrs["provenance"])["arms"]
    except (KeyError, TypeError, ValueError):
        raise AbscopalError(
            "the result has no readable provenance (attribute 'provenance'); pass a file written by abscopal "
            "simulate, or give the regimens to nonmem_table(ds, regimens=...)"
        ) from None
    out: dict[str, DrugRegimen | None] = {}
    for arm in ds["arm"].values.astype(str):
        plan = str(arms.get(arm, {}).get("plan", ""))
        m = _REGIMEN.search(plan.rsplit(" + ", 1)[-1])
        if m is None:
            if any(tag in plan for tag in (" mg q", " mg/kg q")):
                raise AbscopalError(
                    f"arm {arm!r}: cannot read the drug schedule from its plan {plan!r}; give the regimens to "
                    "nonmem_table(ds, regimens=...)"
                )
            out[arm] = None
            continue
        dose_key = "dose_mg_per_kg" if m["unit"] == "mg/kg" else "dose_mg"
        kwargs: dict[str, object] = {
            "drug": m["drug"],
            dose_key: float(m["dose"]),
            "interval_day": float(m["interval"]),
            "start_day": float(m["start"]),
            "max_duration_day": float(m["max"]),
            "n_doses": int(m["n"]) if m["n"] else None,
        }
        out[arm] = DrugRegimen(**kwargs)  # type: ignore[arg-type]
    return out


def nonmem_table(ds: xr.Dataset, regimens: Mapping[str, DrugRegimen | None] | None = None) -> pd.DataFrame:
    """The drug PK of a ``simulate`` result as a NONMEM-style dataset, one record per dose and per output time.

    Columns (all numeric, NONMEM conventions):

    ``ID``
        1, 2, ... over arm x patient (arm-major: ``ID = arm_index * n_patients + patient + 1``).
    ``TIME``
        hours since the first checkpoint-drug dose (the result's day 0), ``24 x day``.
    ``EVID``
        1 dose, 0 observation; at equal times the dose comes first (the stored concentration is post-dose).
    ``AMT``
        dose in mg (weight-based doses: mg/kg x ``WT``); 0 on observation records.
    ``CMT``
        1, the central compartment (IV bolus into it; two-compartment model, peripheral compartment 2).
    ``DV``
        serum concentration in mg/L (= ug/mL), abscopal's ``drug_concentration``; NaN on dose records (written
        ``.`` by :func:`write_table` with ``nonmem=True``).
    ``MDV``
        1 on dose records, 0 on observations.
    ``ARM``, ``PATIENT``
        arm index (0-based, the order of ``ds.arm``) and patient index.
    ``WT`` (kg), ``PDL1`` (tumour proportion score)
        covariates, when the model has them.
    ``CL`` (L/h), ``V1`` (L), ``Q`` (L/h), ``V2`` (L), ``CLEMAX``, ``CLT50`` (h), ``CLHILL``
        the patient's PK parameters (clearance ``CL exp(CLEMAX t^CLHILL / (CLT50^CLHILL + t^CLHILL))``).

    ``regimens`` (arm name -> :class:`DrugRegimen` or ``None``) defaults to :func:`regimens_from_provenance`.
    The doses are checked against the stored concentrations (constant clearance: :func:`nonmem_concentrations`
    within 1e-3 relative; otherwise the stored time of the last dose), so a wrong schedule raises
    :class:`AbscopalError` instead of writing a wrong dataset.
    """
    import pandas as pd

    _require_arm(ds)
    if "drug_concentration" not in ds or "parameter_value" not in ds:
        raise AbscopalError(
            "the result has no drug PK (variables 'drug_concentration' and 'parameter_value'); a NONMEM dataset "
            "needs a simulate result of a model with drug PK"
        )
    params = [str(p) for p in ds["parameter"].values]
    missing = [p for p in (*_PK.values(), *_PK_TIME.values()) if p not in params]
    if missing:
        raise AbscopalError(f"the result has no PK parameters {missing}; it cannot be exported as a NONMEM dataset")
    regs = dict(regimens) if regimens is not None else regimens_from_provenance(ds)
    arms = [str(a) for a in ds["arm"].values]
    pv = ds["parameter_value"].transpose("arm", "patient", "parameter")
    times = np.asarray(ds["time"].values, dtype=np.float64)
    conc = ds["drug_concentration"].transpose("arm", "patient", "time").values
    n_pat = ds.sizes["patient"]
    covariates = {k: v for k, v in _COVARIATES.items() if v in params}
    frames = []
    for a, arm in enumerate(arms):
        if arm not in regs:
            raise AbscopalError(f"no regimen given for arm {arm!r}; give one for every arm (None: no drug)")
        reg = regs[arm]
        doses = reg.doses(float(times[-1])) if reg is not None else ()
        for p in range(n_pat):
            values = dict(zip(params, pv.values[a, p], strict=True))
            wt = float(values.get("body_weight_kg", math.nan))
            dose_t = np.array([d.time_day for d in doses]) * _HOURS
            dose_amt = np.array([d.amount_mg(wt) for d in doses])
            n_d, n_o = len(dose_t), len(times)
            rec = {
                "ID": np.full(n_d + n_o, a * n_pat + p + 1, dtype=np.int64),
                "TIME": np.concatenate([dose_t, times * _HOURS]),
                "EVID": np.r_[np.ones(n_d, dtype=np.int64), np.zeros(n_o, dtype=np.int64)],
                "AMT": np.concatenate([dose_amt, np.zeros(n_o)]),
                "CMT": np.ones(n_d + n_o, dtype=np.int64),
                "DV": np.concatenate([np.full(n_d, np.nan), np.asarray(conc[a, p], dtype=np.float64)]),
                "MDV": np.r_[np.ones(n_d, dtype=np.int64), np.zeros(n_o, dtype=np.int64)],
                "ARM": np.full(n_d + n_o, a, dtype=np.int64),
                "PATIENT": np.full(n_d + n_o, int(ds["patient"].values[p]), dtype=np.int64),
            }
            for col, par in covariates.items():
                rec[col] = np.full(n_d + n_o, float(values[par]))
            for col, par in _PK.items():
                scale = 1.0 / _HOURS if col in ("CL", "Q") else 1.0
                rec[col] = np.full(n_d + n_o, float(values[par]) * scale)
            for col, par in _PK_TIME.items():
                scale = _HOURS if col == "CLT50" else 1.0
                rec[col] = np.full(n_d + n_o, float(values[par]) * scale)
            frames.append(pd.DataFrame(rec))
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(["ID", "TIME", "EVID"], ascending=[True, True, False], kind="stable")
    table = table.reset_index(drop=True)
    _check_schedule(table, ds)
    return table


def _check_schedule(table: pd.DataFrame, ds: xr.Dataset) -> None:
    """Raise :class:`AbscopalError` if the doses of ``table`` do not explain the stored concentrations."""
    obs = table["EVID"].to_numpy() == 0
    const = table["CLEMAX"].to_numpy() == 0.0
    if np.all(const):
        got = nonmem_concentrations(table)[obs]
        want = table["DV"].to_numpy()[obs]
        scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
        bad = np.abs(got - want) > 1e-3 * np.maximum(np.abs(want), 1e-6 * scale)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            row = table[obs].iloc[i]
            raise AbscopalError(
                f"the dose schedule does not reproduce the stored drug concentration (ID {int(row['ID'])}, "
                f"TIME {row['TIME']:g} h: {got[i]:.6g} vs {want[i]:.6g} mg/L); give the exact regimens to "
                "nonmem_table(ds, regimens=...)"
            )
    elif "pk_ref_day" in ds:
        ref = ds["pk_ref_day"].transpose("arm", "patient", "time").values.reshape(-1)
        for (_, rows), last in zip(table.groupby("ID", sort=True), ref.reshape(-1, ds.sizes["time"]), strict=True):
            dose_t = rows["TIME"].to_numpy()[rows["EVID"].to_numpy() == 1] / _HOURS
            obs_t = rows["TIME"].to_numpy()[rows["EVID"].to_numpy() == 0] / _HOURS
            for t, want_last in zip(obs_t, last, strict=True):
                given = dose_t[dose_t <= t]
                if given.size and not math.isclose(given[-1], float(want_last), rel_tol=1e-9, abs_tol=1e-9):
                    raise AbscopalError(
                        f"the dose schedule does not match the stored time of the last dose ({given[-1]:g} vs "
                        f"{float(want_last):g} d); give the exact regimens to nonmem_table(ds, regimens=...)"
                    )


def nonmem_concentrations(table: pd.DataFrame) -> np.ndarray:
    """Central concentrations (mg/L) at every record of a :func:`nonmem_table`, from its doses and PK columns only.

    The closed-form two-compartment IV-bolus solution summed over the doses given at or before each record
    (``C = sum AMT/V1 [(alpha - k21) e^(-alpha dt) + (k21 - beta) e^(-beta dt)] / (alpha - beta)``, rates per
    hour). Needs constant clearance (``CLEMAX == 0``); raises :class:`AbscopalError` otherwise.
    """
    if np.any(table["CLEMAX"].to_numpy() != 0.0):
        raise AbscopalError("the closed-form PK needs constant clearance (CLEMAX == 0); integrate the ODEs instead")
    out = np.zeros(len(table))
    for _, rows in table.groupby("ID", sort=False):
        first = rows.iloc[0]
        k10, k12, k21 = first["CL"] / first["V1"], first["Q"] / first["V1"], first["Q"] / first["V2"]
        s = k10 + k12 + k21
        root = math.sqrt(s * s - 4.0 * k10 * k21)
        alpha, beta = (s + root) / 2.0, (s - root) / 2.0
        t = rows["TIME"].to_numpy()
        evid = rows["EVID"].to_numpy()
        c = np.zeros(len(rows))
        for td, amt in zip(t[evid == 1], rows["AMT"].to_numpy()[evid == 1], strict=True):
            dt = t - td
            # a dose counts from its own time on (records at the dose time are post-dose, as the doses come first)
            m = dt >= 0.0
            e = ((alpha - k21) * np.exp(-alpha * dt[m]) + (k21 - beta) * np.exp(-beta * dt[m])) / (alpha - beta)
            c[m] += amt / first["V1"] * e
        out[rows.index.to_numpy()] = c
    return out


# ---- files -----------------------------------------------------------------------------------------------------
def _parquet_engine() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise AbscopalError(
            "--format parquet needs pyarrow, which is not installed: pip install abscopal[export] (or use --format csv)"
        ) from None


def _repr(x: float) -> str:
    """The shortest text that reads back as the same float (Python's ``repr``; ``inf``, ``-inf``)."""
    return repr(float(x))


def write_table(
    table: pd.DataFrame, path: str | Path, fmt: str = "csv", *, force: bool = False, nonmem: bool = False
) -> Path:
    """Write ``table`` to ``path`` atomically (:func:`abscopal.io.write_atomic`) as ``fmt`` (:data:`TABLE_FORMATS`).

    CSV: comma-separated with a header line, floats at ``repr`` precision (re-reading gives the same numbers),
    missing values empty, or ``.`` with ``nonmem=True`` (NONMEM's missing DV). Parquet needs pyarrow
    (``pip install abscopal[export]``). Raises :class:`AbscopalError` for an unknown format or missing pyarrow,
    :class:`abscopal.io.OutputExistsError` if ``path`` exists and ``force`` is false.
    """
    if fmt not in TABLE_FORMATS:
        raise AbscopalError(f"unknown table format {fmt!r}; use one of {', '.join(TABLE_FORMATS)}")
    if fmt == "parquet":
        _parquet_engine()
        return write_atomic(path, lambda tmp: table.to_parquet(tmp, engine="pyarrow", index=False), force=force)
    na = "." if nonmem else ""
    return write_atomic(
        path,
        lambda tmp: table.to_csv(tmp, index=False, na_rep=na, float_format=_repr, lineterminator="\n"),
        force=force,
    )


def read_table(path: str | Path, fmt: str | None = None, *, nonmem: bool = False) -> pd.DataFrame:
    """Read a table written by :func:`write_table` (format from the extension if ``fmt`` is None: ``.parquet``
    is Parquet, anything else CSV). ``patient`` and ``lesion`` columns come back as nullable integers."""
    import pandas as pd

    p = Path(path)
    fmt = fmt or ("parquet" if p.suffix.lower() == ".parquet" else "csv")
    if fmt == "parquet":
        _parquet_engine()
        df = pd.read_parquet(p, engine="pyarrow")
    else:
        # only an empty field (NONMEM: '.') is missing: an arm called 'NA' stays a name
        df = pd.read_csv(p, na_values=["."] if nonmem else [""], keep_default_na=False, float_precision="round_trip")
    for col in ("patient", "lesion"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    if "arm" in df.columns:
        df["arm"] = df["arm"].astype(str)
    if "units" in df.columns:
        df["units"] = df["units"].fillna("").astype(str)
    return df
