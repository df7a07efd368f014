"""``score(dataset, assessment)``: score simulated patients the way trials score patients.

Pipeline, per arm and patient (all pure functions of the simulation dataset plus explicit draws):

1. the model outputs the endpoints need, found by their roles (:mod:`~abscopal.endpoints.readout`);
2. RECIST 1.1 (or iRECIST) at the scan visits on the lesions the trial counts (irradiated lesions excluded
   when ``exclude_irradiated``: PEMBRO-RT and MDACC scored non-irradiated lesions), with new lesions from the
   model's cumulative new-lesion hazard: a new lesion appears when it crosses the patient's Exp(1) draw
   (common random numbers) (:mod:`~abscopal.endpoints.scoring`);
3. death from the assessment's death model, again against an Exp(1) draw: by default a hazard on the
   simulated tumour burden plus background mortality (:mod:`~abscopal.endpoints.death`), or the published
   tumour-growth-rate link on the trial-measured sum of target diameters (:mod:`~abscopal.endpoints.survival_link`,
   which reads the patients' line of therapy); PFS = first RECIST progression scan or death; administrative
   censoring at the end of follow-up;
4. radiation pneumonitis risk (:mod:`~abscopal.endpoints.toxicity`);
5. per-arm summaries: ORR (at a fixed visit or best), DCR, KM medians with CIs, landmark rates, log-rank and
   Cox hazard ratios against the first arm, pneumonitis rate, lymphocyte nadir
   (:mod:`~abscopal.endpoints.arm_summaries`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..errors import ParameterError
from .arm_summaries import arm_summaries
from .assessment import TrialAssessment, trial_scans
from .death import DeathInputs, SurvivalTimes, survival_times
from .events import event_draws, first_crossing
from .readout import ModelOutputs, read_outputs, trial_segment
from .scans import as_visit_days
from .scoring import (
    ResponseScores,
    duration_of_response,
    excluded_lesions,
    score_responses,
    target_sum_of_diameters,
    visit_index,
)
from .survival_link import TumourGrowthSurvival

if TYPE_CHECKING:
    from ..patients import VirtualPatients

__all__ = ["ArmScores", "score"]


@dataclass(frozen=True, kw_only=True, eq=False)
class ArmScores:
    """Everything scored for one arm: arrays over its patients, and the arm's pneumonitis probability."""

    response: ResponseScores
    survival: SurvivalTimes
    new_lesion_day: np.ndarray  # inf: none
    death_day: np.ndarray  # inf: none within the simulation
    duration_of_response_day: np.ndarray  # NaN: no response
    lymphocyte_nadir: np.ndarray  # NaN without a lymphocytes output
    pneumonitis_probability: float


@dataclass(frozen=True, kw_only=True, eq=False)
class _Patients:
    """Per-patient inputs of scoring: lesion sites, Exp(1) draws (column 0 new lesion, column 1 death) and the
    line of therapy (True: pretreated; all False without virtual patients)."""

    sites: list[list[str]]
    draws: np.ndarray
    pretreated: np.ndarray


def _patients(a: TrialAssessment, patients: VirtualPatients | None, n_pat: int, n_les: int, seed: int) -> _Patients:
    if patients is None:
        if len(a.lesion_sites) < n_les:
            raise ParameterError(
                f"lesion_sites names {len(a.lesion_sites)} sites for {n_les} lesions; give one per lesion"
            )
        return _Patients(
            sites=[list(a.lesion_sites[:n_les])] * n_pat,
            draws=event_draws(seed, n_pat, 2),
            pretreated=np.zeros(n_pat, dtype=bool),
        )
    sites_arr = np.asarray(patients.sites)
    if sites_arr.shape != (n_pat, n_les):
        raise ParameterError(
            f"patients describe {sites_arr.shape} (patients, lesions), the dataset "
            f"({n_pat}, {n_les}); pass the VirtualPatients the population was drawn from"
        )
    return _Patients(
        sites=[[s if s else "other" for s in row] for row in sites_arr.tolist()],  # "" = absent lesion
        draws=np.asarray(patients.event_draws)[:, :2],  # new lesion, death (EVENT_DRAW_COLUMNS)
        pretreated=np.asarray(patients.line_of_therapy) == "pretreated",
    )


