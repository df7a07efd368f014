"""Bad inputs (issue 9 section 4): every one gets an AbscopalError naming the file, key, value and fix, before any
work; silent acceptances are refused. None of these tests simulates."""

from __future__ import annotations

from pathlib import Path

import pytest

from abscopal.endpoints import TrialAssessment
from abscopal.errors import AbscopalError, ModelError, ParameterError, ScheduleError, TargetError
from abscopal.limits import MAX_EVENTS_PER_ARM, MAX_OUTPUT_BYTES, MAX_STUDY_SIMULATIONS, check_cost
from abscopal.model.library.nsclc import nsclc_model
from abscopal.population import VirtualPopulation
from abscopal.scenario import load_scenario
from abscopal.simulate import Arm, simulate
from abscopal.solver import SolverOptions
from abscopal.studies.design import load_study, parse_study
from abscopal.studies.run import check_study_cost
from abscopal.treatment import DrugRegimen, RadiationCourse, TreatmentPlan, drug_regimen, radiation_regimen
from abscopal.trials import AssessmentSpec, load_targets

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """title = "t"
fit = "none"
[model]
name = "nsclc"
n_lesions = 3
[simulation]
t_end_day = 100
output_interval_day = 7
[population]
n_patients = 2
seed = 1
[[arm]]
name = "a"
drug = "pembrolizumab_200mg_q3w"
[[arm.radiation]]
regimen = "sbrt_24gy_3fx"
start_day = -7
target_lesions = [0]
"""
STUDY = """fit = "none"
[population]
n_patients = 5
[axes]
timing = [-7]
fractionation = ["sbrt_24gy_3fx"]
"""
TARGETS = (ROOT / "fits" / "targets" / "pembro_rt.toml").read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "input.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# (edit of SCENARIO, error class, fragments the message must contain besides the file name)
SCENARIO_CASES = {
    "seed_text": (("seed = 1", 'seed = "one"'), ParameterError, ["population.seed", "'one'"]),
    "n_patients_float": (("n_patients = 2", "n_patients = 2.7"), ParameterError, ["population.n_patients", "2.7"]),
    "n_patients_text": (("n_patients = 2", 'n_patients = "3"'), ParameterError, ["population.n_patients", "'3'"]),
    "n_patients_bool": (("n_patients = 2", "n_patients = true"), ParameterError, ["population.n_patients", "True"]),
    "rtol_text": (("[[arm]]", '[solver]\nrtol = "x"\n[[arm]]'), ParameterError, ["rtol", "'x'"]),
    "parallel_text": (("[[arm]]", '[solver]\nparallel = "yes"\n[[arm]]'), ParameterError, ["parallel", "'yes'"]),
    "target_lesions_int": (
        ("target_lesions = [0]", "target_lesions = 0"),
        ScheduleError,
        ["arm[0].radiation[0].target_lesions", "[0]"],
    ),
    "population_list": (
        (('title = "t"', 'population = [1, 2]\ntitle = "t"'), ("[population]\nn_patients = 2\nseed = 1\n", "")),
        ScheduleError,
        ["population", "[1, 2]"],
    ),
    "drug_table_no_regimen": (
        ('drug = "pembrolizumab_200mg_q3w"', "drug = { start_day = 3 }"),
        ScheduleError,
        ["arm[0].drug", "'interval_day'", "regimen"],
    ),
    "n_fractions_text": (
        ('regimen = "sbrt_24gy_3fx"', 'dose_per_fraction_gy = 8\nn_fractions = "x"'),
        ScheduleError,
        ["arm[0].radiation[0]", "n_fractions", "'x'"],
    ),
    "nul_in_title": (('title = "t"', 'title = "t\\u0000"'), ScheduleError, ["title", "'\\x00'"]),
    "mechanisms_off_string": (
        ("output_interval_day = 7", 'output_interval_day = 7\nmechanisms_off = "pk"'),
        ScheduleError,
        ["simulation.mechanisms_off", "['pk']"],
    ),
    "mechanisms_off_unknown": (
        ("output_interval_day = 7", 'output_interval_day = 7\nmechanisms_off = ["nope"]'),
        ParameterError,
        ["mechanisms_off", "'nope'"],
    ),
    "model_list": (('[model]\nname = "nsclc"\nn_lesions = 3\n', "model = [1]\n"), ModelError, ["model", "[1]"]),
    "parameter_text": (
        ("[[arm]]", '[parameters]\ntumour_alpha_per_gy = "x"\n[[arm]]'),
        ParameterError,
        ["parameters.tumour_alpha_per_gy", "'x'"],
    ),
    "parameter_unknown": (
        ("[[arm]]", "[parameters]\ntumour_alpha_per_gyy = 0.2\n[[arm]]"),
        ParameterError,
        ["parameters", "'tumour_alpha_per_gyy'", "did you mean"],
    ),
    "arm_not_array": (
        (('title = "t"', 'arm = 3\ntitle = "t"'), (SCENARIO[SCENARIO.index("[[arm]]") :], "")),
        ScheduleError,
        ["arm must be an array", "3"],
    ),
    "radiation_not_array": (("[[arm.radiation]]", "[arm.radiation]"), ScheduleError, ["arm[0].radiation"]),
    "omega_text": (
        ("seed = 1", 'seed = 1\nvariability = { tumour_alpha_per_gy = { omega = "x" } }'),
        ParameterError,
        ["omega", "'x'"],
    ),
    "t_end_negative": (("t_end_day = 100", "t_end_day = -1"), ScheduleError, ["simulation.t_end_day", "-1"]),
    "output_times_text": (
        ("output_interval_day = 7", 'output_times_day = "x"'),
        ScheduleError,
        ["simulation.output_times_day", "'x'"],
    ),
    "n_patients_huge": (
        ("n_patients = 2", "n_patients = 10000000000000000"),
        ParameterError,
        ["population.n_patients", "--allow-large"],
    ),
}


