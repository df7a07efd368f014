"""Trial-target files: shipped files load, hashes are stable, validation errors name file and key, SEs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from abscopal.trials import TAG_WEIGHTS, ComparisonTarget, Outcome, TargetError, load_all, load_targets

TARGETS = Path(__file__).resolve().parents[2] / "fits" / "targets"
SHIPPED = sorted(TARGETS.glob("*.toml"))

MINIMAL = """\
id = "demo"
title = "Demo trial"
citation = "Doe 2020"
confidence = "P"

[[arm]]
name = "control"
n_patients = 40
drug = "pembrolizumab_200mg_q3w"
population = { mix = "pembro_rt" }
[[arm.outcome]]
name = "orr"
value = 0.18

[[arm]]
name = "sbrt"
n_patients = 36
drug = "pembrolizumab_200mg_q3w"
[[arm.radiation]]
regimen = "sbrt_24gy_3fx"
start_day = -7
[[arm.outcome]]
name = "median_pfs_month"
value = 6.6
ci_lower = 4.0
ci_upper = 14.6

[[comparison]]
reference = "control"
arm = "sbrt"
endpoint = "pfs"
hr = 0.71
ci_lower = 0.42
ci_upper = 1.18
"""


def _write(tmp_path: Path, text: str, name: str = "demo.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_files_load() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "pembro_rt",
        "mdacc_welsh2020",
        "li2022_sintilimab",
        "ratnayake2020",
        "keynote001_shaverdian2017",
        "pneumonitis",
    } <= names
    trials = load_all(TARGETS)
    assert len(trials) == len(SHIPPED)
    for trial in trials.values():
        for arm in trial.arms:
            for o in arm.outcomes:
                assert o.standard_error() > 0 and o.weight in TAG_WEIGHTS.values()
        for c in trial.comparisons:
            assert c.standard_error() > 0


def test_pembro_rt_numbers() -> None:
    t = load_targets(TARGETS / "pembro_rt.toml")
    assert [a.n_patients for a in t.arms] == [40, 36]
    exp = t.arm("sbrt+pembro")
    assert exp.outcome("orr").value == 0.36 and exp.assessment.orr_visit_day == 84
    os_ = exp.outcome("median_os_month")
    assert os_.ci_lower == 7.1 and os_.ci_upper is None  # NR
    assert exp.radiation[0].regimen == "sbrt_24gy_3fx" and exp.radiation[0].start_day == -7
    assert {(c.endpoint, c.hr) for c in t.comparisons} == {("pfs", 0.71), ("os", 0.66)}
    assert exp.population.patient_mix().name == "pembro_rt"


def test_mdacc_weak_numbers_tagged() -> None:
    t = load_targets(TARGETS / "mdacc_welsh2020.toml")
    sbrt = t.arm("sbrt_50gy_4fx+pembro")
    assert sbrt.outcome("median_pfs_month").confidence == "SEED"
    assert sbrt.outcome("orr").confidence == "P"
    assert all(a.n_confidence == "U" for a in t.arms)


def test_hash_stable_and_sensitive(tmp_path: Path) -> None:
    a = load_targets(_write(tmp_path, MINIMAL, "a.toml"))
    b = load_targets(_write(tmp_path, "# a comment\n" + MINIMAL, "b.toml"))
    assert a.content_hash() == b.content_hash() == load_targets(tmp_path / "a.toml").content_hash()
    c = load_targets(_write(tmp_path, MINIMAL.replace("value = 0.18", "value = 0.19"), "c.toml"))
    assert c.content_hash() != a.content_hash()
    for path in SHIPPED:
        assert load_targets(path).content_hash() == load_targets(path).content_hash()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("n_patients = 40\n", "n_patinets = 40\n", ["n_patinets", "did you mean 'n_patients'"]),
        ("n_patients = 36\n", "", ["arm[1]['sbrt']", "missing required key 'n_patients'"]),
        ('regimen = "sbrt_24gy_3fx"', 'regimen = "sbrt_24gy_3f"', ["radiation[0]", "sbrt_24gy_3f", "did you mean"]),
        ('drug = "pembrolizumab_200mg_q3w"\npop', 'drug = "pembro_200mg_q3w"\npop', ["drug", "pembro_200mg_q3w"]),
        ('mix = "pembro_rt"', 'mix = "pembrort"', ["population", "pembrort", "did you mean 'pembro_rt'"]),
        ("value = 6.6", "value = 16.6", ["outcome['median_pfs_month']", "16.6", "outside its own 95% CI"]),
        ("ci_lower = 4.0", "ci_lower = 15.0", ["ci_lower = 15.0 > ci_upper = 14.6"]),
        ("value = 0.18", "value = 18", ["outcome['orr']", "value = 18", "in [0, 1]"]),
        ('confidence = "P"', 'confidence = "PP"', ["confidence", "'PP'", "confidence tag"]),
        ('arm = "sbrt"', 'arm = "sbrt2"', ["comparison[0]", "'sbrt2'", "did you mean 'sbrt'"]),
        ("hr = 0.71\nci_lower = 0.42", "hr = 0.31\nci_lower = 0.42", ["comparison[0]", "0.31", "outside"]),
        (
            "n_patients = 40\n",
            'n_patients = 40\nfit = "no"\n',
            ["arm[0]['control']", "fit must be true or false", "'no'"],
        ),
        ("hr = 0.71\n", "hr = 0.71\nfit = 0\n", ["comparison[0]", "fit must be true or false", "got 0"]),
        (
            "n_patients = 36\n",
            "n_patients = 36\nfit = false\n",
            ["comparison[0]", "arm 'sbrt' is validate-only", "write fit = false on the comparison"],
        ),
        (
            'population = { mix = "pembro_rt" }\n',
            'population = { mix = "pembro_rt" }\nassessment = { confirm_response = "yes" }\n',
            ["arm[0]['control'].assessment", "confirm_response must be true or false", "'yes'"],
        ),
        (
            'population = { mix = "pembro_rt" }\n',
            'population = { mix = "pembro_rt" }\nassessment = { confirm_response = true, orr_visit_day = 84 }\n',
            ["arm[0]['control'].assessment", "confirm_response = true needs orr_visit_day = 'best'", "= 84"],
        ),
    ],
)
def test_validation_errors_name_file_and_key(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert old in MINIMAL
    path = _write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(TargetError) as info:
        load_targets(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_fit_and_confirm_response_keys(tmp_path: Path) -> None:
    """``fit`` (arm, comparison) defaults to true and ``confirm_response`` to false; written at their defaults they
    leave the content hash unchanged (files and fits made before the keys existed stay valid), otherwise they
    change it; confirm_response reaches the TrialAssessment's RECIST rules."""
    base = load_targets(_write(tmp_path, MINIMAL, "a.toml"))
    assert all(a.fit for a in base.arms) and all(c.fit for c in base.comparisons)
    assert not base.arm("control").assessment.confirm_response
    assert not base.arm("control").assessment.to_assessment().rules.require_confirmation
    explicit = MINIMAL.replace("n_patients = 40\n", "n_patients = 40\nfit = true\n").replace(
        "hr = 0.71\n", "hr = 0.71\nfit = true\n"
    )
    explicit = explicit.replace(
        'mix = "pembro_rt" }\n', 'mix = "pembro_rt" }\n[arm.assessment]\nconfirm_response = false\n'
    )
    assert load_targets(_write(tmp_path, explicit, "b.toml")).content_hash() == base.content_hash()
    validate_only = MINIMAL.replace("n_patients = 40\n", "n_patients = 40\nfit = false\n")
    held = load_targets(_write(tmp_path, validate_only.replace("hr = 0.71\n", "hr = 0.71\nfit = false\n"), "c.toml"))
    assert not held.arm("control").fit and not held.comparisons[0].fit
    assert held.content_hash() != base.content_hash()
    confirmed = MINIMAL.replace(
        'mix = "pembro_rt" }\n', 'mix = "pembro_rt" }\n[arm.assessment]\nconfirm_response = true\n'
    )
    arm = load_targets(_write(tmp_path, confirmed, "d.toml")).arm("control")
    assert arm.assessment.confirm_response and arm.assessment.to_assessment().rules.require_confirmation
    assert load_targets(tmp_path / "d.toml").content_hash() != base.content_hash()


