"""Tests of the model specification language and of the generated kernels.

* ModelSpec validation: each inconsistency raises ModelError with a message that says what is wrong.
* ``ablation``, ``content_hash`` and ``equations_latex``.
* Generated code: the source compiles; the compiled right-hand side and Jacobian of the NSCLC
  model agree with sympy ``lambdify`` of the spec's own expressions at random points; the
  Jacobian agrees with central finite differences of the compiled right-hand side.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from abscopal.errors import ModelError
from abscopal.model import (
    TIME,
    Event,
    EventArgument,
    Mechanism,
    ModelSpec,
    Observable,
    Parameter,
    State,
    generate_source,
    sym,
)
from abscopal.model.library.nsclc import nsclc_model

SRC = Path(__file__).resolve().parents[2] / "src"


def _mini(**changes) -> ModelSpec:
    """A valid one-state spec; ``changes`` replace its constructor arguments."""
    x, k = sym("x"), sym("k_growth")
    kwargs = dict(
        name="mini",
        description="dx/dt = k x",
        states=(State(name="x", units="1", long_name="x", initial=1.0),),
        parameters=(Parameter(name="k_growth", units="1/day", default=0.1, lower=0.0, upper=1.0),),
        rates={"x": k * x},
        events=(
            Event(name="kick", arguments=(EventArgument(name="amount", units="1"),), jumps={"x": x + sym("amount")}),
        ),
        mechanisms=(Mechanism(name="growth", description="growth", neutral={"k_growth": 0.0}),),
    )
    kwargs.update(changes)
    return ModelSpec(**kwargs)


# ------------------------------------------------------------------------------- validation
def test_mini_spec_is_valid():
    spec = _mini()
    assert spec.state_names == ("x",)
    assert spec.parameter_names == ("k_growth", "on_growth")


def test_missing_rate_is_rejected():
    with pytest.raises(ModelError, match=r"no rate given for states \['x'\]"):
        _mini(rates={})


def test_rate_for_unknown_state_is_rejected():
    with pytest.raises(ModelError, match=r"unknown state 'xx'"):
        _mini(rates={"x": sym("x"), "xx": sym("x")})


def test_unknown_symbol_in_rate_suggests_the_close_name():
    with pytest.raises(ModelError, match=r"rate of 'x'.*unknown symbol 'k_growht'; did you mean 'k_growth'"):
        _mini(rates={"x": sym("k_growht") * sym("x")})


def test_unknown_symbol_in_initial_value_is_rejected():
    with pytest.raises(ModelError, match=r"initial value of 'x'.*unknown symbol 'x0'"):
        _mini(states=(State(name="x", units="1", long_name="x", initial=sym("x0")),))


@pytest.mark.parametrize(
    ("states", "parameters", "message"),
    [
        (
            (State(name="x", units="1", long_name="x"), State(name="x", units="1", long_name="x again")),
            (Parameter(name="k_growth", units="1/day", default=0.1),),
            r"state name 'x' is already used by a state",
        ),
        (
            (State(name="x", units="1", long_name="x"),),
            (Parameter(name="k_growth", units="1/day", default=0.1), Parameter(name="x", units="1", default=1.0)),
            r"parameter name 'x' is already used by a state",
        ),
        (
            (State(name="x", units="1", long_name="x"),),
            (
                Parameter(name="k_growth", units="1/day", default=0.1),
                Parameter(name="k_growth", units="1/day", default=0.2),
            ),
            r"parameter name 'k_growth' is already used by a parameter",
        ),
        (
            (State(name="x", units="1", long_name="x"),),
            (Parameter(name="k_growth", units="1/day", default=0.1), Parameter(name="on_growth", units="1", default=1)),
            r"parameter name 'on_growth' is already used by a parameter",
        ),
    ],
    ids=["state-state", "state-parameter", "parameter-parameter", "parameter-vs-mechanism-switch"],
)
def test_duplicate_names_are_rejected(states, parameters, message):
    with pytest.raises(ModelError, match=message):
        _mini(states=states, parameters=parameters)


def test_event_name_clashing_with_a_state_is_rejected():
    with pytest.raises(ModelError, match=r"event name 'x' is already used by a state"):
        _mini(events=(Event(name="x", arguments=(), jumps={}),))


def test_default_outside_bounds_is_rejected():
    with pytest.raises(ModelError, match=r"parameter 'k_growth': default 2\.0 lies outside its bounds \[0\.0, 1\.0\]"):
        Parameter(name="k_growth", units="1/day", default=2.0, lower=0.0, upper=1.0)


def test_non_finite_default_is_rejected():
    with pytest.raises(ModelError, match=r"default must be finite"):
        Parameter(name="k_growth", units="1/day", default=float("nan"))


@pytest.mark.parametrize("name", ["1x", "x-y", "my state", "", "t", "p", "lambda x"])
def test_invalid_identifier_is_rejected(name):
    with pytest.raises(ModelError, match=r"is not a valid identifier"):
        State(name=name, units="1", long_name="bad")
    with pytest.raises(ModelError, match=r"is not a valid identifier"):
        Parameter(name=name, units="1", default=0.0)


def test_unknown_state_in_jump_is_rejected():
    bad = Event(name="kick", arguments=(EventArgument(name="amount", units="1"),), jumps={"y": sym("amount")})
    with pytest.raises(ModelError, match=r"event 'kick': unknown state 'y'"):
        _mini(events=(bad,))


def test_unknown_symbol_in_jump_is_rejected():
    bad = Event(
        name="kick", arguments=(EventArgument(name="amount", units="1"),), jumps={"x": sym("x") + sym("amuont")}
    )
    with pytest.raises(ModelError, match=r"jump of 'x' in event 'kick'.*did you mean 'amount'\?"):
        _mini(events=(bad,))


def test_unknown_parameter_in_mechanism_neutral_values_is_rejected():
    mech = Mechanism(name="growth", description="growth", neutral={"k_grwth": 0.0})
    with pytest.raises(
        ModelError,
        match=r"mechanism 'growth' neutral values: unknown parameter 'k_grwth'; "
        r"did you mean 'k_growth'",
    ):
        _mini(mechanisms=(mech,))


def test_negative_lesion_index_and_bad_abs_tol_are_rejected():
    with pytest.raises(ModelError, match=r"lesion must be an int >= 0"):
        State(name="x", units="1", long_name="x", lesion=-1)
    with pytest.raises(ModelError, match=r"abs_tol must be > 0"):
        State(name="x", units="1", long_name="x", abs_tol=0.0)


# ---------------------------------------------------------------------------------- ablation
def test_ablation_switches_off_and_applies_neutral_values():
    spec = _mini()
    assert spec.ablation(()) == {}
    assert spec.ablation(("growth",)) == {"on_growth": 0.0, "k_growth": 0.0}


def test_ablation_of_nsclc_mechanisms(nsclc3_spec):
    off = ("lymphocyte_kill", "new_lesions")
    assert nsclc3_spec.ablation(off) == {"on_lymphocyte_kill": 0.0, "on_new_lesions": 0.0}
    every = nsclc3_spec.ablation(nsclc3_spec.mechanism_names)
    assert set(every) >= {f"on_{m}" for m in nsclc3_spec.mechanism_names}
    assert all(every[f"on_{m}"] == 0.0 for m in nsclc3_spec.mechanism_names)


def test_ablation_of_unknown_mechanism_suggests_the_close_name(nsclc3_spec):
    with pytest.raises(ModelError, match=r"unknown mechanism 'lymphocyte_kil'; did you mean 'lymphocyte_kill'"):
        nsclc3_spec.ablation(("lymphocyte_kil",))


# ------------------------------------------------------------------------------ content hash
def test_content_hash_is_stable_when_rebuilt(make_toy_spec):
    assert make_toy_spec().content_hash() == make_toy_spec().content_hash()
    assert nsclc_model(2).content_hash() == nsclc_model(2).content_hash()


def test_content_hash_does_not_depend_on_rate_order_or_description():
    a = _mini()
    b = _mini(rates=dict(reversed(list(a.rates.items()))), description="another description")
    assert a.content_hash() == b.content_hash()


def test_content_hash_changes_with_a_default(make_toy_spec):
    assert make_toy_spec().content_hash() != make_toy_spec(g=0.051).content_hash()
    assert make_toy_spec().content_hash() != make_toy_spec(K=1.0e5 * (1 + 1e-12)).content_hash()


# Content hashes of the shipped models before observable roles existed (commit 4a7e9a9): roles describe how the
# endpoints read a model's outputs, not the model, so declaring them must not change a hash (nor the kernel cache
# key, fit files or study cell keys built on it).
HASHES_BEFORE_ROLES = {
    "nsclc3": "6b43c5617f6ab1160cd6c1c7e37c07c638beb82309877f47ad9080e23a082856",
    "nsclc1": "1a1bdb0453e568af6481ffeec3ddd6b0dbf2ee7e367a89dc210f6fa661f1c2b4",
    "kosinsky2018": "c5e35b07ebfc6697a2e54a9a43a6fe0c44806a768a2b8c6e8f2a5b416cc1fc26",
}


def test_roles_do_not_change_the_content_hash():
    from abscopal.model.library.kosinsky2018 import kosinsky2018

    specs = {
        "nsclc3": nsclc_model(3, version=1),
        "nsclc1": nsclc_model(1, version=1),
        "kosinsky2018": kosinsky2018(),
    }
    for key, spec in specs.items():
        assert spec.roles, key
        assert spec.content_hash() == HASHES_BEFORE_ROLES[key], key
    a = _mini(observables=(Observable(name="size", units="mm", long_name="size", expr=sym("x")),))
    b = _mini(
        observables=(Observable(name="size", units="mm", long_name="size", expr=sym("x")),),
        roles={"tumour_burden": "size", "lymphocytes": "x"},
    )
    assert a.content_hash() == b.content_hash()


# ------------------------------------------------------------------------------ observable roles
def test_shipped_models_declare_their_roles():
    from abscopal.model.library.kosinsky2018 import kosinsky2018

    spec = nsclc_model(2)
    assert spec.output("lesion_diameter") == "lesion_diameter"
    assert spec.output("new_lesion_hazard") == "H"
    assert spec.output("tumour_burden") == "total_burden"
    assert spec.output("lymphocytes") == "L"
    assert spec.output("rt_dose") is None  # irradiated lesions come from the plan
    k = kosinsky2018()
    assert dict(k.roles) == {"lesion_volume": "total_volume", "tumour_burden": "total_volume"}
    assert k.output("lymphocytes") is None and k.output("new_lesion_hazard") is None


@pytest.mark.parametrize(
    ("roles", "match"),
    [
        ({"tumor_burden": "x"}, r"roles: unknown role 'tumor_burden'; did you mean 'tumour_burden'"),
        ({"tumour_burden": "y"}, r"roles\['tumour_burden'\] = 'y': unknown output .* name an output of the model"),
        ({"tumour_burden": 3}, r"roles\['tumour_burden'\] = 3: unknown output"),
        (
            {"lesion_diameter": "x"},
            r"roles\['lesion_diameter'\] = 'x' has units \['1'\]; role 'lesion_diameter' needs 'mm'",
        ),
    ],
)
def test_bad_roles_name_the_role_the_value_and_the_fix(roles, match):
    with pytest.raises(ModelError, match=match):
        _mini(roles=roles)


def test_roles_must_be_a_mapping():
    with pytest.raises(ModelError, match=r"roles must be a mapping \{role: output name\}"):
        _mini(roles=["tumour_burden"])


def test_a_per_lesion_role_needs_a_per_lesion_output():
    spec = nsclc_model(2)
    with pytest.raises(ModelError, match=r"roles\['lesion_diameter'\] = 'total_burden': a per-lesion role"):
        ModelSpec(
            name=spec.name,
            description="",
            states=spec.states,
            parameters=spec.parameters,
            rates=spec.rates,
            events=spec.events,
            observables=spec.observables,
            mechanisms=spec.mechanisms,
            n_lesions=spec.n_lesions,
            roles={"lesion_diameter": "total_burden"},
        )


def test_output_of_an_unknown_role_suggests_the_close_name():
    with pytest.raises(ModelError, match=r"unknown role 'lymphocyte'; did you mean 'lymphocytes'"):
        nsclc_model(1).output("lymphocyte")


def test_content_hash_changes_with_a_rate():
    x, k = sym("x"), sym("k_growth")
    base = _mini()
    assert base.content_hash() != _mini(rates={"x": 2 * k * x}).content_hash()
    assert base.content_hash() != _mini(rates={"x": k * x**2}).content_hash()


def test_content_hash_changes_with_a_jump_and_a_model_size():
    x = sym("x")
    changed = Event(name="kick", arguments=(EventArgument(name="amount", units="1"),), jumps={"x": x * sym("amount")})
    assert _mini().content_hash() != _mini(events=(changed,)).content_hash()
    assert nsclc_model(2).content_hash() != nsclc_model(3).content_hash()


def test_content_hash_is_the_same_in_a_fresh_process(nsclc3_spec):
    """The kernel cache is keyed on the hash, so it must not depend on the process (hash seeds)."""
    code = "from abscopal.model.library.nsclc import nsclc_model; print(nsclc_model(3).content_hash())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC), "PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == nsclc3_spec.content_hash()


# ------------------------------------------------------------------------------------- LaTeX
def _plain(tex: str) -> str:
    """LaTeX with font commands, braces and escaped underscores removed (V_{0}, \\mathtt{V\\_0} -> V_0)."""
    return re.sub(r"\\math(?:tt|rm|it|sf)", "", tex).replace(r"\_", "_").replace("{", "").replace("}", "")


def test_equations_latex_contains_every_state(nsclc3_spec):
    tex = nsclc3_spec.equations_latex()
    assert tex.startswith("\\begin{align}") and tex.rstrip().endswith("\\end{align}")
    body = tex.strip().removeprefix("\\begin{align}").removesuffix("\\end{align}").strip()
    lines = body.split(" \\\\\n")
    assert len(lines) == len(nsclc3_spec.states)
    for line, s in zip(lines, nsclc3_spec.states, strict=True):
        lhs, rhs = line.split("&=", 1)
        assert f"d\\,{s.name}dt" in _plain(lhs), (s.name, lhs)
        assert rhs.strip(), s.name


# ------------------------------------------------------------------------------ generated code
_KERNELS = {
    "rhs",
    "jac",
    "dfdt",
    "jump",
    "initial",
    "observe",
    "solve_batch",
    "solve_batch_serial",
    "solve_batch_ros",
    "solve_batch_ros_serial",
    "solve_batch_auto",
    "solve_batch_auto_serial",
    "observe_batch",
}


def _defined_functions(src: str, filename: str) -> set[str]:
    tree = ast.parse(src)
    compile(tree, filename, "exec")
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_generated_source_compiles_and_defines_the_kernels(toy_spec, toy):
    src = generate_source(toy_spec)
    assert _KERNELS <= _defined_functions(src, "<generated toy kernels>")
    assert f"MODEL_HASH = {toy_spec.content_hash()!r}" in src
    assert toy.module.MODEL_HASH == toy_spec.content_hash()
    assert toy.module.N_STATES == 2


def test_nsclc_kernel_module_is_the_generated_source_of_its_spec(nsclc3_spec, nsclc3):
    """The imported NSCLC kernel file (written by generate_source) parses, compiles and belongs to the spec."""
    src = Path(nsclc3.path).read_text()
    assert _KERNELS <= _defined_functions(src, str(nsclc3.path))
    assert nsclc3.module.MODEL_HASH == nsclc3_spec.content_hash()
    assert nsclc3.module.N_STATES == len(nsclc3_spec.states)
    assert nsclc3.module.N_PARAMS == len(nsclc3_spec.all_parameters)


@pytest.fixture(scope="module")
def nsclc_reference(nsclc3_spec):
    """sympy lambdify of the NSCLC rates, of their term magnitudes and of their Jacobian."""
    spec = nsclc3_spec
    xs = [s.symbol for s in spec.states]
    ps = [p.symbol for p in spec.all_parameters]
    rates = [spec.rates[n] for n in spec.state_names]
    # magnitude of a rate = sum of the absolute values of its top-level terms (see below)
    terms = [r.args if r.is_Add else (r,) for r in rates]
    owner = np.repeat(np.arange(len(rates)), [len(t) for t in terms])
    jac = sp.Matrix(rates).jacobian(xs)
    args = [TIME, xs, ps]
    f_terms = sp.lambdify(args, [a for t in terms for a in t], modules="numpy")

    def magnitude(t, y, p):
        return np.bincount(owner, weights=np.abs(np.array(f_terms(t, y, p), dtype=float)), minlength=len(rates))

    return (sp.lambdify(args, rates, modules="numpy"), magnitude, sp.lambdify(args, jac, modules="numpy", cse=True))


def _random_points(spec, compiled, n: int, seed: int):
    """Random (t, y, p): parameters around their defaults (inside bounds), switches in [0, 1],
    states around the initial state, all positive; times on both sides of 0 (CL uses max(t, 0))."""
    rng = np.random.default_rng(seed)
    lo = np.array([p.lower for p in spec.all_parameters])
    hi = np.array([p.upper for p in spec.all_parameters])
    default = np.array([p.default for p in spec.all_parameters])
    switch = np.array([p.name.startswith("on_") for p in spec.all_parameters])
    for _ in range(n):
        p = np.clip(default * np.exp(rng.uniform(-0.3, 0.3, default.size)), lo, hi)
        p[switch] = rng.uniform(0.0, 1.0, switch.sum())
        y0 = compiled.initial(p)
        y = np.abs(y0) * np.exp(rng.normal(0.0, 0.5, y0.size)) + rng.uniform(0.0, 1.0, y0.size) * np.maximum(
            np.abs(y0), 10.0
        )
        yield float(rng.uniform(-10.0, 700.0)), y, p


def test_compiled_rhs_matches_lambdify(nsclc3_spec, nsclc3, nsclc_reference):
    """|compiled - lambdify| <= 1e-12 * sum_k |term_k| for each rate.

    The scale is the sum of the magnitudes of the rate's top-level terms (e.g. Gompertz growth and
    the baseline immune kill of dV/dt), so rounding in a cancelling sum, which depends on the
    evaluation order and is not an error of the generated code, is not counted; wherever terms
    do not cancel this is the plain relative error 1e-12.
    """
    f, mag, _ = nsclc_reference
    for t, y, p in _random_points(nsclc3_spec, nsclc3, 40, seed=1):
        a = nsclc3.rhs(t, y, p)
        b = np.array(f(t, y, p), dtype=float)
        m = np.array(mag(t, y, p), dtype=float)
        assert np.all(np.isfinite(a))
        err = np.abs(a - b)
        assert np.all(err <= 1e-12 * m), (t, nsclc3_spec.state_names[int(np.argmax(err / m))], np.max(err / m))


def test_compiled_jacobian_matches_sympy_jacobian(nsclc3_spec, nsclc3, nsclc_reference):
    """Row-wise relative error of the state-scaled Jacobian <= 1e-12.

    With s_k = max(|y_k|, abs_tol_k), for each row i: max_k |Jc_ik - Js_ik| s_k <= 1e-12 max_k |Js_ik| s_k.
    Entries far below their row's largest sensitivity (e.g. the derivative of the Hill DC
    maturation term when saturated, itself a cancelling difference) are thus compared at the
    row's scale; zero entries of the sympy Jacobian must be exactly zero in the compiled one.
    """
    _, _, fj = nsclc_reference
    atol = np.array([s.abs_tol for s in nsclc3_spec.states])
    for t, y, p in _random_points(nsclc3_spec, nsclc3, 40, seed=2):
        Jc = nsclc3.jac(t, y, p)
        Js = np.array(fj(t, y, p), dtype=float)
        s = np.maximum(np.abs(y), atol)
        np.testing.assert_array_equal(Jc[Js == 0], 0.0)
        row = (np.abs(Js) * s).max(axis=1)
        err = (np.abs(Jc - Js) * s).max(axis=1)
        assert np.all(err <= 1e-12 * row), (t, np.max(err / np.where(row > 0, row, 1.0)))


def test_compiled_jacobian_matches_finite_differences(nsclc3_spec, nsclc3):
    """Central differences of the compiled RHS (step 1e-5 s_k): every entry at least 1e-3 of its
    row's largest state-scaled sensitivity agrees to rtol 1e-5, and all entries to 1e-5 of the row
    scale (same scaling as the sympy comparison)."""
    atol = np.array([s.abs_tol for s in nsclc3_spec.states])
    for t, y, p in _random_points(nsclc3_spec, nsclc3, 15, seed=3):
        J = nsclc3.jac(t, y, p)
        s = np.maximum(np.abs(y), atol)
        Jfd = np.empty_like(J)
        for k in range(y.size):
            yp, ym = y.copy(), y.copy()
            yp[k] += 1e-5 * s[k]
            ym[k] -= 1e-5 * s[k]
            Jfd[:, k] = (nsclc3.rhs(t, yp, p) - nsclc3.rhs(t, ym, p)) / (yp[k] - ym[k])
        row = (np.abs(J) * s).max(axis=1)
        err = (np.abs(Jfd - J) * s).max(axis=1)
        assert np.all(err <= 1e-5 * row + 1e-300), np.max(err / np.where(row > 0, row, 1.0))
        big = (np.abs(J) * s >= 1e-3 * row[:, None]) & (row[:, None] > 0)
        np.testing.assert_allclose(Jfd[big], J[big], rtol=1e-5, atol=0)


def test_compiled_jump_matches_the_spec(nsclc3_spec, nsclc3):
    """The compiled radiation jump equals sympy evaluation of the spec's jump map (rtol 1e-12)."""
    ev = nsclc3_spec.event("radiation_fraction")
    xs = [s.symbol for s in nsclc3_spec.states]
    ps = [p.symbol for p in nsclc3_spec.all_parameters]
    av = [sym(a) for a in ev.argument_names]
    exprs = [ev.jumps.get(n, sym(n)) for n in nsclc3_spec.state_names]
    f = sp.lambdify([xs, ps, av], exprs, modules="numpy")
    rng = np.random.default_rng(4)
    draw = {
        "dose_gy_0": lambda: rng.uniform(0.5, 25.0),
        "dose_gy_1": lambda: 0.0,
        "dose_gy_2": lambda: rng.uniform(0.5, 25.0),
        "blood_dose_gy": lambda: rng.uniform(0.0, 3.0),
        "mean_blood_dose_gy": lambda: rng.uniform(0.0, 3.0),
        "exposed_blood_fraction": lambda: rng.uniform(0.01, 1.0),
        "course_last_fraction": lambda: float(rng.integers(0, 2)),
    }
    for t, y, p in _random_points(nsclc3_spec, nsclc3, 10, seed=5):
        del t
        args = np.array([draw[a]() for a in ev.argument_names])
        np.testing.assert_allclose(
            nsclc3.jump("radiation_fraction", y, p, args), np.array(f(y, p, args), dtype=float), rtol=1e-12, atol=1e-300
        )
