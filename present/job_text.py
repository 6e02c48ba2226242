"""Validation results as json, table, markdown or csv text."""

from __future__ import annotations

from planner.document import Plan
from planner.validation import QualityResult, ValidationResult
from present.text import csv_text, human, markdown_table, pct, rich_table

STEP_HEADERS = (
    "reserved length",
    "step time (ms)",
    "model's prediction (ms)",
    "model's error",
    "tokens/s",
    "model TFLOP/s",
)


def validation_rows(result: ValidationResult) -> list[tuple[str, ...]]:
    """Step time by reserved length, measured beside the step-time model's prediction."""
    return [
        (
            str(s.reserved_length),
            f"{s.step_time_ms:,.2f}",
            "-" if s.predicted_step_time_ms is None else f"{s.predicted_step_time_ms:,.2f}",
            "-" if s.prediction_error is None else f"{s.prediction_error:+.1%}",
            f"{s.tokens_per_s:,.0f}",
            f"{s.model_flops_per_s / 1e12:,.3f}",
        )
        for s in result.step_times
    ]


def validation_summary(plan: Plan, result: ValidationResult) -> list[tuple[str, str]]:
    rows = [
        (
            "device",
            f"{result.device} {result.gpu_name or ''} (torch {result.torch_version}, "
            f"{result.dtype})".replace("  ", " "),
        ),
        (
            "measured model",
            "none (a device profile)"
            if result.num_layers is None
            else f"{result.num_layers} layers ({result.num_ltd_layers} dropping), "
            f"micro-batch {result.micro_batch_size}, S {result.seq_len}"
            + (f", {result.implementation}" if result.implementation else ""),
        ),
        ("scaled down", "; ".join(result.scaled_down) or "nothing"),
        ("measured wall-clock saving", pct(result.measured_wall_clock_saving)),
        ("step-time model's saving for this shape", pct(result.predicted_wall_clock_saving)),
        ("planner FLOPs saving", pct(result.flops_saving)),
        ("MFU (full-length step)", "-" if result.mfu is None else f"{result.mfu:.1%}"),
        (
            "peak memory",
            "-"
            if result.peak_memory_bytes is None
            else f"{result.peak_memory_bytes / 2**20:,.0f} MiB",
        ),
        ("gather + scatter share", pct(result.gather_scatter_fraction)),
        (
            "seconds (step-time model's prediction)",
            f"{result.seconds:,.1f}"
            + (
                f" ({result.predicted_job_seconds:,.1f})"
                if result.predicted_job_seconds is not None
                else ""
            ),
        ),
    ]
    if result.stopped_early:
        rows.append(("stopped early", result.stopped_early))
    if result.quality is not None:
        rows += quality_rows(result.quality)
    if result.convergence is not None:  # a job of an earlier version
        c = result.convergence
        rows.append(
            (
                "eval loss at equal LayerTokens",
                f"baseline {c.baseline_eval_loss:.4f} ({c.baseline_steps} steps), "
                f"random-LTD {c.random_ltd_eval_loss:.4f} ({c.random_ltd_steps} steps)",
            )
        )
    return rows


def verdict_line(q: QualityResult) -> str:
    """The quality verdict in a sentence, its interval and what the job could detect."""
    lo, hi = q.difference_ci95
    said = {
        "better": "random-LTD is better",
        "worse": "random-LTD is worse",
        "no_detectable_difference": "no detectable difference",
    }[q.verdict]
    basis = "at equal time" if q.basis == "equal_time" else "at equal LayerTokens"
    return (
        f"Quality {basis}: {said} (held-out loss, random-LTD minus baseline: "
        f"{q.difference_mean:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}], {len(q.seeds)} paired "
        f"seeds; the smallest difference this job could detect: {q.detectable_difference:.4f})"
    )


def quality_rows(q: QualityResult) -> list[tuple[str, str]]:
    """The quality comparison's figures, a row each."""

    def losses(values: list[float]) -> str:
        return ", ".join(f"{v:.4f}" for v in values)

    return [
        ("quality verdict", q.verdict.replace("_", " ")),
        ("baseline eval loss by seed", losses(q.baseline_eval_loss)),
        ("random-LTD eval loss by seed", losses(q.random_ltd_eval_loss)),
        (
            "runs",
            f"baseline {q.baseline_steps:,} steps in {q.baseline_seconds:,.1f} s, random-LTD "
            f"{q.random_ltd_steps:,} steps in {q.random_ltd_seconds:,.1f} s; batch "
            f"{q.batch_size} x S {q.seq_len}; {q.eval_tokens:,} held-out tokens an evaluation",
        ),
    ]


def calibrated_rows(plan: Plan) -> list[tuple[str, str, str, str]]:
    cal = plan.calibrated
    if not cal:
        return []
    return [
        (
            "wall-clock hours",
            human(plan.baseline.wall_clock_hours),
            human(plan.random_ltd.wall_clock_hours),
            human(cal.random_ltd_wall_clock_hours),
        ),
        (
            "GPU-hours",
            human(plan.baseline.gpu_hours),
            human(plan.random_ltd.gpu_hours),
            human(cal.random_ltd_gpu_hours),
        ),
        (
            "cost (USD)",
            human(plan.baseline.cost_usd),
            human(plan.random_ltd.cost_usd),
            human(cal.random_ltd_cost_usd),
        ),
        (
            "wall-clock saving",
            "",
            pct(plan.savings.wall_clock),
            pct(cal.measured_wall_clock_saving),
        ),
    ]


CAL_HEADERS = ("figure", "baseline", "random-LTD (step-time model)", "random-LTD (calibrated)")


def render_validation(plan: Plan, result: ValidationResult, fmt: str) -> str:
    step_headers = STEP_HEADERS
    summary = validation_summary(plan, result)
    verdict = [f"**{verdict_line(result.quality)}**", ""] if result.quality else []
    if fmt == "markdown":
        return "\n".join(
            [
                f"### Validation of plan {plan.id}",
                "",
                *verdict,
                markdown_table(("measurement", "value"), summary),
                "",
                markdown_table(step_headers, validation_rows(result)),
                "",
            ]
        )
    if fmt == "csv":
        return csv_text(step_headers, validation_rows(result))
    head = verdict_line(result.quality) + "\n" if result.quality else ""
    return (
        head
        + rich_table(f"validation of plan {plan.id}", ("measurement", "value"), summary)
        + rich_table("step time by reserved length", step_headers, validation_rows(result))
    )