def test_mdacc_fit_partition_and_strata_mixes() -> None:
    """MDACC: the pooled arms are validate-only; the two randomised cohorts are fitted, each with its own mix."""
    t = load_targets(TARGETS / "mdacc_welsh2020.toml")
    assert {a.name for a in t.arms if not a.fit} == {"pembro", "rt+pembro"}
    mixes = {a.name: a.population.mix for a in t.arms if a.fit}
    assert mixes == {
        "sbrt_50gy_4fx+pembro": "mdacc_sbrt_feasible",
        "pembro_sbrt_stratum": "mdacc_sbrt_feasible",
        "conv_45gy_15fx+pembro": "mdacc_conventional",
        "pembro_conv_stratum": "mdacc_conventional",
    }


def test_keynote_anchor_numbers() -> None:
    k24 = load_targets(TARGETS / "keynote024_reck2016.toml").arm("pembro")
    assert k24.n_patients == 154 and k24.radiation == () and k24.population.mix == "keynote024"
    assert (k24.outcome("orr").value, k24.outcome("median_pfs_month").value) == (0.448, 10.3)
    assert k24.outcome("median_pfs_month").ci_upper is None  # NR
    assert k24.outcome("median_os_month").confidence == "S"
    assert k24.assessment.scan_interval_week == 9 and k24.assessment.orr_visit_day == "best"
    k10 = load_targets(TARGETS / "keynote010_herbst2016.toml").arm("pembro_2mgkg")
    assert k10.n_patients == 345 and k10.drug is not None and k10.drug.regimen == "pembrolizumab_2mgkg_q3w"
    assert k10.outcome("median_os_month").value == 10.4 and k10.outcome("median_os_month").confidence == "P"
    assert {k10.outcome(n).confidence for n in ("orr", "median_pfs_month")} == {"U"}
    mix = k10.population.patient_mix()
    assert set(mix.pdl1_tps_mix) == {"1-49%", ">=50%"} and dict(mix.line_of_therapy) == {"pretreated": 1.0}
    assert 1 in mix.lesion_count and 1 in k24.population.patient_mix().lesion_count  # one lesion allowed


