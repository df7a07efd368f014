"""Trial endpoints: RECIST 1.1 / iRECIST at scan visits, survival statistics, toxicity.

Score a simulation the way a trial scores its patients::

    import abscopal as ab
    ep = ab.score(ds, ab.TrialAssessment(orr_visit_day=84))

Exported here:

* :func:`score`: per-patient responses, PFS / OS, and per-arm summaries of a simulation dataset;
* :class:`TrialAssessment`: how a trial assessed its patients (scans, rules, censoring, models), with
  :func:`trial_scans` (the default scan schedule), :class:`SurvivalModel` (the default death hazard, on the
  simulated burden), :class:`TumourGrowthSurvival` (the published tumour-growth-rate -> OS link on the
  trial-measured sum of diameters) and :class:`PneumonitisModel` (radiation pneumonitis);
* :class:`RecistRules` with :data:`RECIST_1_1` and :data:`IRECIST`, and :class:`RecistAssessment` (one
  patient's RECIST result, from :func:`~abscopal.endpoints.recist.assess`);
* :class:`ScanSchedule` and :class:`ExplicitScans` (scan visits);
* :data:`DAYS_PER_MONTH`, the month used for survival medians.

The modules, by responsibility: :mod:`~abscopal.endpoints.assessment` (settings),
:mod:`~abscopal.endpoints.readout` (model outputs by role), :mod:`~abscopal.endpoints.scoring` (RECIST from
scans, progression, new lesions), :mod:`~abscopal.endpoints.death` (death, PFS, OS),
:mod:`~abscopal.endpoints.survival_link` (the tumour-growth-rate link),
:mod:`~abscopal.endpoints.toxicity` (pneumonitis), :mod:`~abscopal.endpoints.arm_summaries` (ORR, DCR, medians,
hazard ratios), :mod:`~abscopal.endpoints.pipeline` (:func:`score`), :mod:`~abscopal.endpoints.recist`,
:mod:`~abscopal.endpoints.scans`, :mod:`~abscopal.endpoints.survival` (Kaplan-Meier, log-rank, Cox) and
:mod:`~abscopal.endpoints.table`.
"""

from .assessment import TrialAssessment, trial_scans
from .death import SurvivalModel
from .pipeline import score
from .recist import IRECIST, RECIST_1_1, RecistAssessment, RecistRules
from .scans import ExplicitScans, ScanSchedule
from .survival import DAYS_PER_MONTH
from .survival_link import TumourGrowthSurvival
from .toxicity import PneumonitisModel

__all__ = [
    "DAYS_PER_MONTH",
    "IRECIST",
    "RECIST_1_1",
    "ExplicitScans",
    "PneumonitisModel",
    "RecistAssessment",
    "RecistRules",
    "ScanSchedule",
    "SurvivalModel",
    "TrialAssessment",
    "TumourGrowthSurvival",
    "score",
    "trial_scans",
]
