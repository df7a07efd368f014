"""python-libsbml is optional: ``import abscopal`` (and ``abscopal.sbml``) work without it, and the SBML functions
stop with an error naming the ``sbml`` extra."""

from __future__ import annotations

import subprocess
import sys


def test_without_libsbml_the_error_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['libsbml'] = None  # as if python-libsbml were not installed\n"
        "import abscopal, abscopal.sbml\n"
        "from abscopal.errors import AbscopalError\n"
        "assert 'libsbml' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "calls = (lambda: abscopal.sbml.to_sbml(abscopal.kosinsky2018()), lambda: abscopal.sbml.read_sbml('x.xml'))\n"
        "for call in calls:\n"
        "    try:\n"
        "        call()\n"
        "    except AbscopalError as exc:\n"
        "        assert 'pip install abscopal[sbml]' in str(exc), exc\n"
        "    else:\n"
        "        raise AssertionError('no error')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