def _assert_refused(tmp_path, loader, text, edits, cls, fragments):
    """Apply the ``(old, new)`` edit(s) to ``text``, load the file, and check the error names file and fragments."""
    for old, new in edits if isinstance(edits[0], tuple) else (edits,):
        assert old in text
        text = text.replace(old, new, 1)
    path = _write(tmp_path, text)
    with pytest.raises(cls) as info:
        loader(path)
    msg = str(info.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


@pytest.mark.parametrize("case", sorted(SCENARIO_CASES))
def test_bad_scenario_values_name_file_key_and_value(tmp_path, case):
    edits, cls, fragments = SCENARIO_CASES[case]
    _assert_refused(tmp_path, load_scenario, SCENARIO, edits, cls, fragments)


def test_the_unmodified_scenario_is_valid(tmp_path):
    sc = load_scenario(_write(tmp_path, SCENARIO))
    assert sc.population.n_patients == 2 and sc.arms[0].plan.radiation[0].target_lesions == (0,)


@pytest.mark.parametrize(
    "loader,text",
    [(load_scenario, SCENARIO), (load_study, STUDY), (load_targets, TARGETS)],
    ids=["scenario", "study", "targets"],
)
def test_non_utf8_files_are_refused_with_the_byte(tmp_path, loader, text):
    bad = (
        'title = "caf\xe9"\n' + text.split("\n", 1)[1]
        if loader is not load_targets
        else text.replace("PEMBRO-RT: p", "PEMBRO-RT\xe9: p")
    )
    path = _write(tmp_path, bad.encode("latin-1"))
    with pytest.raises(AbscopalError, match="not UTF-8 text") as info:
        loader(path)
    assert str(path) in str(info.value) and "\\xe9" in str(info.value)


STUDY_CASES = {
    "n_fractions_text": (
        ('fractionation = ["sbrt_24gy_3fx"]', 'fractionation = [{dose_per_fraction_gy = 8, n_fractions = "x"}]'),
        ["axes.fractionation[0]", "n_fractions", "'x'"],
    ),
    "criteria_unknown": (
        ("[axes]", '[assessment]\ncriteria = "recist2"\n[axes]'),
        ["assessment.criteria", "'recist2'", "did you mean"],
    ),
    "criteria_not_scorable": (
        ("[axes]", '[assessment]\ncriteria = "irrc"\n[axes]'),
        ["assessment.criteria", "'irrc'", "recist1.1", "irecist", "only RECIST 1.1 and iRECIST"],
    ),
    "mechanisms_off_string": (
        ("[axes]", '[simulation]\nmechanisms_off = "pk"\n[axes]'),
        ["simulation.mechanisms_off", "['pk']"],
    ),
    "drug_level_no_regimen": (("[axes]", "[axes]\ndrug = [{ dose_mg = 200 }]"), ["axes.drug[0]", "'interval_day'"]),
    "regimen_bad_key": (
        ('fractionation = ["sbrt_24gy_3fx"]', 'fractionation = [{regimen = "sbrt_24gy_3fx", n_fractions = 2}]'),
        ["axes.fractionation[0]", "n_fractions"],
    ),
    "rtol_text": (("[axes]", '[solver]\nrtol = "x"\n[axes]'), ["solver", "rtol", "'x'"]),
    "exclude_irradiated_text": (
        ("[axes]", '[assessment]\nexclude_irradiated = "no"\n[axes]'),
        ["assessment.exclude_irradiated", "'no'"],
    ),
    "model_unknown": (("[axes]", '[model]\nname = "nsclcc"\n[axes]'), ["model.name", "'nsclcc'"]),
    "nul_in_title": (("fit", 'title = "a\\u0000"\nfit'), ["title", "'\\x00'"]),
    "orr_visit_negative": (("[axes]", "[assessment]\norr_visit_day = -5\n[axes]"), ["assessment.orr_visit_day", "-5"]),
    "label_table": (
        ("timing = [-7]", "timing = [{ label = { a = 1 }, start_day = 3 }]"),
        ["axes.timing[0].label", "{'a': 1}"],
    ),
    "no_axes": (('[axes]\ntiming = [-7]\nfractionation = ["sbrt_24gy_3fx"]\n', ""), ["axes", "no [axes] table"]),
    "empty_axes": (('timing = [-7]\nfractionation = ["sbrt_24gy_3fx"]\n', ""), ["axes", "empty"]),
}


@pytest.mark.parametrize("case", sorted(STUDY_CASES))
def test_bad_study_values_name_file_key_and_value(tmp_path, case):
    edits, fragments = STUDY_CASES[case]
    _assert_refused(tmp_path, load_study, STUDY, edits, AbscopalError, fragments)


def test_an_empty_study_file_is_refused_not_run_as_a_default_study(tmp_path):
    with pytest.raises(ScheduleError, match=r"no \[axes\] table"):
        load_study(_write(tmp_path, ""))
    assert load_study(_write(tmp_path, STUDY)).shape == (1, 1, 1, 1)


TARGET_CASES = {
    "ci_zero_width": (
        ("ci_lower = 1.7\nci_upper = 6.9", "ci_lower = 1.9\nci_upper = 1.9"),
        ["median_pfs_month", "ci_lower = ci_upper = 1.9"],
    ),
    "n_above_arm": (
        ('name = "orr"\nvalue = 0.18', 'name = "orr"\nvalue = 0.18\nn = 400'),
        ["'orr'", "n = 400", "(40)"],
    ),
    "n_events_above_n": (
        ('name = "orr"\nvalue = 0.18', 'name = "orr"\nvalue = 0.18\nn = 10\nn_events = 20'),
        ["'orr'", "n_events = 20", "n = 10"],
    ),
    "missing_n_patients": (("n_patients = 40\n", ""), ["arm[0]", "'n_patients'"]),
    "nul_in_title": (('title = "PEMBRO', 'title = "\\u0000PEMBRO'), ["title", "'\\x00'"]),
    "criteria_unknown": (('criteria = "recist1.1"', 'criteria = "recist2"'), ["criteria", "'recist2'"]),
}


@pytest.mark.parametrize("case", sorted(TARGET_CASES))
def test_bad_target_values_name_file_key_and_value(tmp_path, case):
    edits, fragments = TARGET_CASES[case]
    _assert_refused(tmp_path, load_targets, TARGETS, edits, TargetError, fragments)


def test_toxicity_counted_per_course_may_exceed_the_arm_size():
    tox = load_targets(ROOT / "fits" / "targets" / "pneumonitis.toml")
    arm = tox.arm("tian2020_sbrt_ici")
    assert arm.outcome("pneumonitis_grade3").n > arm.n_patients  # 56 courses in 54 patients


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"orr_visit_day": -5}, "orr_visit_day"),
        ({"orr_visit_day": float("nan")}, "orr_visit_day"),
        ({"orr_visit_day": "84"}, "orr_visit_day"),
        ({"follow_up_day": -1.0}, "follow_up_day"),
        ({"exclude_irradiated": "no"}, "exclude_irradiated"),
        ({"seed": -1}, "seed"),
        ({"lesion_sites": "lung"}, "lesion_sites"),
    ],
)
def test_assessment_constructor_refuses_bad_values(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        TrialAssessment(**kwargs)
    assert TrialAssessment(orr_visit_day=84.0).orr_visit_day == 84.0


@pytest.mark.parametrize(
    ("criteria", "confirm", "irecist"),
    [("recist1.1", False, False), ("irecist", False, True), ("irecist", True, True), ("irrc", True, False)],
)
def test_assessment_criteria_choose_the_rules(criteria, confirm, irecist):
    """``irecist`` scores by iRECIST, the other criteria by RECIST 1.1 (no bidimensional or toxicity response);
    confirmation of responses is independent of the criteria."""
    spec = AssessmentSpec(criteria=criteria, confirm_response=confirm)
    rules = spec.to_assessment().rules
    assert rules.irecist is irecist and rules.require_confirmation is confirm


def test_a_study_scores_by_the_criteria_it_names(tmp_path):
    text = STUDY.replace("[axes]", '[assessment]\ncriteria = "irecist"\n[axes]')
    design = load_study(_write(tmp_path, text))
    assert design.trial_assessment(0.0, 730.0).rules.irecist
    assert not load_study(_write(tmp_path, STUDY)).trial_assessment(0.0, 730.0).rules.irecist


def test_assessment_spec_refuses_unknown_criteria_with_a_suggestion():
    with pytest.raises(TargetError, match="did you mean"):
        AssessmentSpec(criteria="recist2")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rtol": "x"}, "rtol"),
        ({"max_steps": "x"}, "max_steps"),
        ({"atol_scale": None}, "atol_scale"),
        ({"parallel": "no"}, "parallel"),
        ({"method": 3}, "method"),
    ],
)
def test_solver_options_refuse_wrong_types(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SolverOptions(**kwargs)


@pytest.mark.parametrize("value", [True, 2.7, "3", 0])
def test_population_size_must_be_a_whole_number(value):
    with pytest.raises(ParameterError, match="n_patients"):
        VirtualPopulation(n_patients=value)


# ---- simulate: refused before any work (no compilation happens in these tests) ----------------------------------
@pytest.fixture(scope="module")
def spec():
    return nsclc_model(n_lesions=3)


def _plan(**course):
    rt = radiation_regimen("sbrt_24gy_3fx", start_day=-7.0) if not course else RadiationCourse(**course)
    return TreatmentPlan(radiation=(rt,), drug=drug_regimen("pembrolizumab_200mg_q3w"), name="p")


def test_rt_after_the_horizon_is_refused_naming_arm_day_and_end(spec):
    plan = TreatmentPlan(
        radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=200.0),), drug=drug_regimen("pembrolizumab_200mg_q3w")
    )
    with pytest.raises(ScheduleError, match=r"arm 'late': RT fraction on day 200 is after t_end_day = 100"):
        simulate(spec, [Arm(name="late", plan=plan)], t_end_day=100.0)


