"""Shared fixtures: compiled models, built once per test session.

Compiling a model's numba kernels costs 15-35 s cold; the kernels are cached on disk (in
``$ABSCOPAL_CACHE_DIR`` or ``~/.cache/abscopal``), so a second session starts warm. Every fixture
that compiles is session-scoped, and the toy models are kept to one or two states so their
kernels compile quickly.

Toy models
----------
``toy`` (spec ``toy_spec``): two independent states,

* ``V`` (mm3): Gompertz growth ``dV/dt = g V ln(K/V)``, ``V(0) = V0``, with the LQ jump
  ``V -> V exp(-alpha d - beta d^2)`` at each ``radiation_fraction`` (argument ``dose_gy``);
* ``C`` (mg/L): one-compartment PK ``dC/dt = -k_el C``, ``C(0) = 0``, with the bolus jump
  ``C -> C + (dose_mg + dose_mg_per_kg * body_weight_kg) / vd_l`` at each ``drug_dose``.

Both have closed forms (see ``tests/integration/test_analytic.py``), and the event names and
arguments match what :func:`abscopal.simulate.plan_events` produces for a model without lesions.

``blowup`` (spec ``blowup_spec``): ``dy/dt = c y^2``, ``y(0) = 1``, which is infinite at ``t = 1/c``.
"""

from __future__ import annotations

import os
import stat

import pytest
import sympy as sp

from abscopal.model import (
    CompiledModel,
    Event,
    EventArgument,
    ModelSpec,
    Observable,
    Parameter,
    State,
    compile_model,
    sym,
)
from abscopal.model.library.nsclc import nsclc_model

# Parameter values of the toy model (also used by the closed forms in the tests).
TOY_DEFAULTS = {
    "g": 0.05,
    "K": 1.0e5,
    "V0": 100.0,
    "alpha": 0.3,
    "beta": 0.03,
    "k_el": 0.03,
    "vd_l": 3.0,
    "body_weight_kg": 70.0,
}


def build_toy_spec(**overrides: float) -> ModelSpec:
    """The two-state toy model (Gompertz + LQ jumps, one-compartment PK + boluses)."""
    d = TOY_DEFAULTS | overrides
    V, C = sym("V"), sym("C")
    g, K, alpha, beta, k_el, vd = (sym(n) for n in ("g", "K", "alpha", "beta", "k_el", "vd_l"))
    dose, dose_mg, dose_kg = sym("dose_gy"), sym("dose_mg"), sym("dose_mg_per_kg")
    return ModelSpec(
        name="test_toy_gompertz_pk",
        description="dV/dt = g V ln(K/V); dC/dt = -k_el C; LQ and bolus jumps",
        states=(
            State(name="V", units="mm3", long_name="tumour volume", initial=sym("V0"), abs_tol=1e-8),
            State(name="C", units="mg/L", long_name="drug concentration", initial=0, abs_tol=1e-10),
        ),
        parameters=(
            Parameter(name="g", units="1/day", default=d["g"], lower=0.0, upper=10.0),
            Parameter(name="K", units="mm3", default=d["K"], lower=1.0, upper=1e9),
            Parameter(name="V0", units="mm3", default=d["V0"], lower=1e-6, upper=1e9),
            Parameter(name="alpha", units="1/Gy", default=d["alpha"], lower=0.0, upper=2.0),
            Parameter(name="beta", units="1/Gy2", default=d["beta"], lower=0.0, upper=1.0),
            Parameter(name="k_el", units="1/day", default=d["k_el"], lower=0.0, upper=10.0),
            Parameter(name="vd_l", units="L", default=d["vd_l"], lower=0.01, upper=100.0),
            Parameter(name="body_weight_kg", units="kg", default=d["body_weight_kg"], lower=1.0, upper=500.0),
        ),
        rates={"V": g * V * sp.log(K / V), "C": -k_el * C},
        events=(
            Event(
                name="radiation_fraction",
                arguments=(EventArgument(name="dose_gy", units="Gy"),),
                jumps={"V": V * sp.exp(-alpha * dose - beta * dose**2)},
            ),
            Event(
                name="drug_dose",
                arguments=(
                    EventArgument(name="dose_mg", units="mg"),
                    EventArgument(name="dose_mg_per_kg", units="mg/kg"),
                ),
                jumps={"C": C + (dose_mg + dose_kg * sym("body_weight_kg")) / vd},
            ),
        ),
        observables=(
            Observable(
                name="diameter",
                units="mm",
                long_name="sphere-equivalent diameter",
                expr=(6 * V / sp.pi) ** sp.Rational(1, 3),
            ),
        ),
    )


