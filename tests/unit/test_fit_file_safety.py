"""A calibration file may come from someone else: reading it never runs code, and a malformed one is refused with
an :class:`AbscopalError` naming the file.

The crafted file is the shipped fit in the old format (``abscopal-calibration-v1``, whose ``params_json`` is lmfit's
``Parameters.dumps()`` text) with a dill payload in the places lmfit's decoder unpickles (``unique_symbols``
"Callable" entries) or stores (``user_data``). The payload writes a marker file; a positive control shows that
lmfit's own ``Parameters.loads`` does run it.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import sys
from pathlib import Path

import lmfit
import pytest

from abscopal.calibrate.fit import Calibration
from abscopal.errors import AbscopalError
from abscopal.fitted.draws import parameter_draws
from abscopal.fitted.format import FORMAT
from abscopal.fitted.shipped import load_fit

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "fits" / "default.json"

dill = pytest.importorskip("dill")  # lmfit's decoder uses dill when it is installed (it is a test dependency)


class _Payload:
    """Unpickling this writes ``marker``: the code execution a calibration file must never cause."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"with open({self.marker!r}, 'w') as f:\n    f.write('ran')",))


def _callable_entry(marker: Path) -> dict:
    """lmfit's JSON encoding of a function (``lmfit.jsonutils.encode4js``), carrying the payload."""
    return {
        "__class__": "Callable",
        "__name__": "planted",
        "importer": "no_such_module_for_abscopal_tests",
        "pyversion": f"{sys.version_info.major}.{sys.version_info.minor}",  # the dill branch, no warning
        "value": base64.b64encode(dill.dumps(_Payload(marker))).decode(),
    }


def _crafted_params_json(marker: Path) -> str:
    """lmfit ``Parameters.dumps()`` text of the shipped fit's parameters with the payload planted."""
    data = json.loads(Calibration.load(SHIPPED).parameters().dumps())
    data["unique_symbols"]["wofz"] = _callable_entry(marker)
    data["params"][0][10] = _callable_entry(marker)  # user_data
    return json.dumps(data)


@pytest.fixture
def crafted(tmp_path) -> tuple[Path, Path]:
    """(crafted fit file, marker path)."""
    marker = tmp_path / "marker"
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["format"] = "abscopal-calibration-v1"
    data["params_json"] = _crafted_params_json(marker)
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, marker


def test_the_payload_is_live_under_lmfit_loads(tmp_path):
    """Positive control: the crafted text does run code through lmfit's own decoder."""
    marker = tmp_path / "control"
    lmfit.Parameters().loads(_crafted_params_json(marker))
    assert marker.read_text() == "ran"


def test_crafted_fit_file_loads_and_is_used_without_running_code(crafted):
    path, marker = crafted
    cal = Calibration.load(path)
    shipped = Calibration.load(SHIPPED)
    params = cal.parameters()
    assert params.valuesdict() == shipped.parameters().valuesdict() == shipped.values
    assert {k: (p.min, p.max, p.vary, p.stderr) for k, p in params.items()} == {
        k: (p.min, p.max, p.vary, p.stderr) for k, p in shipped.parameters().items()
    }
    assert cal.params_json == shipped.params_json  # only the plain fields were kept
    assert parameter_draws(cal, 3, seed=0).array.shape[0] == 3  # what studies and validate use
    assert load_fit(path).values == shipped.values  # what scenario files and studies use
    assert not marker.exists()


def test_crafted_fit_file_through_the_commands_runs_no_code(crafted, tmp_path, monkeypatch):
    """The load paths of validate, study, fit-report and crossval (the work after loading is cut short)."""
    crossval = importlib.import_module("abscopal.calibrate.crossval")
    validate_module = importlib.import_module("abscopal.calibrate.validate")  # the package exports validate()
    from abscopal.cli import main
    from abscopal.scenario import parse_scenario
    from abscopal.studies import run
    from abscopal.studies.design import parse_study

    path, marker = crafted
    cal, meta = validate_module._load(path)  # abscopal validate
    assert meta["path"] == str(path) and cal.values == Calibration.load(SHIPPED).values

    class StopError(Exception):
        pass

    def stop(*args, **kwargs):
        raise StopError

    monkeypatch.setattr(crossval, "cross_validate", stop)  # abscopal crossval --like (after parameters())
    with pytest.raises(StopError):
        main(["crossval", str(ROOT / "fits" / "targets"), "--like", str(path), "--out", str(tmp_path / "cv.json")])
    monkeypatch.setattr(run, "compile_model", stop)  # abscopal study (after the fit and its parameter draws)
    with pytest.raises(StopError):
        run.prepare_study(
            parse_study(
                {
                    "fit": str(path),
                    "population": {"mix": "pembro_rt", "n_patients": 2},
                    "uncertainty": {"n_draws": 2},
                    "axes": {"timing": [0]},
                }
            )
        )
    parse_scenario({"fit": str(path), "arm": [{"name": "pembro", "drug": "pembrolizumab_200mg_q3w"}]})
    assert main(["fit-report", str(path), "--out", str(tmp_path / "report.html")]) == 0  # abscopal fit-report
    assert (tmp_path / "report.html").is_file()
    assert not marker.exists()


