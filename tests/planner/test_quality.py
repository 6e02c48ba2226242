"""The statistics of a paired quality comparison, against tables and by hand, and their error
rates on planted effects."""

import math

import numpy as np
import pytest

from planner.quality import compare_paired, student_t_cdf, student_t_ppf


@pytest.mark.parametrize(
    ("q", "df", "table"),
    [  # Student's t table (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2)
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.975, 4, 2.776),
        (0.975, 9, 2.262),
        (0.975, 30, 2.042),
        (0.80, 2, 1.061),
        (0.80, 4, 0.941),
        (0.80, 9, 0.883),
    ],
)
def test_t_quantiles_match_the_table(q: float, df: int, table: float) -> None:
    assert student_t_ppf(q, df) == pytest.approx(table, abs=5e-4)
    assert student_t_ppf(1 - q, df) == pytest.approx(-table, abs=5e-4)  # symmetric
    assert student_t_cdf(student_t_ppf(q, df), df) == pytest.approx(q, abs=1e-10)


def test_interval_and_verdict_by_hand() -> None:
    base, ltd = [3.00, 3.10, 2.90], [2.90, 3.05, 2.80]
    c = compare_paired(base, ltd)
    # d = (-0.10, -0.05, -0.10): mean -0.08333, s = 0.028868, se = s / sqrt(3) = 0.016667,
    # t(0.975, 2) = 4.302653: half-width 0.071711.
    assert c.differences == pytest.approx((-0.10, -0.05, -0.10))
    assert c.mean == pytest.approx(-0.0833333, abs=1e-6)
    assert c.ci95[0] == pytest.approx(-0.0833333 - 0.0717109, abs=1e-6)
    assert c.ci95[1] == pytest.approx(-0.0833333 + 0.0717109, abs=1e-6)
    assert c.verdict == "better"  # hi < 0
    # detectable: (4.302653 + 1.060660) * 0.016667 = 0.089389
    assert c.detectable == pytest.approx(0.089389, abs=1e-5)
    worse = compare_paired(ltd, base)
    assert worse.verdict == "worse" and worse.ci95[0] == pytest.approx(-c.ci95[1])


def test_an_a_a_comparison_is_exactly_no_difference() -> None:
    c = compare_paired([3.2, 3.1, 3.4], [3.2, 3.1, 3.4])
    assert c.differences == (0.0, 0.0, 0.0) and c.mean == 0.0 and c.ci95 == (0.0, 0.0)
    assert c.verdict == "no_detectable_difference" and c.detectable == 0.0


def test_too_few_seeds_or_unpaired_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 seeds"):
        compare_paired([3.0], [2.9])
    with pytest.raises(ValueError, match="one loss per seed"):
        compare_paired([3.0, 3.1], [2.9])


def _rates(effect: float, noise: float, seeds: int, trials: int = 4000) -> dict[str, float]:
    """Verdicts of many simulated jobs whose random-LTD losses differ from the baseline's by
    `effect` plus paired noise of standard deviation `noise`."""
    rng = np.random.default_rng(1234)
    verdicts = {"better": 0, "worse": 0, "no_detectable_difference": 0}
    for _ in range(trials):
        base = 3.0 + rng.normal(0, 0.2, seeds)  # seed-to-seed spread, shared by the pair
        ltd = base + effect + rng.normal(0, noise, seeds)
        verdicts[compare_paired(base.tolist(), ltd.tolist()).verdict] += 1
    return {k: v / trials for k, v in verdicts.items()}


@pytest.mark.slow  # Monte Carlo over many simulated jobs
def test_no_effect_is_called_at_the_5_percent_rate() -> None:
    rates = _rates(effect=0.0, noise=0.01, seeds=5)
    assert rates["better"] + rates["worse"] == pytest.approx(0.05, abs=0.015)


def _power(ncp: float, df: int, t_crit: float) -> float:
    """The paired t-test's chance to call an effect of `ncp` standard errors on its side:
    P((Z + ncp) / sqrt(V / df) > t_crit), V ~ chi-squared(df), by integrating over V."""
    v = np.linspace(1e-6, df + 40 * math.sqrt(2 * df), 200_001)
    log_density = (df / 2 - 1) * np.log(v) - v / 2 - (df / 2) * math.log(2) - math.lgamma(df / 2)
    z = ncp - t_crit * np.sqrt(v / df)
    normal_cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return float(np.trapezoid(normal_cdf * np.exp(log_density), v))


@pytest.mark.slow  # Monte Carlo over many simulated jobs
@pytest.mark.parametrize("ncp", [1.5, 2.5, 4.0])
def test_a_planted_effect_is_found_at_the_expected_rate(ncp: float) -> None:
    """Random-LTD losses lower by `ncp` standard errors of the paired difference: the job calls
    "better" as often as the t-test's power says (computed independently, by integration)."""
    seeds, noise = 5, 0.02
    effect = -ncp * noise / math.sqrt(seeds)
    rates = _rates(effect=effect, noise=noise, seeds=seeds)
    expected = _power(ncp, seeds - 1, student_t_ppf(0.975, seeds - 1))
    assert rates["better"] == pytest.approx(expected, abs=0.03)
    assert rates["worse"] < 0.005  # the wrong sign is (almost) never called