def test_outcome_tag_in_outcome_table(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("value = 0.18\n", 'value = 0.18\nconfidence = "X"\n'))
    with pytest.raises(TargetError, match=r"outcome\['orr'\].*confidence = 'X'"):
        load_targets(path)


def test_duplicate_ids(tmp_path: Path) -> None:
    a, b = _write(tmp_path, MINIMAL, "a.toml"), _write(tmp_path, MINIMAL, "b.toml")
    with pytest.raises(TargetError, match="already used"):
        load_all([a, b])


# Standard errors, hand examples; tolerance 1e-12 relative (closed forms, no iteration).
def test_binomial_se() -> None:
    o = Outcome(name="orr", value=0.18, n=40, confidence="P")
    assert o.standard_error() == pytest.approx(math.sqrt(0.18 * 0.82 / 40), rel=1e-12)  # 0.06075
    zero = Outcome(name="pneumonitis_grade3", value=0.0, n=63, confidence="SEED")
    p = 0.5 / 64
    assert zero.standard_error() == pytest.approx(math.sqrt(p * (1 - p) / 63), rel=1e-12)
    assert zero.weight == 0.25


def test_log_se_from_ci() -> None:
    m = Outcome(name="median_pfs_month", value=6.6, ci_lower=4.0, ci_upper=14.6, n=36, confidence="P")
    log_se = (math.log(14.6) - math.log(4.0)) / (2 * 1.959963984540054)  # 0.3303
    assert m.log_standard_error() == pytest.approx(log_se, rel=1e-12)
    assert m.standard_error() == pytest.approx(6.6 * log_se, rel=1e-12)
    hr = ComparisonTarget(
        name="x", reference="a", arm="b", endpoint="pfs", hr=0.71, ci_lower=0.42, ci_upper=1.18, n=76, confidence="P"
    )
    assert hr.log_standard_error() == pytest.approx(math.log(1.18 / 0.42) / 3.919927969080108, rel=1e-12)


def test_log_se_one_sided_and_no_ci() -> None:
    nr = Outcome(name="median_os_month", value=15.9, ci_lower=7.1, n=36, confidence="P")
    assert nr.log_standard_error() == pytest.approx(math.log(15.9 / 7.1) / 1.959963984540054, rel=1e-12)
    bare = Outcome(name="median_pfs_month", value=1.3, n=20, confidence="P")
    assert bare.log_standard_error() == pytest.approx(1 / math.sqrt(20), rel=1e-12)
    events = Outcome(name="median_pfs_month", value=1.3, n=20, n_events=16, confidence="U")
    assert events.log_standard_error() == pytest.approx(0.25, rel=1e-12) and events.weight == 0.1
    hr = ComparisonTarget(name="x", reference="a", arm="b", endpoint="os", hr=0.5, n=100, confidence="S")
    assert hr.log_standard_error() == pytest.approx(0.2, rel=1e-12) and hr.weight == 0.5
