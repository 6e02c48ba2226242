"""Budget gates for CI: a plan against limits, and against an earlier plan.

Limits apply to the random-LTD run (the run the user intends to launch). A check passes when no
limit is violated; each violation names the limit, what it allows and what the plan needs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from planner.document import Plan


class CheckLimits(BaseModel):
    """Every limit is optional; fractions are in [0, 1] (0.3 = 30%)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_gpu_hours: float | None = Field(None, ge=0, le=1e15, description="GPU-hours of the run.")
    max_cost_usd: float | None = Field(
        None, ge=0, le=1e15, description="Dollars (needs a GPU price)."
    )
    max_wall_clock_hours: float | None = Field(
        None, ge=0, le=1e15, description="Hours, end to end."
    )
    min_flops_saving: float | None = Field(None, ge=0, le=1, description="Fraction of FLOPs.")
    min_layer_token_saving: float | None = Field(
        None, ge=0, le=1, description="Fraction of LayerTokens."
    )
    min_wall_clock_saving: float | None = Field(None, ge=0, le=1, description="Fraction.")
    max_growth: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Allowed growth of GPU-hours, cost and FLOPs over a compared plan (0.05=5%).",
    )


class Violation(BaseModel):
    limit: str
    allowed: float
    actual: float | None = Field(description="None when the plan lacks the figure (no price).")


class FigureChange(BaseModel):
    figure: str
    old: float | None
    new: float | None
    change: float | None = Field(description="new / old - 1, or None when either is missing.")


class CheckResult(BaseModel):
    passed: bool
    violations: list[Violation]
    plan: Plan
    compared_to: str | None = None
    changes: list[FigureChange] = Field(default_factory=list)


GROWTH_FIGURES = ("gpu_hours", "cost_usd", "flops", "wall_clock_hours")


def compare_plans(old: Plan, new: Plan) -> list[FigureChange]:
    """Figures of the random-LTD run, old against new."""
    out = []
    for name in (*GROWTH_FIGURES, "steps", "layer_tokens"):
        a, b = getattr(old.random_ltd, name), getattr(new.random_ltd, name)
        change = b / a - 1 if a and b is not None else None
        out.append(FigureChange(figure=name, old=a, new=b, change=change))
    for name in ("layer_tokens", "flops", "wall_clock"):
        a, b = getattr(old.savings, name), getattr(new.savings, name)
        out.append(FigureChange(figure=f"saving.{name}", old=a, new=b, change=b - a))
    return out


def check_plan(plan: Plan, limits: CheckLimits, previous: Plan | None = None) -> CheckResult:
    run, saved = plan.random_ltd, plan.savings
    violations: list[Violation] = []

    def at_most(limit: str, allowed: float | None, actual: float | None) -> None:
        if allowed is not None and actual is not None and actual > allowed:
            violations.append(Violation(limit=limit, allowed=allowed, actual=actual))

    def at_least(limit: str, allowed: float | None, actual: float) -> None:
        if allowed is not None and actual < allowed:
            violations.append(Violation(limit=limit, allowed=allowed, actual=actual))

    at_most("max_gpu_hours", limits.max_gpu_hours, run.gpu_hours)
    at_most("max_wall_clock_hours", limits.max_wall_clock_hours, run.wall_clock_hours)
    if limits.max_cost_usd is not None and run.cost_usd is None:
        # A cost limit without a price cannot pass silently.
        violations.append(Violation(limit="max_cost_usd", allowed=limits.max_cost_usd, actual=None))
    at_most("max_cost_usd", limits.max_cost_usd, run.cost_usd)
    at_least("min_flops_saving", limits.min_flops_saving, saved.flops)
    at_least("min_layer_token_saving", limits.min_layer_token_saving, saved.layer_tokens)
    at_least("min_wall_clock_saving", limits.min_wall_clock_saving, saved.wall_clock)
    changes = compare_plans(previous, plan) if previous is not None else []
    if previous is not None and limits.max_growth is not None:
        for c in changes:
            if c.figure in GROWTH_FIGURES and c.change is not None:
                at_most(f"max_growth.{c.figure}", limits.max_growth, c.change)
    return CheckResult(
        passed=not violations,
        violations=violations,
        plan=plan,
        compared_to=previous.id if previous is not None else None,
        changes=changes,
    )