def test_mechanisms_off_as_a_string_is_refused(spec):
    with pytest.raises(ParameterError, match="got the string 'pk'"):
        simulate(spec, _plan(), t_end_day=100.0, mechanisms_off="pk")


def test_millions_of_fractions_are_refused_before_they_are_expanded(spec):
    plan = _plan(dose_per_fraction_gy=0.01, n_fractions=MAX_EVENTS_PER_ARM + 1, start_day=-7.0)
    with pytest.raises(ScheduleError, match=r"100001 RT fractions.*100,007 events.*--allow-large"):
        simulate(spec, plan, t_end_day=100.0)


def test_a_tiny_output_interval_is_refused_with_the_estimate(spec):
    with pytest.raises(ScheduleError, match=r"output times.*GiB, above the limit of 2 GiB.*allow_large=True"):
        simulate(spec, _plan(), population=VirtualPopulation(n_patients=2), t_end_day=730.0, output_interval_day=1e-6)


def test_a_drug_schedule_with_millions_of_doses_is_refused(spec):
    drug = DrugRegimen(drug="pembrolizumab", dose_mg=200.0, interval_day=1e-5)
    with pytest.raises(ScheduleError, match="drug doses"):
        simulate(spec, TreatmentPlan(drug=drug), t_end_day=100.0)


