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
