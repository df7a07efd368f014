"""Per-patient RT targets: put the lesion(s) a rule chooses where the arm's plan aims.

A :class:`~abscopal.treatment.TreatmentPlan` targets lesion *indices*, the same for every
patient of an arm, while trials choose the irradiated lesion per patient (the lung primary, the
largest lesion, a lesion at a given site). :func:`place_rt_targets` reorders each patient's
lesions so that the chosen ones come first; the arm's course then targets lesions
``0..k-1``. Lesion order carries no meaning in the model beyond the per-lesion parameters, which
are set per patient from the reordered baseline (sites and sizes move with their lesion).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import ScheduleError
from .patients import RTTargetRule, VirtualPatients, irradiated_lesions

__all__ = ["place_rt_targets"]


def place_rt_targets(patients: VirtualPatients, rule: RTTargetRule) -> tuple[VirtualPatients, tuple[int, ...]]:
    """Reorder each patient's lesions so the lesions chosen by ``rule`` come first.

    Parameters
    ----------
    patients
        Virtual patients (from :func:`abscopal.patients.draw_patients`).
    rule
        ``"lung_primary"``, ``"largest"``, a site name, or a tuple of lesion indices
        (see :func:`abscopal.patients.irradiated_lesions`).

    Returns
    -------
    (VirtualPatients, tuple of int)
        The reordered patients and the lesion indices the arm's RT course must target.

    Raises
    ------
    ScheduleError
        If a patient has no lesion matching the rule (raised by ``irradiated_lesions``).
    """
    chosen = irradiated_lesions(patients, rule)  # validates the rule before any work
    k = int(chosen.sum(axis=1).max())
    if not np.all(chosen.sum(axis=1) == k):
        raise ScheduleError(f"RT target rule {rule!r} chooses different numbers of lesions per patient")
    # stable order: chosen lesions first, then the others, each in their original order
    order = np.argsort(~chosen, axis=1, kind="stable")
    rows = np.arange(patients.n_patients)[:, None]
    moved = {
        name: np.asarray(getattr(patients, name))[rows, order]
        for name in ("sites", "present", "baseline_diameter_mm")
    }
    for arr in moved.values():
        arr.setflags(write=False)
    return dataclasses.replace(patients, **moved), tuple(range(k))