def _rt_drug_gap(ds: xr.Dataset, ai: int) -> float:
    """Smallest interval between an RT fraction and a drug dose of an arm (:mod:`~abscopal.endpoints.toxicity`);
    a dataset written before it was recorded has only the first fraction and the first dose."""
    if "rt_drug_gap_day" in ds:
        return float(ds.rt_drug_gap_day.values[ai])
    return abs(float(ds.rt_first_day.values[ai]) - float(ds.drug_first_day.values[ai]))  # NaN without RT or drug


def _score_arm(
    ds: xr.Dataset,
    ai: int,
    out: ModelOutputs,
    pats: _Patients,
    a: TrialAssessment,
    visits: np.ndarray,
    vidx: np.ndarray,
    follow_up: float,
) -> ArmScores:
    times = ds.time.values
    start = float(times[0])
    n_pat = len(pats.sites)
    exclude = excluded_lesions(out.irradiated[ai], a.exclude_irradiated, str(ds.arm.values[ai]))
    if out.new_lesion_hazard is None:
        new_day = np.full(n_pat, np.inf)
    else:  # the cumulative new-lesion hazard crosses the patient's Exp(1) draw
        new_day = first_crossing(times, out.new_lesion_hazard[ai], pats.draws[:, 0])
    response = score_responses(
        out.lesion_diameter_mm[ai][..., vidx],
        visits,
        pats.sites,
        exclude=exclude,
        new_lesion_day=new_day,
        rules=a.rules,
        orr_visit_day=a.orr_visit_day,
        follow_up_day=follow_up,
    )
    os_evaluable = _os_evaluable(a, out)
    if os_evaluable:
        sld = response.sum_of_diameters
        systemic_only = isinstance(a.survival, TumourGrowthSurvival) and not a.survival.irradiated_lesions_in_sld
        irr = np.asarray(out.irradiated[ai], dtype=bool)
        if systemic_only and not a.exclude_irradiated and irr.any() and not irr.all():
            # the link reads the lesions outside the fields (TumourGrowthSurvival.irradiated_lesions_in_sld)
            sld = target_sum_of_diameters(
                out.lesion_diameter_mm[ai][..., vidx],
                pats.sites,
                exclude=excluded_lesions(irr, True, str(ds.arm.values[ai])),
                rules=a.rules,
            )
        inputs = DeathInputs(
            times=times,
            tumour_burden=None if out.tumour_burden is None else out.tumour_burden[ai],
            new_lesion_day=new_day,
            visit_days=visits,
            target_sum_mm=sld,
            progression_day=response.progression_day,
            pretreated=pats.pretreated,
            follow_up_day=follow_up,
        )
        death = a.survival.death_day(inputs, pats.draws[:, 1])
    else:
        death = np.full(n_pat, np.inf)
    survival = survival_times(response.progression_day, death, visits, follow_up, start)
    duration = duration_of_response(response, death, follow_up)
    if not os_evaluable:  # no deaths drawn: OS not evaluable (DoR and PFS count progression only)
        survival = SurvivalTimes(
            pfs_day=survival.pfs_day,
            pfs_event=survival.pfs_event,
            os_day=np.full(n_pat, np.nan),
            os_event=np.zeros(n_pat, dtype=bool),
        )
        death = np.full(n_pat, np.nan)
    return ArmScores(
        response=response,
        survival=survival,
        new_lesion_day=new_day,
        death_day=death,
        duration_of_response_day=duration,
        lymphocyte_nadir=(np.full(n_pat, np.nan) if out.lymphocytes is None else out.lymphocytes[ai].min(axis=1)),
        pneumonitis_probability=a.pneumonitis.probability(
            float(ds.mean_lung_dose_gy.values[ai]), float(ds.rt_n_fractions.values[ai]), _rt_drug_gap(ds, ai)
        ),
    )