def test_check_cost_passes_below_and_with_the_override():
    check_cost("x", MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES, "bytes", False)
    check_cost("x", 10 * MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES, "bytes", True)
    with pytest.raises(ScheduleError, match="20 GiB"):
        check_cost("x", 10 * MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES, "bytes", False)


def test_a_1000_by_1001_study_grid_is_refused_unless_allowed():
    design = parse_study(
        {
            "fit": "none",
            "population": {"n_patients": 5},
            "axes": {
                "timing": list(range(1000)),
                "fractionation": [{"dose_per_fraction_gy": 1 + i / 10, "n_fractions": 1} for i in range(1001)],
            },
        }
    )
    with pytest.raises(ScheduleError, match=r"1001000 cells x \(0 draws \+ 1\) x 5 patients.*--allow-large"):
        check_study_cost(design)
    check_study_cost(design, allow_large=True)


def test_the_shipped_study_is_below_the_study_limit():
    design = load_study(ROOT / "studies" / "default.toml")
    check_study_cost(design)
    assert 42 * 21 * 200 < MAX_STUDY_SIMULATIONS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"population": 5}, "VirtualPopulation"),
        ({"solver": {"rtol": 1e-6}}, "SolverOptions"),
        ({"output_times_day": "x"}, "output_times_day"),
        ({"output_interval_day": "7"}, "output_interval_day"),
    ],
)
def test_simulate_refuses_wrong_argument_types(spec, kwargs, match):
    with pytest.raises(AbscopalError, match=match):
        simulate(spec, _plan(), t_end_day=100.0, **kwargs)
