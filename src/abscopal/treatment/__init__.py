"""Treatment: radiation courses, checkpoint-inhibitor regimens and plans.

Time is in days; day 0 is the first checkpoint-inhibitor dose (RT before the drug has
negative days).
"""

from .drugs import DRUG_PK as DRUG_PK
from .drugs import PD1_KD_EC50_UG_PER_ML as PD1_KD_EC50_UG_PER_ML
from .drugs import DrugDose as DrugDose
from .drugs import DrugPK as DrugPK
from .drugs import DrugRegimen as DrugRegimen
from .plan import TreatmentPlan as TreatmentPlan
from .radiation import DEFAULT_BLOOD_DOSE_RATIO as DEFAULT_BLOOD_DOSE_RATIO
from .radiation import Daily as Daily
from .radiation import EveryOtherDay as EveryOtherDay
from .radiation import ExplicitDays as ExplicitDays
from .radiation import Fraction as Fraction
from .radiation import FractionCalendar as FractionCalendar
from .radiation import RadiationCourse as RadiationCourse
from .radiation import SpacedPulses as SpacedPulses
from .radiation import WeekdayDaily as WeekdayDaily
from .radiation import Weekly as Weekly
from .regimens import DRUG_REGIMENS as DRUG_REGIMENS
from .regimens import RADIATION_REGIMENS as RADIATION_REGIMENS
from .regimens import DrugRegimenSpec as DrugRegimenSpec
from .regimens import RadiationRegimenSpec as RadiationRegimenSpec
from .regimens import drug_regimen as drug_regimen
from .regimens import radiation_regimen as radiation_regimen
from .regimens import regimen_table as regimen_table

__all__ = [
    "DEFAULT_BLOOD_DOSE_RATIO",
    "DRUG_PK",
    "DRUG_REGIMENS",
    "PD1_KD_EC50_UG_PER_ML",
    "RADIATION_REGIMENS",
    "Daily",
    "DrugDose",
    "DrugPK",
    "DrugRegimen",
    "DrugRegimenSpec",
    "EveryOtherDay",
    "ExplicitDays",
    "Fraction",
    "FractionCalendar",
    "RadiationCourse",
    "RadiationRegimenSpec",
    "SpacedPulses",
    "TreatmentPlan",
    "WeekdayDaily",
    "Weekly",
    "drug_regimen",
    "radiation_regimen",
    "regimen_table",
]
