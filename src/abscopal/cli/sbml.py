"""``abscopal sbml export | import``: a model (with a scenario arm's treatment) as SBML, and an SBML file read back."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._common import Subparsers

__all__ = ["add_sbml_command"]

_VERSION_HELP = "version of the nsclc model: 2 (default, model v2) or 1 (model v1, for comparison)"


def _export_inputs(args: argparse.Namespace) -> tuple[Any, Any, dict[str, float], float, tuple[str, ...], str]:
    """(spec, plan or None, parameters, t_end_day, mechanisms_off, what) from MODEL and --scenario/--arm."""
    from ..errors import AbscopalError, ModelError
    from ..model.library import MODELS, get_model, version_options

    if args.model not in MODELS:
        raise AbscopalError(f"MODEL {args.model!r} is not a library model; use one of {', '.join(MODELS)}")
    if args.scenario is None:
        if args.arm is not None:
            raise AbscopalError(f"--arm {args.arm!r} needs --scenario (the arm's treatment is exported)")
        options: dict[str, Any] = {"n_lesions": args.n_lesions} if args.model == "nsclc" else {}
        try:
            options |= version_options(args.model, args.model_version)
            spec = get_model(args.model, **options)
        except ModelError as exc:
            raise AbscopalError(f"MODEL {args.model!r}: {exc}") from None
        return spec, None, {}, float(args.t_end_day or 730.0), (), f"model {spec.name} (no treatment)"
    from ..scenario import load_scenario

    if args.model_version is not None or args.n_lesions != 3:
        raise AbscopalError(
            "--model-version and --n-lesions do not go with --scenario: the scenario's [model] table chooses the model"
        )
    sc = load_scenario(args.scenario)
    spec = sc.model
    if spec.name.split("_")[0] != args.model:
        raise AbscopalError(
            f"MODEL {args.model!r} is not the model of --scenario {args.scenario!r} ({spec.name}); "
            "give the scenario's [model] name"
        )
    names = [a.name for a in sc.arms]
    if args.arm is None and len(names) > 1:
        raise AbscopalError(f"--scenario {args.scenario!r} has {len(names)} arms {names}; choose one with --arm NAME")
    arm = sc.arms[0] if args.arm is None else next((a for a in sc.arms if a.name == args.arm), None)
    if arm is None:
        raise AbscopalError(f"--arm {args.arm!r} is not an arm of --scenario {args.scenario!r}; its arms: {names}")
    if arm.rt_start_day is not None:  # pragma: no cover - scenarios have no per-patient RT starts
        raise AbscopalError(f"arm {arm.name!r} has per-patient RT start days; one SBML file is one patient")
    t_end = float(args.t_end_day if args.t_end_day is not None else sc.simulation.get("t_end_day", 730.0))
    parameters = {**sc.parameters, **arm.parameters}
    off = tuple(sc.simulation.get("mechanisms_off", ()))
    return spec, arm.plan, parameters, t_end, off, f"model {spec.name}, arm {arm.name!r} of {args.scenario}"


def _cmd_sbml_export(args: argparse.Namespace) -> int:
    from ..io import check_outputs, write_atomic
    from ..sbml import export_sbml, require_libsbml

    inputs = [args.scenario] if args.scenario else []
    check_outputs({"--out": args.out}, inputs=inputs, force=args.force)
    require_libsbml()  # before any work: a missing extra fails at once
    spec, plan, parameters, t_end, off, what = _export_inputs(args)
    result = export_sbml(spec, plan, parameters or None, t_end_day=t_end, mechanisms_off=off)
    write_atomic(args.out, lambda tmp: tmp.write_text(result.text, encoding="utf-8"), force=args.force)
    print(
        f"SBML L3V2 of {what}: {len(spec.states)} states (parameters with rate rules), "
        f"{len(spec.all_parameters)} parameters, {len(spec.observables)} observables (assignment rules), "
        f"{result.n_events} events; SBML time 0 = day {result.start_day:g} -> {args.out}"
    )
    print(
        f"libSBML consistency check: 0 errors, {len(result.warnings)} warnings (units)"
        + (f"; no SBML units for: {', '.join(result.unexpressed_units)}" if result.unexpressed_units else "")
    )
    return 0


def _cmd_sbml_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from ..errors import AbscopalError
    from ..sbml import read_sbml

    if not Path(args.file).is_file():
        raise AbscopalError(f"FILE {args.file!r} does not exist or is not a file; give the path of an SBML .xml file")
    imp = read_sbml(args.file)
    spec = imp.spec
    print(
        f"model {spec.name}: {len(spec.states)} states, {len(spec.parameters)} parameters, "
        f"{len(spec.observables)} observables, {len(spec.events)} events"
    )
    print("states (the solver's state vector, in order; initial value):")
    for s in spec.states:
        print(f"  {s.name:<24} [{s.units}] {s.long_name} = {s.initial}")
    print("parameters (the solver's parameter vector, in order; default):")
    for p in spec.parameters:
        print(f"  {p.name:<24} = {p.default:<12.6g} [{p.units}] {p.description}")
    if spec.observables:
        print("observables (assignment rules, inlined):")
        for o in spec.observables:
            print(f"  {o.name:<24} [{o.units}] {o.long_name}")
    if imp.schedule:
        print("events (jumps at fixed times, in firing order):")
        for t, name, _ in imp.schedule:
            print(f"  day {t:<10g} {name}: " + ", ".join(f"{k} -> {v}" for k, v in spec.event(name).jumps.items()))
    for note in imp.notes:
        print(f"note: {note}")
    if args.check:
        from ..model import compile_model
        from ..solver import EventSchedule, SolverOptions, solve

        model = compile_model(spec)
        d = spec.default_values()
        P = np.array([[d[n] for n in spec.parameter_names]])
        t_end = max([1.0] + [t + 1.0 for t, _, _ in imp.schedule])
        t_out = np.linspace(imp.start_day, t_end, 11)
        sol = solve(
            model,
            P,
            t_out,
            events=EventSchedule.from_lists(model, imp.event_lists(1)),
            options=SolverOptions(parallel=False),
        )
        print(
            f"check: compiled kernel {model.path.name} (Dormand-Prince 5(4), {len(spec.states)} states, "
            f"{len(spec.all_parameters)} parameters, {len(spec.events)} jump maps); ran the defaults from day "
            f"{imp.start_day:g} to day {t_end:g}: all values finite = {bool(np.all(np.isfinite(sol.y)))}"
        )
        if not np.all(np.isfinite(sol.y)):
            raise AbscopalError(f"FILE {args.file!r}: the model gives non-finite values at its defaults")
    return 0


def _cmd_sbml(args: argparse.Namespace) -> int:
    """``abscopal sbml export|import``: dispatch to the subcommand."""
    return _cmd_sbml_export(args) if args.sbml_command == "export" else _cmd_sbml_import(args)


def add_sbml_command(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``sbml export MODEL [--scenario S.toml [--arm NAME]] --out F.xml [--force]`` and
    ``sbml import F.xml [--check]``; returns the ``sbml`` subparser."""
    s = subparsers.add_parser(
        "sbml",
        help="export a model as SBML (for COPASI, tellurium, libRoadRunner) or read an SBML file",
        description="SBML Level 3 Version 2 export of a library model, with the treatment of a scenario arm as "
        "timed events, and import of an SBML file (a documented subset). Needs python-libsbml: "
        "pip install abscopal[sbml]. See docs/interop.md, 'SBML'.",
    )
    s.set_defaults(func=_cmd_sbml)
    sub = s.add_subparsers(dest="sbml_command", required=True)
    x = sub.add_parser("export", help="write a library model (and a scenario arm's treatment) as SBML")
    x.add_argument("model", metavar="MODEL", help="library model: nsclc or kosinsky2018")
    x.add_argument("--scenario", default=None, help="scenario TOML: its model, parameters and one arm's treatment")
    x.add_argument("--arm", default=None, help="the scenario arm to export (needed if it has several)")
    x.add_argument("--n-lesions", type=int, default=3, help="nsclc without --scenario: number of lesions")
    x.add_argument("--model-version", type=int, default=None, metavar="N", help=_VERSION_HELP)
    x.add_argument("--t-end-day", type=float, default=None, help="last day (drug doses after it are left out)")
    x.add_argument("--out", required=True, help="the SBML file to write (.xml)")
    x.add_argument("--force", action="store_true", help="overwrite --out")
    i = sub.add_parser("import", help="read an SBML file: states, parameters, events (and --check: compile, run)")
    i.add_argument("file", metavar="FILE", help="SBML file (.xml)")
    i.add_argument("--check", action="store_true", help="also compile the model and run its defaults briefly")
    return s
