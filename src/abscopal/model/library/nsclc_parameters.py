"""Parameter specs of the default stage IV NSCLC RT + anti-PD-(L)1 model.

Every default names its source. ``assumption`` marks a value that no source fixes; these are
the values the calibration (``fits/``) is for. Sources are cited by first author and year; the full
citations are in :data:`REFERENCES`.
"""

from __future__ import annotations

import math

from ...treatment.drugs import DRUG_PK
from ..spec import Parameter

__all__ = ["REFERENCES", "global_parameters", "lesion_parameters"]

_PEMBRO, _NIVO = DRUG_PK["pembrolizumab"], DRUG_PK["nivolumab"]

REFERENCES = {
    "Wang2023": "Wang M.-Y., Sui J., Li S., Li S.-J., Wang M.-X., Ning F.-L., Tian L.-J. Efficacy and mechanism "
    "of combining radiotherapy and immunotherapy in stage IV NSCLC. Review preprint, 26 May 2023 (the 'seed "
    "review' of the sources below)",
    "Kosinsky2018": "Kosinsky Y. et al. Radiation and PD-(L)1 treatment combinations: immune response "
    "and dose optimization via a predictive systems model. J Immunother Cancer 2018;6:17. "
    "doi:10.1186/s40425-018-0327-9",
    "Friedrich2022": "Friedrich T., Scholz M., Durante M. A predictive biophysical model of the combined "
    "action of radiation therapy and immunotherapy of cancer. Int J Radiat Oncol Biol Phys 2022;113:872",
    "Cho2023": "Cho Y., Yoon H., Suh C., Scott J. Radio-immune response modelling for spatially "
    "fractionated radiotherapy. Phys Med Biol 2023;68:165010",
    "VanpouilleBox2017": "Vanpouille-Box C. et al. DNA exonuclease Trex1 regulates radiotherapy-induced "
    "tumour immunogenicity. Nat Commun 2017;8:15618",
    "Astrahan2008": "Astrahan M. Some implications of linear-quadratic-linear radiation dose-response "
    "with regard to hypofractionation. Med Phys 2008;35:4161",
    "Jeong2017": "Jeong J. et al. Modeling the cellular response of lung cancer to radiation therapy for "
    "a broad range of fractionation schedules. Clin Cancer Res 2017;23:5469",
    "Ahamadi2017": "Ahamadi M. et al. Model-based characterization of the pharmacokinetics of "
    "pembrolizumab. CPT Pharmacometrics Syst Pharmacol 2017;6:49-57",
    "Sung2020": "Sung W. et al. A tumor-immune interaction model for hepatocellular carcinoma based on "
    "measured lymphocyte counts in patients undergoing radiotherapy. Radiother Oncol 2020;151:73",
    "Jin2021": "Jin J.-Y. et al. Higher radiation dose to the immune cells correlates with worse tumor "
    "control and overall survival in stage III NSCLC (RTOG 0617). Cancers 2021;13:6193",
    "Poleszczuk2016": "Poleszczuk J. et al. Abscopal benefits of localized radiotherapy depend on "
    "activated T-cell trafficking and distribution between metastatic lesions. Cancer Res 2016;76:1009",
    "dePillis2005": "de Pillis L.G., Radunskaya A.E., Wiseman C.L. A validated mathematical model of "
    "cell-mediated immune response to tumor growth. Cancer Res 2005;65:7950 (ratio-dependent kill)",
    "Klug2013": "Klug F. et al. Low-dose irradiation programs macrophage differentiation to an "
    "iNOS+/M1 phenotype. Cancer Cell 2013;24:589",
    "Theelen2019": "Theelen W.S.M.E. et al. Effect of pembrolizumab after stereotactic body radiotherapy vs "
    "pembrolizumab alone on tumor response in patients with advanced non-small cell lung cancer: the PEMBRO-RT "
    "phase 2 randomized clinical trial. JAMA Oncol 2019;5:1276-1282",
    "Welsh2020": "Welsh J. et al. Pembrolizumab with or without radiation therapy for metastatic non-small cell "
    "lung cancer: a randomized phase I/II trial. J Immunother Cancer 2020;8:e001001 (PMID 33051340)",
    "Detterbeck2008": "Detterbeck F.C., Gibson C.J. Turning gray: the natural history of lung cancer over time. "
    "J Thorac Oncol 2008;3:781-792. doi:10.1097/JTO.0b013e31817c9230",
    "Chi2013": "Chi A. et al. What would be the most appropriate alpha/beta ratio in the setting of stereotactic "
    "body radiation therapy for early stage non-small cell lung cancer. Biomed Res Int 2013;2013:391021. "
    "doi:10.1155/2013/391021",
    "Eisenhauer2009": "Eisenhauer E.A. et al. New response evaluation criteria in solid tumours: revised RECIST "
    "guideline (version 1.1). Eur J Cancer 2009;45:228-247",
    "YuEDIC": "Yu Y. et al. Impact of effective dose to immune cells (EDIC) on lymphocyte nadir and survival "
    "in limited-stage SCLC (503 patients; https://pure.psu.edu/en/publications/impact-of-effective-dose-to-"
    "immune-cells-edic-on-lymphocyte-nadir)",
    "TBI_D0": "In vivo lymphocyte radiosensitivity in total-body-irradiation patients, PMID 3303160",
    "LymphocyteSubsetD0": "In vitro radiosensitivity (D0) of lymphocyte subsets before and after PHA activation "
    "(https://scilit.net/publications/91f2d7d4fef00f2fbda3bc740329c8d9)",
    "Bajaj2017": "Bajaj G. et al. Model-based population pharmacokinetic analysis of nivolumab in patients with "
    "solid tumors. CPT Pharmacometrics Syst Pharmacol 2017;6:58-66",
    "Shin2021HEDOS": "Shin J. et al. HEDOS: a computational tool to assess radiation dose to circulating blood "
    "cells during external beam radiotherapy based on whole-body blood flow simulations. Phys Med Biol "
    "2021;66(16). doi:10.1088/1361-6560/ac16ea",
}


