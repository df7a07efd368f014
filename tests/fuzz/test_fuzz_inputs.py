"""Fuzz the input files (issue 9 section 4): mutate the shipped scenario, study, target and calibration files
(wrong types, deleted and unknown keys, extreme numbers, non-UTF-8 bytes, NUL characters, truncation) and check that
loading and validating them either succeeds or raises an :class:`~abscopal.errors.AbscopalError`, never anything
else. Nothing is simulated. Deterministic (``derandomize=True``) so CI runs the same examples every time."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abscopal.calibrate.fit import Calibration
from abscopal.endpoints import TrialAssessment
from abscopal.errors import AbscopalError
from abscopal.scenario import load_scenario
from abscopal.studies.design import load_study
from abscopal.trials import load_targets

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
STUDIES = sorted((ROOT / "studies").glob("*.toml"))
TARGETS = sorted((ROOT / "fits" / "targets").glob("*.toml"))
FIT = ROOT / "fits" / "default.json"

# values a mutation may put anywhere: wrong types, extreme and non-finite numbers, awkward text
POOL: list[Any] = [
    "",
    "x",
    "one",
    "3",
    "\x00",
    "t\x00t",
    "\u00e9",
    "none",
    "default",
    "best",
    -1,
    0,
    1,
    2,
    7,
    2**63,
    -(2**63),
    1e308,
    -1e308,
    math.nan,
    math.inf,
    -math.inf,
    2.7,
    1e-6,
    -0.5,
    True,
    False,
    [],
    [0],
    [1, 2],
    ["x"],
    [[1]],
    {},
    {"x": 1},
    [{"x": 1}],
]
UNKNOWN_KEYS = ["x", "foo", "nme", "n_patient", "", "\u00e9"]
SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


# ---- a minimal TOML writer (inline tables only), so mutated mappings go through the real file loaders ------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(data: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(str(k))} = {_toml_value(v)}\n" for k, v in data.items())


def test_the_toml_writer_round_trips_every_shipped_file():
    for path in (*SCENARIOS, *STUDIES, *TARGETS):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert tomllib.loads(to_toml(data)) == data


# ---- mutations ------------------------------------------------------------------------------------------------
def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(data: Any, draw: Any) -> Any:
    """Apply one mutation at a random place: replace a value, delete a key/item, or add an unknown key."""
    data = json.loads(json.dumps(data))  # deep copy (all shipped content is JSON-compatible)
    path = draw(st.sampled_from(_paths(data)))
    op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if not path:  # the whole document
        if op == "add" and isinstance(data, dict):
            data[draw(st.sampled_from(UNKNOWN_KEYS))] = draw(st.sampled_from(POOL))
        return data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op == "replace":
        parent[last] = draw(st.sampled_from(POOL))
    elif op == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][draw(st.sampled_from(UNKNOWN_KEYS))] = draw(st.sampled_from(POOL))
    else:
        parent[last] = draw(st.sampled_from(POOL))
    return data


def _mutate_bytes(raw: bytes, draw: Any) -> bytes:
    """Truncate, insert a stray byte (NUL, a latin-1 letter, an invalid UTF-8 byte, TOML syntax) or re-encode."""
    op = draw(st.sampled_from(["truncate", "insert", "latin1"]))
    k = draw(st.integers(0, len(raw)))
    if op == "truncate":
        return raw[:k]
    if op == "insert":
        return (
            raw[:k]
            + draw(st.sampled_from([b"\x00", b"\xe9", b"\xff", b"\x80", b'"', b"[", b"\n[[arm]]\n", b"="]))
            + raw[k:]
        )
    return raw.decode("utf-8").replace("e", "\u00e9", 1).encode("latin-1", errors="replace")


def _only_abscopal_errors(load: Any, path: Path) -> None:
    try:
        load(path)
    except AbscopalError:
        pass


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _structure_case(files: list[Path], load: Any, n: int, suffix: str = ".toml"):
    @settings(max_examples=n, **SETTINGS)
    @given(data=st.data())
    def run(work: Path, data: Any) -> None:
        source = data.draw(st.sampled_from(files))
        if suffix == ".json":
            content = json.loads(source.read_text(encoding="utf-8"))
        else:
            content = tomllib.loads(source.read_text(encoding="utf-8"))
        for _ in range(data.draw(st.integers(1, 3))):
            content = _mutate(content, data.draw)
        path = work / f"mutated{suffix}"
        if suffix == ".json":
            path.write_text(json.dumps(content), encoding="utf-8")
        else:
            path.write_text(to_toml(content), encoding="utf-8")
        _only_abscopal_errors(load, path)

    return run


def _bytes_case(files: list[Path], load: Any, n: int, suffix: str = ".toml"):
    @settings(max_examples=n, **SETTINGS)
    @given(data=st.data())
    def run(work: Path, data: Any) -> None:
        source = data.draw(st.sampled_from(files))
        path = work / f"mangled{suffix}"
        path.write_bytes(_mutate_bytes(source.read_bytes(), data.draw))
        _only_abscopal_errors(load, path)

    return run


def _scenario(path: Path) -> Any:
    return load_scenario(path, n_patients=None)


# scenarios build their model (about 0.3 s each): 60 examples in the default suite, 300 more in CI's slow stage
test_mutated_scenarios_raise_only_abscopal_errors = _structure_case(SCENARIOS, _scenario, 60)
test_mutated_scenarios_many_raise_only_abscopal_errors = pytest.mark.slow(_structure_case(SCENARIOS, _scenario, 300))
test_mangled_scenario_bytes_raise_only_abscopal_errors = _bytes_case(SCENARIOS, _scenario, 80)
test_mutated_studies_raise_only_abscopal_errors = _structure_case(STUDIES, load_study, 300)
test_mangled_study_bytes_raise_only_abscopal_errors = _bytes_case(STUDIES, load_study, 100)
test_mutated_targets_raise_only_abscopal_errors = _structure_case(TARGETS, load_targets, 400)
test_mangled_target_bytes_raise_only_abscopal_errors = _bytes_case(TARGETS, load_targets, 120)
test_mutated_calibrations_raise_only_abscopal_errors = _structure_case([FIT], Calibration.load, 250, ".json")
test_mangled_calibration_bytes_raise_only_abscopal_errors = _bytes_case([FIT], Calibration.load, 60, ".json")


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "null", "{}", '{"format": 3}', "1e999"])
def test_calibration_files_of_the_wrong_shape_raise_abscopal_errors(work, content):
    path = work / "shape.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AbscopalError):
        Calibration.load(path)


@settings(max_examples=200, **SETTINGS)
@given(
    kwargs=st.dictionaries(
        st.sampled_from(["orr_visit_day", "follow_up_day", "exclude_irradiated", "seed", "lesion_sites"]),
        st.sampled_from(POOL),
        max_size=3,
    )
)
def test_assessment_constructor_raises_only_abscopal_errors(kwargs):
    try:
        TrialAssessment(**kwargs)
    except AbscopalError:
        pass