def test_new_files_hold_plain_parameter_records(tmp_path):
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT
    records = data["params_json"]
    assert isinstance(records, list) and [r["name"] for r in records] == list(data["values"])
    for r in records:
        assert set(r) == {"name", "value", "vary", "min", "max", "stderr", "expr", "correl"}
        assert r["value"] == data["values"][r["name"]] and r["expr"] is None
    again = Calibration.load(Calibration.load(SHIPPED).save(tmp_path / "again.json"))
    # field by field; JSON text so that a NaN (a profile point whose simulation failed) equals itself
    fields = [f.name for f in dataclasses.fields(Calibration)]
    loaded = Calibration.load(SHIPPED)
    for name in fields:
        assert json.dumps(getattr(again, name), sort_keys=True, default=str) == json.dumps(
            getattr(loaded, name), sort_keys=True, default=str
        ), name
    assert (tmp_path / "again.json").read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8")


def _shipped_with(**changes) -> dict:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    for key, value in changes.items():
        target, *rest = key.split("__")
        if rest:
            data[target][rest[0]] = value
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"[1, 2, 3]", "expected a JSON object, got a list"),
        (b'"a string"', "expected a JSON object, got a str"),
        (b'{"format": "abscopal-calibration-v2", "values": {"a": ', "not valid JSON"),
        ("é".encode("latin-1") + b"{}", "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        (json.dumps(_shipped_with(format="other")).encode(), "format is 'other'"),
        (json.dumps(_shipped_with(values=[1, 2])).encode(), "'values' must be a JSON object"),
        (json.dumps(_shipped_with(values={"max_kill_per_day": "fast"})).encode(), "ValueError"),
        (json.dumps(_shipped_with(nfev="many")).encode(), "ValueError"),
        (json.dumps(_shipped_with(predictions={"a": 1})).encode(), "'predictions' must be a JSON array"),
        (json.dumps(_shipped_with(provenance__model_hash=7)).encode(), "provenance.model_hash"),
        (json.dumps(_shipped_with(provenance__n_lesions="3")).encode(), "provenance.n_lesions"),
        (json.dumps(_shipped_with(provenance__base_parameters={"x": "big"})).encode(), "base_parameters"),
        (json.dumps(_shipped_with(identifiability="one sentence")).encode(), "'identifiability' must be a JSON array"),
        (json.dumps(_shipped_with(profiles=[1])).encode(), "'profiles' must be a JSON object"),
        (json.dumps(_shipped_with(params_json="not json")).encode(), "params_json"),
        (
            json.dumps(_shipped_with(params_json=[{"name": "a", "value": 1, "pickle": "gASV"}])).encode(),
            r"unknown field\(s\) \['pickle'\]",
        ),
        (
            json.dumps(_shipped_with(params_json=[{"name": "a", "value": {"__class__": "Callable"}}])).encode(),
            "value must be a number",
        ),
        (json.dumps(_shipped_with(params_json=[{"name": "a b", "value": 1}])).encode(), "identifier"),
        (json.dumps(_shipped_with(params_json=[{"name": "a", "value": 1, "vary": "yes"}])).encode(), "vary"),
    ],
)
def test_malformed_fit_files_raise_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(AbscopalError, match=match) as info:
        Calibration.load(path)
    assert str(path) in str(info.value) and "abscopal fit" in str(info.value)


def test_a_constraint_expression_is_kept_as_text_and_never_evaluated(tmp_path):
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["params_json"][0]["expr"] = "__import__('os').getcwd()"
    path = tmp_path / "expr.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    cal = Calibration.load(path)  # values and predictions are usable
    with pytest.raises(AbscopalError, match=r"constraint expression .*not evaluated"):
        cal.parameters()