def _os_evaluable(a: TrialAssessment, out: ModelOutputs) -> bool:
    """Deaths can be drawn: the death model needs no tumour burden, or the model has one."""
    return out.tumour_burden is not None or not a.survival.requires_tumour_burden


def score(
    ds: xr.Dataset, assessment: TrialAssessment | None = None, *, patients: VirtualPatients | None = None
) -> xr.Dataset:
    """Per-patient responses and per-arm trial endpoints of a simulation dataset.

    Works for any model whose outputs declare their roles (:attr:`abscopal.ModelSpec.roles`); endpoints
    that need a role the model lacks are NaN, and ``attrs["notes"]`` says which and why.

    ``patients`` (an :class:`abscopal.patients.VirtualPatients` the population was built from)
    supplies per-patient lesion sites (absent lesions are not followed) and the stored Exp(1)
    event draws (common random numbers); without it, ``assessment.lesion_sites`` applies to
    every patient and the draws come from the dataset's seed.

    Returns an xarray Dataset with per-patient variables (dims ``arm, patient[, visit]``),
    per-arm summaries (dim ``arm``) and Kaplan-Meier curves (dims ``arm, km_time``), each with
    ``units`` and ``long_name``; provenance of the simulation and the assessment in ``attrs``.

    A simulation with a history (prior RT before enrolment, ``ds.attrs["time_zero_day"]``) is scored from its
    time zero: the default scans start there, PFS and OS count from it, deaths and new lesions are drawn from
    the hazards after it (:func:`~abscopal.endpoints.readout.trial_segment`).
    """
    a = assessment or TrialAssessment()
    ds = trial_segment(ds)  # a simulation with a history is scored from its time zero on
    out = read_outputs(ds)
    times = ds.time.values
    start = float(times[0])
    visits = as_visit_days(a.scans if a.scans is not None else trial_scans(start, end_day=float(times[-1])))
    vidx = visit_index(times, visits)
    follow_up = float(visits[-1] if a.follow_up_day is None else a.follow_up_day)
    n_arm, n_pat, n_les = ds.sizes["arm"], ds.sizes["patient"], out.n_lesions
    seed = int(ds.attrs.get("seed", 0) if a.seed is None else a.seed)
    pats = _patients(a, patients, n_pat, n_les, seed)
    arms = [_score_arm(ds, ai, out, pats, a, visits, vidx, follow_up) for ai in range(n_arm)]
    return _dataset(ds, arms, a, visits, follow_up, seed, out)


