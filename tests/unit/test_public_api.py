"""The public scoring API: ``ab.score`` / ``ab.TrialAssessment``, lazy submodules, and what
``abscopal.endpoints`` exports."""

from __future__ import annotations

import re
import subprocess
import sys

import abscopal as ab
import abscopal.endpoints as endpoints


def test_import_abscopal_loads_neither_matplotlib_nor_the_plot_module():
    code = (
        "import sys, abscopal as ab\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
        "assert 'abscopal.plot' not in sys.modules, 'abscopal.plot imported'\n"
        "assert 'abscopal.endpoints' not in sys.modules, 'abscopal.endpoints imported'\n"
        "assert ab.plot.__name__ == 'abscopal.plot'\n"
        "assert ab.score.__module__ == 'abscopal.endpoints.pipeline'\n"
        "from abscopal import TrialAssessment\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_score_and_trial_assessment_are_the_endpoints_objects():
    assert ab.score is endpoints.score
    assert ab.TrialAssessment is endpoints.TrialAssessment
    assert {"score", "TrialAssessment"} <= set(ab.__all__)
    assert {"plot", "endpoints", "score"} <= set(dir(ab))


def test_an_unknown_attribute_is_still_an_attribute_error():
    try:
        ab.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("ab.no_such_name did not raise")


def test_endpoints_all_is_exactly_what_its_docstring_documents():
    doc = endpoints.__doc__ or ""
    exported = doc.split("Exported here:", 1)[1].split("The modules", 1)[0]
    documented = set(re.findall(r":(?:func|class|data):`(\w+)`", exported))
    assert documented == set(endpoints.__all__)
    for name in endpoints.__all__:
        assert hasattr(endpoints, name), name


def test_one_class_per_assessment_name():
    from abscopal.endpoints import recist

    assert not hasattr(recist, "Assessment") and not hasattr(endpoints, "Assessment")
    assert recist.RecistAssessment is endpoints.RecistAssessment
    assert endpoints.TrialAssessment is not endpoints.RecistAssessment
