"""Tests of abscopal.radiobiology against hand-computed LQ/BED/EQD2 values and the Seppenwoolde 2003 NTCP curve."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from abscopal.errors import ParameterError, ScheduleError
from abscopal.radiobiology import (
    bed,
    eqd2,
    eqd2_per_fraction_corrected_mean_dose,
    lkb_ntcp,
    lq_survival,
    lql_survival,
)

# worked examples [D], computed by hand with BED = D (1 + d/(a/b)), EQD2 = BED / (1 + 2/(a/b)):
# (total dose Gy, n fractions, BED10, EQD2 (a/b 10), BED3, EQD2 (a/b 3))
WORKED_EXAMPLES = [
    (24.0, 3, 43.2, 36.0, 88.0, 52.8),  # PEMBRO-RT
    (50.0, 4, 112.5, 93.8, 258.3, 155.0),  # MDACC SBRT
    (45.0, 15, 58.5, 48.8, 90.0, 54.0),  # MDACC traditional
    (54.0, 3, 151.2, 126.0, 378.0, 226.8),
    (50.0, 5, 100.0, 83.3, 216.7, 130.0),
    (60.0, 30, 72.0, 60.0, 100.0, 60.0),
    (66.0, 33, 79.2, 66.0, 110.0, 66.0),  # NICOLAS
    (30.0, 10, 39.0, 32.5, 60.0, 36.0),  # palliative
    (28.5, 3, 55.6, 46.3, 118.7, 71.2),  # Formenti ph II
    (30.0, 5, 48.0, 40.0, 90.0, 54.0),  # Formenti ph I
    (8.0, 1, 14.4, 12.0, 29.3, 17.6),
]
# The table rounds to 1 decimal: half a unit of the last place, plus 1e-9 for the
# binary representation of values such as 48.8 (exact 48.75).
TABLE_ATOL = 0.05 + 1e-9


@pytest.mark.parametrize(("total", "n", "bed10", "eqd2_10", "bed3", "eqd2_3"), WORKED_EXAMPLES)
def test_bed_eqd2_match_worked_table(total, n, bed10, eqd2_10, bed3, eqd2_3):
    assert float(bed(total, n, 10.0)) == pytest.approx(bed10, abs=TABLE_ATOL)
    assert float(eqd2(total, n, 10.0)) == pytest.approx(eqd2_10, abs=TABLE_ATOL)
    assert float(bed(total, n, 3.0)) == pytest.approx(bed3, abs=TABLE_ATOL)
    assert float(eqd2(total, n, 3.0)) == pytest.approx(eqd2_3, abs=TABLE_ATOL)


def test_bed_eqd2_broadcast_over_the_table():
    totals = np.array([row[0] for row in WORKED_EXAMPLES])
    ns = np.array([row[1] for row in WORKED_EXAMPLES])
    ab = np.array([[10.0], [3.0]])  # shape (2, 1) against (11,)
    expected_bed = np.array([[row[2] for row in WORKED_EXAMPLES], [row[4] for row in WORKED_EXAMPLES]])
    result = bed(totals, ns, ab)
    assert result.shape == (2, len(WORKED_EXAMPLES))
    np.testing.assert_allclose(result, expected_bed, rtol=0, atol=TABLE_ATOL)


@pytest.mark.parametrize(
    ("mld_gy", "ntcp"),
    [
        (5.0, 0.012),
        (10.0, 0.034),
        (15.0, 0.083),
        (20.0, 0.172),
        (25.0, 0.305),
        (30.8, 0.5),
    ],
)
def test_lkb_ntcp_matches_the_seppenwoolde_2003_curve(mld_gy, ntcp):
    # Phi((MLD - 30.8) / (0.37 * 30.8)) as percentages to 1 decimal: tolerance half a unit = 0.05% = 0.0005
    assert float(lkb_ntcp(mld_gy)) == pytest.approx(ntcp, abs=0.0005 + 1e-12)


def test_lkb_ntcp_custom_parameters_and_midpoint():
    # At D = TD50 the NTCP is exactly 1/2 for any m (tolerance: float rounding).
    assert float(lkb_ntcp(24.0, td50_gy=24.0, m=0.2)) == pytest.approx(0.5, abs=1e-15)
    # One standard deviation above TD50: Phi(1) = 0.841344746...
    assert float(lkb_ntcp(24.0 * 1.2, td50_gy=24.0, m=0.2)) == pytest.approx(0.8413447460685429, rel=1e-12)


def test_eqd2_corrected_mean_dose():
    # 2 Gy per fraction needs no correction (tolerance: float rounding).
    assert float(eqd2_per_fraction_corrected_mean_dose(20.0, 10)) == pytest.approx(20.0, rel=1e-12)
    # 10 Gy MLD in 5 fractions at a/b 3: 10 (2 + 3) / 5 = 10 -> same; 15 Gy/5 fx: 15 (3 + 3)/5 = 18
    assert float(eqd2_per_fraction_corrected_mean_dose(15.0, 5)) == pytest.approx(18.0, rel=1e-12)
    # It is eqd2() applied to the mean dose, with alpha/beta 3 by default.
    assert float(eqd2_per_fraction_corrected_mean_dose(12.0, 3)) == pytest.approx(float(eqd2(12.0, 3, 3.0)), rel=1e-12)


def test_lq_survival_formula():
    # exp(-3 (0.3 * 2 + 0.03 * 4)) = exp(-2.16)
    value = lq_survival(2.0, 3, alpha_per_gy=0.3, beta_per_gy2=0.03)
    assert float(value) == pytest.approx(math.exp(-2.16), rel=1e-12)
    assert float(lq_survival(0.0, alpha_per_gy=0.3, beta_per_gy2=0.03)) == 1.0  # no dose, no kill (exact)


ALPHA, BETA, D_T = 0.3, 0.03, 6.0


def _log_kill(d):
    return -np.log(lql_survival(d, alpha_per_gy=ALPHA, beta_per_gy2=BETA, transition_dose_gy=D_T))


def test_lql_equals_lq_at_and_below_transition():
    d = np.linspace(0.0, D_T, 25)
    lq = lq_survival(d, alpha_per_gy=ALPHA, beta_per_gy2=BETA)
    lql = lql_survival(d, alpha_per_gy=ALPHA, beta_per_gy2=BETA, transition_dose_gy=D_T)
    np.testing.assert_allclose(lql, lq, rtol=1e-14, atol=0)


def test_lql_is_linear_above_transition_with_continuous_slope():
    d = np.linspace(D_T, 30.0, 49)
    kill = _log_kill(d)
    slope_expected = ALPHA + 2 * BETA * D_T  # LQ slope at D_t
    # linear: constant slope, equal to the LQ slope at D_t (tolerance: float rounding)
    np.testing.assert_allclose(np.diff(kill) / np.diff(d), slope_expected, rtol=1e-9)
    # slope continuity at D_t: one-sided finite differences agree to O(h) (h = 1e-5 Gy)
    h = 1e-5
    left = (_log_kill(D_T) - _log_kill(D_T - h)) / h
    right = (_log_kill(D_T + h) - _log_kill(D_T)) / h
    assert float(left) == pytest.approx(float(right), abs=1e-4)
    # less kill than LQ above D_t (the LQ-L rationale for SBRT)
    assert float(lql_survival(20.0, alpha_per_gy=ALPHA, beta_per_gy2=BETA, transition_dose_gy=D_T)) > float(
        lq_survival(20.0, alpha_per_gy=ALPHA, beta_per_gy2=BETA)
    )


def test_lql_fractions_multiply():
    single = lql_survival(15.0, alpha_per_gy=ALPHA, beta_per_gy2=BETA, transition_dose_gy=D_T)
    triple = lql_survival(15.0, 3, alpha_per_gy=ALPHA, beta_per_gy2=BETA, transition_dose_gy=D_T)
    assert float(triple) == pytest.approx(float(single) ** 3, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (
            lambda: bed(-2.0, 3, 10.0),
            ScheduleError,
            r"total_dose_gy must be >= 0, got -2\.0",
        ),
        (
            lambda: bed(24.0, 0, 10.0),
            ScheduleError,
            r"n_fractions must be a whole number >= 1, got 0\.0",
        ),
        (
            lambda: eqd2(24.0, 2.5, 10.0),
            ScheduleError,
            r"n_fractions must be a whole number >= 1, got 2\.5",
        ),
        (
            lambda: eqd2(24.0, 3, 0.0),
            ParameterError,
            r"alpha_beta_gy must be > 0, got 0\.0",
        ),
        (
            lambda: bed(24.0, 3, -3.0),
            ParameterError,
            r"alpha_beta_gy must be > 0, got -3\.0",
        ),
        (
            lambda: bed([24.0, -1.0], 3, 10.0),
            ScheduleError,
            r"total_dose_gy must be >= 0, got -1\.0 at index \(1,\)",
        ),
        (
            lambda: bed(float("nan"), 3, 10.0),
            ScheduleError,
            r"total_dose_gy must be finite, got nan",
        ),
        (
            lambda: lq_survival(-1.0, alpha_per_gy=0.3, beta_per_gy2=0.03),
            ScheduleError,
            r"dose_per_fraction_gy must be >= 0, got -1\.0",
        ),
        (
            lambda: lq_survival(2.0, alpha_per_gy=-0.3, beta_per_gy2=0.03),
            ParameterError,
            r"alpha_per_gy must be >= 0, got -0\.3",
        ),
        (
            lambda: lql_survival(2.0, alpha_per_gy=0.3, beta_per_gy2=0.03, transition_dose_gy=0.0),
            ParameterError,
            r"transition_dose_gy must be > 0, got 0\.0",
        ),
        (
            lambda: lkb_ntcp(-5.0),
            ScheduleError,
            r"mean_dose_gy must be >= 0, got -5\.0",
        ),
        (lambda: lkb_ntcp(5.0, m=0.0), ParameterError, r"m must be > 0, got 0\.0"),
        (
            lambda: lkb_ntcp(5.0, td50_gy=-1.0),
            ParameterError,
            r"td50_gy must be > 0, got -1\.0",
        ),
        (
            lambda: eqd2_per_fraction_corrected_mean_dose(10.0, 0),
            ScheduleError,
            r"n_fractions .* got 0\.0",
        ),
        (
            lambda: bed([24.0, 30.0], [3, 5, 10], 10.0),
            ParameterError,
            r"do not broadcast",
        ),
    ],
)
def test_invalid_inputs_raise_with_argument_and_value(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@given(
    n=st.integers(min_value=1, max_value=60),
    alpha_beta=st.floats(min_value=0.5, max_value=50.0, allow_nan=False),
)
def test_eqd2_of_2gy_fractions_is_the_total_dose(n, alpha_beta):
    total = 2.0 * n
    assert float(eqd2(total, n, alpha_beta)) == pytest.approx(total, rel=1e-12)


@given(
    d1=st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
    d2=st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
    n=st.integers(min_value=1, max_value=40),
    alpha_beta=st.floats(min_value=0.5, max_value=50.0, allow_nan=False),
)
def test_bed_is_monotone_in_dose_and_eqd2_is_rescaled_bed(d1, d2, n, alpha_beta):
    low, high = sorted((d1, d2))
    assert float(bed(low * n, n, alpha_beta)) <= float(bed(high * n, n, alpha_beta))
    b, e = float(bed(high * n, n, alpha_beta)), float(eqd2(high * n, n, alpha_beta))
    assert e == pytest.approx(b / (1.0 + 2.0 / alpha_beta), rel=1e-12, abs=1e-12)
