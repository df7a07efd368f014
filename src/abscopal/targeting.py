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
from typing import Any

import numpy as np

from .errors import ScheduleError
from .patients import RTTargetRule, VirtualPatients, irradiated_lesions

__all__ = ["place_rt_targets"]


def place_rt_targets(
    patients: VirtualPatients, rule: RTTargetRule, n_lesions: int = 1
) -> tuple[VirtualPatients, tuple[int, ...]]:
    """Reorder each patient's lesions so the lesions chosen by ``rule`` come first.

    Parameters
    ----------
    patients
        Virtual patients (from :func:`abscopal.patients.draw_patients`).
    rule
        ``"lung_primary"``, ``"largest"``, ``"largest_metastasis"``, a site name, or a tuple of lesion indices
        (see :func:`abscopal.patients.irradiated_lesions`).
    n_lesions
        Lesions to irradiate per patient (rule lesions only, or 1 to the model's lesion count): the lesion(s)
        ``rule`` chooses, then the largest remaining present lesions. A patient with fewer present lesions gets
        all of them; the remaining targeted slots hold absent lesions (zero volume, so the dose acts on nothing).

    Returns
    -------
    (VirtualPatients, tuple of int)
        The reordered patients and the lesion indices the arm's RT course must target.

    Raises
    ------
    ScheduleError
        If a patient has no lesion matching the rule (raised by ``irradiated_lesions``), or ``n_lesions`` is not
        between 1 and the number of lesions.
    """
    chosen = irradiated_lesions(patients, rule)  # validates the rule before any work
    L = patients.n_lesions
    k = int(chosen.sum(axis=1).max())
    if not np.all(chosen.sum(axis=1) == k):
        raise ScheduleError(f"RT target rule {rule!r} chooses different numbers of lesions per patient")
    if isinstance(n_lesions, bool) or not isinstance(n_lesions, int) or not 1 <= n_lesions <= L:
        raise ScheduleError(
            f"n_lesions = {n_lesions!r} irradiated lesions per patient: give an integer from 1 to "
            f"the model's {L} lesions"
        )
    if n_lesions > k:
        # then the largest present lesions not yet chosen, until n_lesions (or no present lesion is left)
        size = np.where(patients.present & ~chosen, patients.baseline_diameter_mm, -np.inf)
        extra = np.argsort(-size, axis=1, kind="stable")[:, : n_lesions - k]
        rows = np.arange(patients.n_patients)[:, None]
        chosen = chosen.copy()
        chosen[rows, extra] |= np.isfinite(size[rows, extra])
        k = n_lesions
    # stable order: chosen lesions first (largest first among extras is not needed: all are targeted), then the
    # others, each in their original order; patients with fewer chosen lesions keep absent lesions in the slots
    key = np.where(chosen, 0, np.where(patients.present, 2, 1))
    if n_lesions == 1 or np.all(chosen.sum(axis=1) == k):
        key = np.where(chosen, 0, 1)
    order = np.argsort(key, axis=1, kind="stable")
    rows = np.arange(patients.n_patients)[:, None]
    moved: dict[str, Any] = {
        name: np.asarray(getattr(patients, name))[rows, order] for name in ("sites", "present", "baseline_diameter_mm")
    }
    for arr in moved.values():
        arr.setflags(write=False)
    return dataclasses.replace(patients, **moved), tuple(range(k))
