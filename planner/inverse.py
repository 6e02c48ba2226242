"""Inverse planning: the schedule that reaches a target saving at equal steps.

At equal steps, the saving (of LayerTokens or FLOPs) never falls as `require_steps` grows (every
step keeps fewer or as many tokens) and never rises as `min_value` grows. So a binary search finds
the shortest ramp, or the largest starting length, that reaches the target; and when even the
extreme end (the whole run at `min_value`, or at the smallest length) falls short, no schedule of
that kind can, and the answer says so with the best saving there is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.document import Plan, plan_from_runs
from planner.errors import PlanInputError
from planner.request import PlanRequest, RandomLTDRequest
from planner.resolve import Resolved, build_runs, resolve
from planner.schedule import MAX_REQUIRE_STEPS
from planner.typed import changed

Metric = Literal["layer_tokens", "flops"]


class InverseRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    target_saving: float = Field(..., gt=0, lt=1, description="Fraction to save, e.g. 0.3.")
    metric: Metric = Field("layer_tokens", description="What the saving is of.")
    solve_for: Literal["require_steps", "min_value"] = Field(
        "require_steps", description="The schedule parameter to find; the others stay fixed."
    )


class InverseResult(BaseModel):
    reachable: bool
    solve_for: str
    value: int | None = Field(description="The parameter's value, None when unreachable.")
    best_saving: float = Field(description="The most any value of the parameter gives.")
    message: str
    plan: Plan | None


def _saving(res: Resolved, metric: Metric, **update: int) -> float:
    trial = Resolved(
        res.model,
        res.global_batch_size,
        changed(res.ltd, field="random_ltd", **update),
        res.baseline_steps,
        "equal_steps",
        res.baseline_steps,
        res.hardware,
        res.lr,
    )
    runs = build_runs(trial)
    if metric == "layer_tokens":
        return 1 - runs.ltd.layer_tokens / runs.baseline.layer_tokens
    return 1 - runs.ltd.flops(False).model / runs.baseline.flops(False).model


def _search(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """Smallest x in [lo, hi] with ok(x), given ok is monotone and ok(hi) holds."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def solve(request: PlanRequest, inverse: InverseRequest) -> InverseResult:
    """The schedule parameter that reaches `inverse.target_saving` at equal steps."""
    if request.ltd_train_tokens or request.ltd_train_steps or request.ltd_equal_compute:
        raise PlanInputError("target_saving", "inverse planning compares runs at equal steps")
    res = resolve(request)
    target, metric = inverse.target_saving, inverse.metric
    cfg = res.ltd
    if inverse.solve_for == "require_steps":
        best = _saving(res, metric, require_steps=MAX_REQUIRE_STEPS)
        if best < target:
            return InverseResult(
                reachable=False,
                solve_for="require_steps",
                value=None,
                best_saving=best,
                plan=None,
                message=(
                    f"no require_steps reaches a {target:.1%} {metric} saving with min_value "
                    f"{cfg.min_value}: even never growing past it saves {best:.1%}; lower "
                    "min_value or train the random-LTD run for fewer tokens"
                ),
            )
        value = _search(
            1, MAX_REQUIRE_STEPS, lambda x: _saving(res, metric, require_steps=x) >= target
        )
    else:
        sps = cfg.seq_per_step
        smallest = sps if cfg.schedule_type != "constant" else 1
        best = _saving(res, metric, min_value=smallest)
        if best < target:
            return InverseResult(
                reachable=False,
                solve_for="min_value",
                value=None,
                best_saving=best,
                plan=None,
                message=(
                    f"no min_value reaches a {target:.1%} {metric} saving with require_steps "
                    f"{cfg.require_steps}: even min_value {smallest} saves {best:.1%}; "
                    "lengthen require_steps"
                ),
            )
        # The largest min_value that still reaches the target: search on its negation.
        top = cfg.max_value
        value = top - _search(
            0, top - smallest, lambda k: _saving(res, metric, min_value=top - k) >= target
        )
    schedule = RandomLTDRequest(**{**cfg.model_dump(), inverse.solve_for: value})
    solved = changed(request, random_ltd=schedule)
    result_plan = plan_from_runs(build_runs(resolve(solved)))
    achieved = getattr(result_plan.savings, metric)
    return InverseResult(
        reachable=True,
        solve_for=inverse.solve_for,
        value=value,
        best_saving=best,
        plan=result_plan,
        message=f"{inverse.solve_for} = {value:,} saves {achieved:.2%} of {metric}",
    )