def _dataset(
    ds: xr.Dataset,
    arms: list[ArmScores],
    a: TrialAssessment,
    visits: np.ndarray,
    follow_up: float,
    seed: int,
    out: ModelOutputs,
) -> xr.Dataset:
    start = float(ds.time.values[0])
    n_arm, n_pat = len(arms), ds.sizes["patient"]
    resp = np.empty((n_arm, n_pat, visits.size), dtype=object)
    bor = np.empty((n_arm, n_pat), dtype=object)
    for ai, arm in enumerate(arms):
        resp[ai], bor[ai] = arm.response.responses, arm.response.best_overall_response
    r = [arm.response for arm in arms]
    sv = [arm.survival for arm in arms]

    def per(values: list[np.ndarray]) -> np.ndarray:
        return np.array(values, dtype=float).reshape(n_arm, n_pat)

    dims_p, dims_v = ("arm", "patient"), ("arm", "patient", "visit")
    data: dict[str, tuple] = {}
    data["response"] = (dims_v, resp.astype(str), {"units": "1", "long_name": "RECIST response at the visit"})
    data["percent_change"] = (
        dims_v,
        np.array([x.percent_change for x in r], dtype=float).reshape(n_arm, n_pat, visits.size),
        {"units": "%", "long_name": "change of the sum of diameters from baseline"},
    )
    data["sum_of_diameters"] = (
        dims_v,
        np.array([x.sum_of_diameters for x in r], dtype=float).reshape(n_arm, n_pat, visits.size),
        {"units": "mm", "long_name": "sum of target-lesion diameters"},
    )
    data["best_overall_response"] = (dims_p, bor.astype(str), {"units": "1", "long_name": "best overall response"})
    data["best_percent_change"] = (
        dims_p,
        per([x.best_percent_change for x in r]),
        {"units": "%", "long_name": "best change of the sum of diameters"},
    )
    data["objective_response"] = (
        dims_p,
        per([x.objective_response for x in r]).astype(bool),
        {"units": "1", "long_name": "objective response (CR or PR)"},
    )
    data["disease_control"] = (
        dims_p,
        per([x.disease_control for x in r]).astype(bool),
        {"units": "1", "long_name": "disease control (CR, PR or SD)"},
    )
    for key, long in (("pfs", "progression-free survival"), ("os", "overall survival")):
        data[f"{key}_day"] = (
            dims_p,
            per([getattr(x, f"{key}_day") for x in sv]),
            {"units": "day", "long_name": f"{long} time from the simulation start"},
        )
        data[f"{key}_event"] = (
            dims_p,
            per([getattr(x, f"{key}_event") for x in sv]).astype(bool),
            {"units": "1", "long_name": f"{long} event observed"},
        )
    for key, values, long in (
        ("progression_day", [x.progression_day for x in r], "day of RECIST progression"),
        ("new_lesion_day", [arm.new_lesion_day for arm in arms], "day a new lesion appears"),
        ("death_day", [arm.death_day for arm in arms], "day of death"),
    ):
        data[key] = (dims_p, per(values), {"units": "day", "long_name": long + " (inf: none)"})
    data["duration_of_response_day"] = (
        dims_p,
        per([arm.duration_of_response_day for arm in arms]),
        {
            "units": "day",
            "long_name": "duration of response, to progression, death or end of follow-up (NaN: no response)",
        },
    )
    data["lymphocyte_nadir"] = (
        dims_p,
        per([arm.lymphocyte_nadir for arm in arms]),
        {"units": "1e9/L", "long_name": "lymphocyte count nadir"},
    )
    data["pneumonitis_probability"] = (
        ("arm",),
        np.array([arm.pneumonitis_probability for arm in arms], dtype=float),
        {"units": "1", "long_name": "radiation pneumonitis probability"},
    )
    data.update(arm_summaries(r, sv, visits, start, os_evaluable=_os_evaluable(a, out)))
    coords = {
        "arm": ds.arm.values,
        "patient": ds.patient.values,
        "visit": ("visit", np.arange(visits.size), {"units": "1", "long_name": "scan visit index"}),
        "visit_day": ("visit", visits, {"units": "day", "long_name": "scan day"}),
    }
    result = xr.Dataset(data, coords=coords)
    result.coords["arm"].attrs.update({"units": "1", "long_name": "trial arm"})
    result.coords["patient"].attrs.update({"units": "1", "long_name": "virtual patient index"})
    result.attrs.update(
        {
            "provenance": ds.attrs.get("provenance", "{}"),
            "assessment": json.dumps(a.describe(), default=str),
            "event_seed": seed,
            "follow_up_day": follow_up,
            "start_day": start,
        }
    )
    notes = list(out.notes)
    if out.tumour_burden is None and _os_evaluable(a, out):  # the death model reads the SLD, not the burden
        notes = [n for n in notes if "'tumour_burden'" not in n]
        notes.append("the model has no 'tumour_burden' output: deaths come from the tumour-growth-rate link")
    if notes:
        result.attrs["notes"] = json.dumps(notes)
    return result
