"""The vectorised RECIST path equals the per-patient one, bit for bit, on random cases (hypothesis).

:func:`abscopal.endpoints.recist.assess_population` scores all patients at once; the reference is
:func:`~abscopal.endpoints.recist.assess` patient by patient (``_assess_population_loop``), which the boundary tests of
``test_recist.py`` pin down. Diameters are drawn on a 0.5 mm grid, sometimes below ``gone_mm`` or exactly on the
PR / PD thresholds, and scan days on a 7-day grid with odd gaps, so the inclusive thresholds, the iRECIST window
and the confirmation interval are all reached.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abscopal.endpoints.arm_summaries import clopper_pearson
from abscopal.endpoints.events import first_crossing
from abscopal.endpoints.recist import (
    RecistRules,
    _assess_population_loop,
    assess_population,
    select_targets,
    select_targets_batch,
)
from abscopal.endpoints.scoring import score_responses, target_sum_of_diameters
from abscopal.errors import ParameterError
from abscopal.sites import SITES

_SOME_SITES = ("lung", "lymph_node", "liver", "adrenal", "bone")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True)) and bool(np.all(np.signbit(a) == np.signbit(b)))
    return bool(np.array_equal(a, b))


@st.composite
def cases(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 12))
    n_les = draw(st.integers(1, 6))
    n_vis = draw(st.integers(2, 9))
    gaps = draw(
        st.lists(
            st.sampled_from([7.0, 14.0, 21.0, 28.0, 35.0, 42.0, 63.0, 27.5]), min_size=n_vis - 1, max_size=n_vis - 1
        )
    )
    days = np.concatenate([[0.0], np.cumsum(gaps)])
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = rng.choice([0.0, 0.4, 5.0, 9.5, 10.0, 12.0, 15.0, 20.0, 30.0, 40.0], size=(n, n_les))
    factor = rng.choice([0.0, 0.5, 0.7, 0.75, 1.0, 1.2, 1.25, 1.5, 2.0], size=(n, n_les, n_vis))
    noise = rng.choice([0.0, 0.0, 0.5, -0.5, 5.0], size=(n, n_les, n_vis))
    d = np.maximum(base[:, :, None] * np.cumprod(factor, axis=2) ** 0.5 + noise, 0.0)
    d[:, :, 0] = base
    sites = [list(rng.choice(_SOME_SITES, size=n_les)) for _ in range(n)]
    kind = draw(st.sampled_from(["scalar", "per_patient", "rows"]))
    span = days[-1] + 10.0

    def events() -> np.ndarray | float:
        if kind == "scalar":
            return float(rng.choice([math.inf, days[1], 0.5 * span]))
        if kind == "per_patient":
            return np.where(rng.random(n) < 0.5, math.inf, np.maximum(rng.uniform(0.1, span, n).round(0), 1.0))
        return np.where(rng.random((n, 3)) < 0.6, math.inf, np.maximum(rng.uniform(0.5, span, (n, 3)).round(0), 1.0))

    new, ntp = events(), events()
    rules = RecistRules(
        irecist=draw(st.booleans()),
        require_confirmation=draw(st.booleans()),
        sd_min_day=draw(st.sampled_from([0.0, 42.0, 50.0])),
        max_targets=draw(st.integers(1, 6)),
        max_targets_per_organ=draw(st.integers(1, 3)),
        confirmation_min_day=draw(st.sampled_from([28.0, 21.0])),
    )
    exclude = tuple(sorted(set(draw(st.lists(st.integers(0, n_les - 1), max_size=2)))))
    return {"d": d, "days": days, "sites": sites, "new": new, "ntp": ntp, "rules": rules, "exclude": exclude}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_vectorised_assessment_equals_the_per_patient_one(case: dict) -> None:
    d, days, rules = case["d"], case["days"], case["rules"]
    sel = [select_targets(d[p, :, 0], case["sites"][p], exclude=case["exclude"], rules=rules) for p in range(len(d))]
    batch = select_targets_batch(d[:, :, 0], case["sites"], exclude=case["exclude"], rules=rules)
    for p, s in enumerate(sel):
        assert tuple(batch.order[p][batch.order[p] >= 0].tolist()) == s.targets
        assert tuple(np.flatnonzero(batch.nontarget[p]).tolist()) == s.nontargets
    kwargs = {"new_lesion_day": case["new"], "nontarget_progression_day": case["ntp"], "rules": rules}
    fast = assess_population(d, days, sel, **kwargs)
    slow = _assess_population_loop(d, days, sel, **kwargs)
    assert fast.keys() == slow.keys()
    for key in slow:
        assert _same(fast[key], slow[key]), (key, fast[key], slow[key])


def test_score_responses_equals_the_per_patient_scores() -> None:
    rng = np.random.default_rng(5)
    n, n_les, days = 300, 4, np.array([0.0, 42.0, 84.0, 126.0, 168.0, 231.0])
    d = 40.0 * rng.lognormal(0.0, 0.5, (n, n_les, 1)) * np.exp(rng.normal(0.0, 0.3, (n, n_les, days.size)).cumsum(2))
    d[:, :, 0] = d[:, :, 0] * 1.0
    sites = [list(rng.choice(SITES, size=n_les)) for _ in range(n)]
    new = np.where(rng.random(n) < 0.3, rng.uniform(1.0, 250.0, n), math.inf)
    for rules in (RecistRules(), RecistRules(irecist=True, require_confirmation=True)):
        got = score_responses(
            d, days, sites, exclude=(0,), new_lesion_day=new, rules=rules, orr_visit_day=84.0, follow_up_day=200.0
        )
        sel = [select_targets(d[p, :, 0], sites[p], exclude=(0,), rules=rules) for p in range(n)]
        ref = _assess_population_loop(d, days, sel, new_lesion_day=new, nontarget_progression_day=math.inf, rules=rules)
        assert _same(got.responses, ref["responses"])
        assert _same(got.best_overall_response, ref["best_overall_response"])
        assert _same(got.sum_of_diameters, ref["sums_mm"])
        assert _same(got.percent_change, ref["percent_change_from_baseline"])
        orr = np.array([str(x).lstrip("i") in ("CR", "PR") for x in ref["responses"][:, 2]])
        assert _same(got.objective_response, orr)
        dcr = np.array([str(x).lstrip("i") in ("CR", "PR", "SD", "NN") for x in ref["best_overall_response"]])
        assert _same(got.disease_control, dcr)


def test_target_sum_of_diameters_is_the_scored_sum_without_the_scoring() -> None:
    """What the OS link reads when it leaves irradiated lesions out (endpoints.pipeline): bit for bit the
    ``sum_of_diameters`` that scoring with that exclusion gives."""
    rng = np.random.default_rng(6)
    n, n_les, days = 200, 4, np.array([0.0, 42.0, 84.0, 126.0])
    d = 30.0 * rng.lognormal(0.0, 0.6, (n, n_les, 1)) * np.exp(rng.normal(0.0, 0.4, (n, n_les, days.size)).cumsum(2))
    sites = [list(rng.choice(SITES, size=n_les)) for _ in range(n)]
    for exclude in ((), (0,), (1, 3)):
        got = target_sum_of_diameters(d, sites, exclude=exclude, rules=RecistRules())
        ref = score_responses(
            d, days, sites, exclude=exclude, new_lesion_day=np.full(n, math.inf), rules=RecistRules(),
            orr_visit_day=None, follow_up_day=200.0,
        )  # fmt: skip
        assert _same(got, ref.sum_of_diameters), exclude


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sites": [["lung", "moon"]]}, r"sites\[1\]: unknown lesion site 'moon'"),
        ({"exclude": (5,)}, "exclude contains lesion index 5, out of range for 2 lesions"),
        ({"baseline_mm": [[10.0, math.nan]]}, "baseline_mm must be finite and >= 0"),
    ],
)
def test_batch_selection_raises_the_per_patient_errors(kwargs: dict, match: str) -> None:
    args = {"baseline_mm": [[20.0, 15.0]], "sites": [["lung", "liver"]], "exclude": ()} | kwargs
    with pytest.raises(ParameterError, match=match):
        select_targets_batch(np.asarray(args["baseline_mm"]), args["sites"], exclude=args["exclude"])


def test_batch_assessment_raises_the_per_patient_errors() -> None:
    sel = select_targets([20.0], ("lung",))
    d = np.full((2, 1, 3), 20.0)
    with pytest.raises(ParameterError, match=r"patient 1: new_lesion_day must be days after the baseline scan"):
        assess_population(d, [0.0, 42.0, 84.0], [sel, sel], new_lesion_day=np.array([50.0, math.nan]))


def _first_crossing_loop(times: np.ndarray, cumulative: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """The per-patient first_crossing this package had before it was vectorised (the reference)."""
    out = np.full(cumulative.shape[0], np.inf)
    for i in range(cumulative.shape[0]):
        k = int(np.searchsorted(cumulative[i], threshold[i]))
        if k == 0:
            out[i] = times[0] if cumulative[i, 0] >= threshold[i] else np.inf
        elif k < times.size:
            c0, c1 = cumulative[i, k - 1], cumulative[i, k]
            out[i] = times[k - 1] + (threshold[i] - c0) / (c1 - c0) * (times[k] - times[k - 1]) if c1 > c0 else times[k]
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 30))
def test_vectorised_first_crossing_equals_the_loop(seed: int, n: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.choice([1.0, 7.0, 0.5], size=m)) - 3.0
    steps = rng.choice([0.0, 0.0, 0.1, 0.5, -1e-12, 2.0], size=(n, m))  # flat parts and round-off wiggles
    cumulative = np.cumsum(steps, axis=1)
    threshold = rng.choice([0.0, 0.1, 0.5, 1.0, 3.0, 1e9], size=n) * rng.choice([1.0, rng.exponential()], size=n)
    got = first_crossing(times, cumulative, threshold)
    assert _same(got, _first_crossing_loop(times, cumulative, threshold))


def test_cached_clopper_pearson_is_scipys() -> None:
    from scipy.stats import binomtest

    for k, n in ((0, 10), (3, 10), (10, 10), (57, 200)):
        ci = binomtest(k, n).proportion_ci(method="exact")
        assert clopper_pearson(k, n) == (float(ci.low), float(ci.high))