def build_blowup_spec() -> ModelSpec:
    """``dy/dt = c y^2``, ``y(0) = 1``: finite-time blow-up at ``t = 1/c`` (default 1 day)."""
    y, c = sym("y_blow"), sym("c")
    return ModelSpec(
        name="test_toy_blowup",
        description="dy/dt = c y^2 (blows up at t = 1/c)",
        states=(State(name="y_blow", units="1", long_name="exploding quantity", initial=1.0),),
        parameters=(Parameter(name="c", units="1/day", default=1.0, lower=0.0, upper=10.0),),
        rates={"y_blow": c * y**2},
    )


# The OS link's fields of a provisional v2 fit (a first version of fits/default.json, rounded), for
# synthetic-recovery tests of the default model. With the published intercept (6.94) and the model defaults, the OS
# medians of the PEMBRO-RT-like arms lie beyond the 2-year follow-up (not reached): the synthetic median is then
# extrapolated, the smooth survival at it is not 0.5, and its residual cannot vanish at the truth. With these values
# the medians fall within follow-up.
REACHABLE_OS_BASE = {"survival__intercept_log_day": 6.37, "survival__pretreated_log_time_ratio": -0.87}


@pytest.fixture(scope="session")
def reachable_os_base() -> dict[str, float]:
    """``base_parameters`` for calibration problems built on synthetic targets (see :data:`REACHABLE_OS_BASE`)."""
    return dict(REACHABLE_OS_BASE)


@pytest.fixture(scope="session")
def nsclc3_spec() -> ModelSpec:
    """The default NSCLC model with 3 lesions (spec only)."""
    return nsclc_model(3)


@pytest.fixture(scope="session")
def nsclc3(nsclc3_spec: ModelSpec) -> CompiledModel:
    """The default NSCLC model with 3 lesions, compiled (kernels cached on disk)."""
    return compile_model(nsclc3_spec)


@pytest.fixture(scope="session")
def nsclc3_ode_spec() -> ModelSpec:
    """The NSCLC model with the drug PK as ODE states Ac, Ap (time-varying clearance possible)."""
    return nsclc_model(3, pk="ode")


@pytest.fixture(scope="session")
def nsclc3_ode(nsclc3_ode_spec: ModelSpec) -> CompiledModel:
    """:func:`nsclc3_ode_spec`, compiled."""
    return compile_model(nsclc3_ode_spec)


@pytest.fixture(scope="session")
def make_toy_spec():
    """The builder of the toy spec, ``make_toy_spec(**default_overrides)``."""
    return build_toy_spec


@pytest.fixture(scope="session")
def toy_spec() -> ModelSpec:
    """Spec of the two-state toy model (see the module docstring)."""
    return build_toy_spec()


@pytest.fixture(scope="session")
def toy(toy_spec: ModelSpec) -> CompiledModel:
    """The two-state toy model, compiled."""
    return compile_model(toy_spec)


@pytest.fixture(scope="session")
def blowup_spec() -> ModelSpec:
    """Spec of the blow-up toy model."""
    return build_blowup_spec()


@pytest.fixture(scope="session")
def blowup(blowup_spec: ModelSpec) -> CompiledModel:
    """The blow-up toy model, compiled."""
    return compile_model(blowup_spec)


def _is_device(path) -> bool:
    try:
        mode = os.stat(path).st_mode
    except (OSError, TypeError, ValueError):
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


@pytest.fixture(autouse=True)
def _never_touch_a_device(monkeypatch):
    """Safety net for tests that pass a real device (e.g. /dev/null) as an output: should the output checks ever
    regress, the test fails here instead of replacing or removing a device of the machine running the suite."""
    for name in ("replace", "rename", "unlink", "remove"):
        real = getattr(os, name)

        def guarded(*args, _real=real, _name=name, **kwargs):
            target = args[1] if _name in ("replace", "rename") else args[0]
            if _is_device(target):
                raise AssertionError(f"os.{_name} on the device {target!r}: an output check let a device through")
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, guarded)
