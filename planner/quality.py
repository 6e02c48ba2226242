"""Is the saving worth taking? The statistics of a paired quality comparison.

A quality job trains a baseline and a random-LTD run for each of n seeds; each pair shares its
initialisation and data order, so the paired differences d_i = random-LTD loss - baseline loss
(negative: random-LTD is better) carry the effect without the seed-to-seed spread. Over them:

    mean      d = sum d_i / n
    spread    s = sqrt(sum (d_i - d)^2 / (n - 1))
    interval  d -/+ t(0.975, n - 1) s / sqrt(n)             (a 95% t-interval)
    verdict   better when hi < 0, worse when lo > 0, else no_detectable_difference
    detectable  (t(0.975, n - 1) + t(0.80, n - 1)) s / sqrt(n)

The last is the smallest true difference this job had an 80% chance to call (a two-sided 5%
paired t-test, the usual normal-approximation of its power): with a difference smaller than
that, "no detectable difference" says little. Student's t quantiles are computed here (no SciPy
in the planner): the regularized incomplete beta function by its continued fraction (Numerical
Recipes, 3rd ed., section 6.4), inverted by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["better", "no_detectable_difference", "worse"]
CONFIDENCE = 0.95
POWER = 0.80


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
        + b * math.log1p(-x)
    )  # fmt: skip
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t with `df` degrees of freedom (0 < q < 1)."""
    if not 0.0 < q < 1.0 or df <= 0:
        raise ValueError(f"q must be in (0, 1) and df positive, got q={q}, df={df}")
    lo, hi = -1.0, 1.0
    while student_t_cdf(lo, df) > q:
        lo *= 2.0
    while student_t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class PairedComparison:
    """The paired differences of n seeds, summarised (module docstring)."""

    differences: tuple[float, ...]
    mean: float
    ci95: tuple[float, float]
    verdict: Verdict
    detectable: float  # the smallest difference with an 80% chance to be called


def compare_paired(baseline: Sequence[float], random_ltd: Sequence[float]) -> PairedComparison:
    """Summarise per-seed losses of paired runs (at least two seeds)."""
    if len(baseline) != len(random_ltd):
        raise ValueError("baseline and random_ltd need one loss per seed each")
    n = len(baseline)
    if n < 2:
        raise ValueError(f"a paired comparison needs at least 2 seeds, got {n}")
    d = tuple(b - a for a, b in zip(baseline, random_ltd, strict=True))
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    t_conf = student_t_ppf(1 - (1 - CONFIDENCE) / 2, n - 1)
    lo, hi = mean - t_conf * se, mean + t_conf * se
    verdict: Verdict = "better" if hi < 0 else "worse" if lo > 0 else "no_detectable_difference"
    detectable = (t_conf + student_t_ppf(POWER, n - 1)) * se
    return PairedComparison(d, mean, (lo, hi), verdict, detectable)