def P(name: str, units: str, default: float, lower: float, upper: float, description: str, source: str) -> Parameter:
    """Shorthand constructor (positional order: name, units, default, lower, upper, description, source)."""
    return Parameter(
        name=name, units=units, default=default, lower=lower, upper=upper, description=description, source=source
    )


def global_parameters() -> tuple[Parameter, ...]:
    """Parameters shared by all lesions."""
    return (
        # -- tumour growth -------------------------------------------------------------------
        P(
            "tumour_doubling_time_day",
            "day",
            100.0,
            20.0,
            1000.0,
            "volume doubling time of an untreated lesion at the reference volume",
            "stage IV symptomatic disease VDT about 60-140 d (Detterbeck 2008; serial PET/CT series 124-139 d, "
            "PMC3933267)",
        ),
        P(
            "carrying_capacity_mm3",
            "mm3",
            1.0e6,
            1.0e4,
            1.0e8,
            "Gompertz/logistic plateau volume of one lesion",
            "assumption: about 12 cm sphere-equivalent diameter",
        ),
        P(
            "growth_reference_volume_mm3",
            "mm3",
            14137.0,
            1.0,
            1.0e7,
            "volume at which the doubling time is stated (30 mm sphere)",
            "assumption: typical stage IV target lesion (RECIST 1.1 measurability >= 10 mm, Eisenhauer 2009)",
        ),
        # -- radiation ----------------------------------------------------------------------
        P(
            "tumour_alpha_per_gy",
            "1/Gy",
            0.2,
            0.01,
            1.0,
            "LQ alpha of tumour cells",
            "clinical alpha 0.12-0.365 Gy^-1 (Jeong 2017 CI); 0.2 chosen inside it",
        ),
        P(
            "tumour_alpha_beta_gy",
            "Gy",
            10.0,
            1.0,
            50.0,
            "LQ alpha/beta of tumour cells (beta = alpha / alpha_beta)",
            "NSCLC alpha/beta 10 Gy (conventional planning); SBRT fits prefer 20 Gy (Chi 2013)",
        ),
        P(
            "lql_transition_dose_gy",
            "Gy",
            8.0,
            2.0,
            30.0,
            "dose per fraction above which LQ-L makes survival log-linear",
            "Astrahan 2008 LQ-L; LQ may overestimate kill above about 8-10 Gy per fraction (Chi 2013)",
        ),
        P(
            "doomed_clearance_low_dose_per_day",
            "1/day",
            math.log(2) / 17.0,
            0.005,
            1.0,
            "clearance rate of lethally damaged cells after low-dose fractions",
            "Cho 2023: human damaged-cell clearance half-life 17 d",
        ),
        P(
            "doomed_clearance_per_gy_per_day",
            "1/(Gy*day)",
            0.004,
            0.0,
            0.1,
            "increase of the clearance rate per Gy of fraction dose (faster death at high dose)",
            "Friedrich 2022: k1 = min(max(0.04 D, 1/7), 0.5) d^-1 in mice; slope scaled to the human "
            "low-dose rate (assumption)",
        ),
        P(
            "doomed_clearance_max_per_day",
            "1/day",
            0.1725,
            0.01,
            2.0,
            "upper bound of the clearance rate of lethally damaged cells",
            "Kosinsky 2018 Table 1: mu = 0.1725 d^-1 (t1/2 about 4 d)",
        ),
        # -- immunogenic cell death and priming -----------------------------------------------
        P(
            "icd_yield_per_mm3",
            "1/mm3",
            2.0e-4,
            0.0,
            1.0,
            "danger/IFN-I signal produced per mm3 of cells lethally damaged by a fraction",
            "assumption (structure: seed review ICD section; Kosinsky 2018 TCD-driven DC maturation)",
        ),
        P(
            "trex1_threshold_gy",
            "Gy",
            12.0,
            4.0,
            40.0,
            "dose per fraction at which the IFN-I (cGAS-STING) signal is halved by TREX1",
            "Vanpouille-Box 2017: TREX1 induced above 12-18 Gy per fraction abolishes IFN-I",
        ),
        P(
            "trex1_hill",
            "1",
            4.0,
            1.0,
            10.0,
            "steepness of the TREX1 decline",
            "assumption (sharp threshold reported by Vanpouille-Box 2017)",
        ),
        P(
            "danger_decay_per_day",
            "1/day",
            0.5,
            0.01,
            10.0,
            "decay rate of the RT danger/IFN-I signal",
            "assumption: about 1.4 d half-life",
        ),
        P(
            "baseline_turnover_per_day",
            "1/day",
            0.01,
            0.0,
            0.5,
            "spontaneous tumour-cell death that presents antigen without treatment",
            "Kosinsky 2018 Table 1: d0 = 0.01 d^-1",
        ),
        P(
            "dc_maturation_half_sat_per_day",
            "1/day",
            0.02,
            0.001,
            5.0,
            "tumour-cell death rate at which half of the DCs mature (Hill n = 2)",
            "Kosinsky 2018 Table 1: Ktcd = 0.2 d^-1 in CT26 mice; divided by 10 for the slower cell "
            "turnover of human tumours (assumption)",
        ),
        P("dc_turnover_per_day", "1/day", 0.5, 0.01, 10.0, "turnover rate of mature DC signal", "assumption"),
        P(
            "effector_death_per_day",
            "1/day",
            0.2,
            0.01,
            5.0,
            "effector T-cell loss rate (contraction)",
            "Kosinsky 2018 Table 1: precursor elimination kel = 0.2 d^-1",
        ),
        P(
            "effector_baseline",
            "1",
            1.0,
            0.0,
            100.0,
            "tumour-specific effector T cells at baseline (pre-existing immunity, normalised)",
            "assumption; normalisation of the effector compartment",
        ),
        # -- killing --------------------------------------------------------------------------
        P(
            "max_kill_per_day",
            "1/day",
            0.05,
            0.0,
            5.0,
            "maximal effector kill rate of viable tumour cells",
            "assumption; calibrated (fits/). Ratio-dependent form: de Pillis 2005",
        ),
        P(
            "kill_half_sat_ratio",
            "1",
            1.0,
            1e-3,
            1e3,
            "effector-to-burden ratio giving half-maximal kill",
            "assumption (ratio-dependent kill, de Pillis 2005)",
        ),
        P(
            "immune_burden_scale_mm3",
            "mm3",
            20000.0,
            100.0,
            1e7,
            "tumour burden that one unit of effector cells covers",
            "assumption: normalises the ratio E / burden",
        ),
        P(
            "pd1_max_inhibition",
            "1",
            0.8,
            0.0,
            1.0,
            "maximal fractional inhibition of effector function by PD-L1 (full expression, no drug)",
            "Kosinsky 2018 IAR = 1 - PDL1/(1 + mAb/KD); at most about 25% of suppression from PD-L1 "
            "in mice; human value assumption",
        ),
        P("m1_kill_per_day", "1/day", 0.002, 0.0, 0.5, "tumour kill by M1 macrophages per unit M1", "assumption"),
        # -- PD-L1 ------------------------------------------------------------------------------
        P(
            "pdl1_tps",
            "1",
            0.3,
            0.0,
            1.0,
            "baseline PD-L1 tumour proportion score (fraction), sets baseline expression",
            "PEMBRO-RT (Theelen 2019) and MDACC (Welsh 2020): PD-L1 unselected; covariate in issue 3",
        ),
        P(
            "pdl1_turnover_per_day",
            "1/day",
            1.0,
            0.01,
            10.0,
            "PD-L1 expression turnover",
            "Kosinsky 2018 Table 1: kpdl = 1 d^-1",
        ),
        P(
            "pdl1_ifng_half_sat",
            "1",
            1.0,
            1e-3,
            1e3,
            "effector-to-burden ratio giving half-maximal IFN-gamma PD-L1 induction",
            "Kosinsky 2018 structure kpdl*Teff/(Kpdl+Teff); value assumption",
        ),
        P(
            "pdl1_rt_per_gy",
            "1/Gy",
            0.02,
            0.0,
            1.0,
            "direct PD-L1 up-regulation per Gy in the irradiated lesion",
            "seed review (RT up-regulates PD-L1); value assumption",
        ),
        # -- suppressors --------------------------------------------------------------------------
        P("treg_turnover_per_day", "1/day", 0.1, 0.001, 5.0, "Treg turnover", "assumption"),
        P("mdsc_turnover_per_day", "1/day", 0.1, 0.001, 5.0, "MDSC turnover", "assumption"),
        P(
            "treg_burden_induction",
            "1",
            1.0,
            0.0,
            20.0,
            "maximal Treg induction by tumour burden (TGF-beta, IL-10)",
            "seed review; value assumption",
        ),
        P(
            "mdsc_burden_induction",
            "1",
            1.0,
            0.0,
            20.0,
            "maximal MDSC induction by tumour burden",
            "seed review; value assumption",
        ),
        P(
            "suppressor_burden_half_mm3",
            "mm3",
            50000.0,
            100.0,
            1e7,
            "burden giving half-maximal suppressor induction",
            "assumption",
        ),
        P(
            "treg_rt_induction",
            "1",
            0.5,
            0.0,
            20.0,
            "Treg induction per unit RT-induced TGF-beta signal",
            "seed review (RT induces Tregs); assumption",
        ),
        P(
            "mdsc_rt_induction",
            "1",
            0.5,
            0.0,
            20.0,
            "MDSC induction per unit RT-induced TGF-beta signal",
            "seed review (RT recruits MDSCs); assumption",
        ),
        P(
            "tgfb_rt_per_gy",
            "1/Gy",
            0.02,
            0.0,
            1.0,
            "TGF-beta signal added per Gy delivered to a lesion",
            "seed review; value assumption",
        ),
        P("tgfb_decay_per_day", "1/day", 0.1, 0.001, 5.0, "decay of the RT TGF-beta signal", "assumption"),
        P(
            "tnf_suppressor_kill",
            "1",
            0.1,
            0.0,
            10.0,
            "suppressor elimination by activated CD8 T cells (TNF-alpha), per unit effector",
            "seed review (activated CD8 T cells suppress MDSCs/Tregs via TNF-alpha); value assumption",
        ),
        P("treg_suppression", "1", 0.5, 0.0, 20.0, "effector inhibition per unit Treg", "assumption"),
        P("mdsc_suppression", "1", 0.5, 0.0, 20.0, "effector inhibition per unit MDSC", "assumption"),
        P("m2_suppression", "1", 0.5, 0.0, 20.0, "effector inhibition per unit M2 macrophage", "assumption"),
        # -- macrophages ---------------------------------------------------------------------------
        P("macrophage_turnover_per_day", "1/day", 0.05, 0.001, 5.0, "macrophage recruitment/turnover", "assumption"),
        P(
            "m1_baseline_fraction",
            "1",
            0.3,
            0.0,
            1.0,
            "M1 share of tumour-associated macrophages at baseline",
            "assumption (TAMs mostly M2-like in NSCLC; seed review)",
        ),
        P(
            "macrophage_burden_induction",
            "1",
            1.0,
            0.0,
            20.0,
            "maximal macrophage recruitment by tumour burden",
            "assumption",
        ),
        P(
            "macrophage_rt_shift",
            "1",
            0.3,
            0.0,
            1.0,
            "maximal fraction of macrophages re-polarised by one fraction",
            "seed review; Klug 2013 (dose-dependent polarisation); value assumption",
        ),
        P(
            "macrophage_polarisation_dose_gy",
            "Gy",
            1.0,
            0.0,
            10.0,
            "dose per fraction separating M2-favouring (below) from M1-favouring (above) polarisation",
            "issue 2 / seed review: low dose favours M2, above about 1 Gy favours M1",
        ),
        P(
            "macrophage_polarisation_width_gy",
            "Gy",
            0.5,
            0.01,
            10.0,
            "width of the tanh polarisation switch",
            "assumption",
        ),
        P(
            "m2_to_m1_icb_per_day",
            "1/day",
            0.05,
            0.0,
            5.0,
            "M2 to M1 conversion at full PD-1 blockade",
            "seed review (PD-1 blockade shifts M2 to M1); assumption",
        ),
        P(
            "m2_to_m1_ifng_per_day",
            "1/day",
            0.02,
            0.0,
            5.0,
            "M2 to M1 conversion driven by effector IFN-gamma",
            "assumption",
        ),
        P(
            "m1_to_m2_tgfb_per_day",
            "1/day",
            0.1,
            0.0,
            5.0,
            "M1 to M2 conversion per unit TGF-beta signal",
            "assumption",
        ),
        # -- lymphocytes ------------------------------------------------------------------------------
        P(
            "alc_baseline_1e9_per_l",
            "1e9/L",
            1.65,
            0.1,
            5.0,
            "absolute lymphocyte count at baseline",
            "mean ALC 1.65e9/L before RT (LS-SCLC EDIC cohort, Yu et al.)",
        ),
        P(
            "lymphocyte_alpha_per_gy",
            "1/Gy",
            1.0 / 1.2,
            0.05,
            5.0,
            "in vivo lymphocyte radiosensitivity (1/D0)",
            "in vivo lymphocyte D0 = 1.2 Gy (TBI patients, PMID 3303160)",
        ),
        P(
            "blood_fraction_exposed",
            "1",
            0.1,
            1e-3,
            1.0,
            "fraction of circulating lymphocytes that pass through the field during one fraction",
            "assumption inspired by the HEDOS blood-dose model (Shin 2021); mean blood dose = exposed dose x fraction",
        ),
        P(
            "alc_recovery_per_day",
            "1/day",
            0.015,
            0.001,
            1.0,
            "recovery rate of the lymphocyte count after RT",
            "Sung 2020 structure; value assumption (lymphopenia lasting months after thoracic RT)",
        ),
        P(
            "effector_alpha_per_gy",
            "1/Gy",
            1.0 / 2.4,
            0.01,
            5.0,
            "radiosensitivity of activated CD8 T cells in the field (1/D0)",
            "PHA-activated CD8+ D0 = 2.4 Gy (in vitro lymphocyte-subset study)",
        ),
        P(
            "effector_tumour_fraction",
            "1",
            0.05,
            0.0,
            1.0,
            "fraction of the systemic effector pool located in tumours at any time",
            "assumption",
        ),
        # -- drug PK and occupancy (pembrolizumab defaults; drugs override) -------------------------
        # one source for each PK value: the drug table (abscopal.treatment.drugs.DRUG_PK); the model's defaults are
        # pembrolizumab's (Ahamadi 2017), the time-varying-clearance shape nivolumab's (Bajaj 2017)
        P(
            "pk_cl_l_per_day",
            "L/day",
            _PEMBRO.cl_l_per_day,
            0.01,
            2.0,
            "drug clearance",
            f"Ahamadi 2017: CL {_PEMBRO.cl_l_per_day} L/d",
        ),
        P("pk_vc_l", "L", _PEMBRO.vc_l, 0.5, 20.0, "central volume", f"Ahamadi 2017: Vc {_PEMBRO.vc_l} L"),
        P(
            "pk_q_l_per_day",
            "L/day",
            _PEMBRO.q_l_per_day,
            0.01,
            10.0,
            "inter-compartmental clearance",
            f"Ahamadi 2017: Q {_PEMBRO.q_l_per_day} L/d",
        ),
        P("pk_vp_l", "L", _PEMBRO.vp_l, 0.1, 20.0, "peripheral volume", f"Ahamadi 2017: Vp {_PEMBRO.vp_l} L"),
        P(
            "pk_cl_time_emax",
            "1",
            _PEMBRO.cl_time_emax,
            -2.0,
            2.0,
            "log-fold change of clearance with time (0 = constant)",
            f"Ahamadi 2017 base model: constant CL; Bajaj 2017 nivolumab {_NIVO.cl_time_emax}",
        ),
        P(
            "pk_cl_time_t50_day",
            "day",
            _NIVO.cl_time_t50_day,
            1.0,
            1000.0,
            "time of half the clearance change",
            "Bajaj 2017: T50 1410 h",
        ),
        P(
            "pk_cl_time_hill",
            "1",
            _NIVO.cl_time_hill,
            0.1,
            10.0,
            "Hill exponent of the clearance change",
            f"Bajaj 2017: gamma {_NIVO.cl_time_hill}",
        ),
        P(
            "ro_ec50_ug_per_ml",
            "ug/mL",
            _PEMBRO.ec50_ug_per_ml,
            1e-5,
            10.0,
            "serum concentration giving 50% receptor occupancy (quasi-steady state)",
            "pembrolizumab PD-1 Kd about 29 pM = 0.0043 ug/mL (Applied BioMath PK/RO model)",
        ),
        P(
            "body_weight_kg",
            "kg",
            76.8,
            30.0,
            200.0,
            "body weight (for mg/kg dosing)",
            "Ahamadi 2017 reference weight 76.8 kg",
        ),
        # -- new lesions -------------------------------------------------------------------------------
        P(
            "new_lesion_rate_per_day",
            "1/day",
            0.002,
            0.0,
            1.0,
            "rate of new metastases at the reference viable burden",
            "assumption; calibrated against PFS (fits/)",
        ),
        P(
            "new_lesion_reference_mm3",
            "mm3",
            20000.0,
            1.0,
            1e7,
            "viable burden at which new lesions appear at the reference rate",
            "assumption",
        ),
        P(
            "new_lesion_burden_exponent",
            "1",
            1.0,
            0.0,
            3.0,
            "exponent of the burden dependence of new-lesion appearance",
            "assumption (linear seeding)",
        ),
    )


_DEFAULT_DIAMETERS_MM = (30.0, 20.0, 15.0, 15.0, 12.0, 12.0, 10.0, 10.0)


def lesion_parameters(j: int) -> tuple[Parameter, ...]:
    """Parameters of lesion ``j`` (0-based)."""
    d = _DEFAULT_DIAMETERS_MM[j % len(_DEFAULT_DIAMETERS_MM)]
    v0 = math.pi / 6.0 * d**3
    return (
        P(
            f"baseline_volume_mm3_{j}",
            "mm3",
            round(v0, 1),
            0.0,
            1e7,
            f"volume of lesion {j} at the start of the simulation ({d:g} mm sphere by default; 0 = absent)",
            "assumption: typical stage IV lesion sizes (issue 3 draws them from trial baselines)",
        ),
        P(
            f"immune_access_{j}",
            "1",
            1.0,
            0.0,
            10.0,
            f"relative effector infiltration of lesion {j} (site perfusion)",
            "Poleszczuk 2016: T-cell trafficking by organ blood flow; default equal access",
        ),
    )
