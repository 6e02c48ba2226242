"""Plans, schedules and checks as json, table, markdown or csv text.

Presentation only: the CLI prints these, the API's report page (`present.report`) shows them.
"""

from __future__ import annotations

import io
import json

import numpy as np

from planner.check import CheckResult
from planner.document import Plan
from planner.resolve import Runs
from present.text import csv_text, human, markdown_table, pct, rich_table

Rows = list[tuple[str, str, str, str]]


def plan_rows(p: Plan) -> Rows:
    b, r, s = p.baseline, p.random_ltd, p.savings

    def row(name: str, key: str, saving: float | None = None) -> tuple[str, str, str, str]:
        return (name, human(getattr(b, key)), human(getattr(r, key)), pct(saving))

    return [
        row("steps", "steps"),
        row("tokens read", "tokens"),
        row("effective tokens", "effective_tokens"),
        row("LayerTokens", "layer_tokens", s.layer_tokens),
        row("model FLOPs", "flops", s.flops),
        row("hardware FLOPs", "hardware_flops"),
        row("wall-clock hours", "wall_clock_hours", s.wall_clock),
        row("GPU-hours", "gpu_hours"),
        row("cost (USD)", "cost_usd"),
    ]


def plan_header(p: Plan) -> str:
    m, c, hw = p.model, p.random_ltd_config, p.hardware
    ltd = (
        f"random-LTD {c.schedule_type} {c.min_value}->{c.max_value} by {c.seq_per_step} over "
        f"{c.require_steps:,} steps on {len(c.layer_ids or ())} layers ({p.ltd_stop}); "
        if c.layer_ids
        else f"random-LTD off ({p.ltd_stop}); "
    )
    return (
        f"{m.name or 'model'}: {m.num_layers} layers, hidden {m.hidden_size}, "
        f"S {m.seq_len}, {human(m.num_params)} params; G {p.global_batch_size}; {ltd}"
        f"{curriculum_note(p)}{hw.num_gpus} x {hw.gpu} at MFU {hw.mfu:.0%}; plan {p.id}"
    )


def curriculum_note(p: Plan) -> str:
    """The curriculum the run is composed with, for the header ('' without one)."""
    section = p.curriculum
    if section is None:
        return ""
    cl = section.config
    parts = []
    if cl is not None:
        sc = cl.schedule_config
        ramp = (
            f"by {sc.difficulty_step} over {sc.total_curriculum_step:,} steps"
            if cl.schedule_type != "fixed_discrete"
            else f"at steps {sc.max_step}"
        )
        parts.append(
            f"composed with curriculum learning {cl.metric} {cl.schedule_type} "
            f"{cl.min_difficulty}->{cl.max_difficulty} {ramp}"
        )
    if section.reorder_metrics:
        parts.append(f"{', '.join(section.reorder_metrics)}: reorders data, no cost change")
    return "; ".join(parts) + "; "


def projection_note(p: Plan) -> str:
    """How the wall-clock figures were projected, under the table."""
    pr = p.projection
    if pr.method == "flops":  # a plan the first release stored (api/migrations, 0004)
        return (
            f"wall-clock: baseline at MFU {p.hardware.mfu:.0%}; random-LTD by the FLOPs ratio "
            "(a plan stored before the step-time model)"
        )
    times = ", ".join(f"{n}: {ms:,.1f} ms" for n, ms in pr.step_time_ms.items())
    profile = pr.device_profile.split(":")[0]
    return (
        f"wall-clock: baseline at MFU {p.hardware.mfu:.0%}; random-LTD by the step-time model on "
        f"{profile}, micro-batch {pr.micro_batch_size}, {pr.accumulation_steps} per step per GPU; "
        f"T(r) {times}"
    )


HEADERS = ("figure", "baseline", "random-LTD", "saving")
CSV_FIGURES = (
    "steps",
    "tokens",
    "effective_tokens",
    "layer_tokens",
    "flops",
    "hardware_flops",
    "wall_clock_hours",
    "gpu_hours",
    "cost_usd",
)


def render_plan(p: Plan, fmt: str) -> str:
    if fmt == "json":
        return p.model_dump_json(indent=2)
    rows = plan_rows(p)
    if fmt == "csv":
        saved = {
            "layer_tokens": p.savings.layer_tokens,
            "flops": p.savings.flops,
            "wall_clock_hours": p.savings.wall_clock,
        }
        raw = [
            (f, getattr(p.baseline, f), getattr(p.random_ltd, f), saved.get(f, ""))
            for f in CSV_FIGURES
        ]
        return csv_text(("figure", "baseline", "random_ltd", "saving"), raw)
    if fmt == "markdown":
        table = markdown_table(HEADERS, rows)
        return f"**{plan_header(p)}**\n\n{table}\n\n{projection_note(p)}\n"
    return rich_table(plan_header(p), HEADERS, rows) + projection_note(p) + "\n"


SCHEDULE_COLUMNS = (
    "step",
    "reserved_length",
    "layer_tokens",
    "cumulative_layer_tokens",
    "effective_tokens",
    "cumulative_effective_tokens",
)


def schedule_columns(runs: Runs, steps: np.ndarray) -> dict[str, np.ndarray]:
    """The CSV's columns: the random-LTD run's series at `steps` (cumulatives include the
    step); `lr` with a learning-rate schedule, `curriculum_seqlen` and `dropping` with CL."""
    series = runs.ltd.series(steps, runs.resolved.lr)
    cols = {
        "step": series.step,
        "reserved_length": series.reserved_length,
        "layer_tokens": series.layer_tokens,
        "cumulative_layer_tokens": series.cumulative_layer_tokens,
        "effective_tokens": series.effective_tokens,
        "cumulative_effective_tokens": series.cumulative_effective_tokens,
    }
    if series.lr is not None:
        cols["lr"] = series.lr
    if runs.ltd.counters.length_curriculum:
        cols["curriculum_seqlen"] = series.seqlen
        cols["dropping"] = series.dropping.astype(np.int64)
    return cols


def render_schedule(cols: dict[str, np.ndarray], fmt: str) -> str:
    names = list(cols)
    if fmt == "csv":
        buf = io.StringIO()
        buf.write(",".join(names) + "\n")
        fmts = ["%.8g" if n == "lr" else "%d" for n in names]
        table = np.column_stack(
            [cols[n].astype(np.float64 if n == "lr" else np.int64) for n in names]
        ).astype(object)
        np.savetxt(buf, table, fmt=fmts, delimiter=",")
        return buf.getvalue()
    records = [
        {n: (float(cols[n][i]) if n == "lr" else int(cols[n][i])) for n in names}
        for i in range(len(cols["step"]))
    ]
    if fmt == "json":
        return json.dumps(records, indent=1)
    rows = [[human(v) if k != "lr" else f"{v:.3e}" for k, v in rec.items()] for rec in records]
    if fmt == "markdown":
        return markdown_table(names, rows) + "\n"
    return rich_table("random-LTD schedule", names, rows)


def render_check(result: CheckResult, fmt: str) -> str:
    if fmt == "json":
        return result.model_dump_json(indent=2)
    verdict = "PASSED" if result.passed else "FAILED"
    v_rows = [
        (
            v.limit,
            human(v.allowed) if v.allowed >= 1 else f"{v.allowed:.4g}",
            human(v.actual)
            if v.actual is not None and v.actual >= 1
            else (f"{v.actual:.4g}" if v.actual is not None else "missing (no price?)"),
        )
        for v in result.violations
    ]
    c_rows = [
        (c.figure, human(c.old), human(c.new), "-" if c.change is None else f"{c.change:+.2%}")
        for c in result.changes
    ]
    if fmt == "csv":
        return csv_text(
            ("limit", "allowed", "actual"),
            [(v.limit, v.allowed, v.actual) for v in result.violations],
        )
    if fmt == "markdown":
        parts = [
            f"### ltd check: {verdict}",
            "",
            plan_header(result.plan),
            "",
            markdown_table(HEADERS, plan_rows(result.plan)),
        ]
        if v_rows:
            parts += [
                "",
                "**Violations**",
                "",
                markdown_table(("limit", "allowed", "actual"), v_rows),
            ]
        if c_rows:
            parts += [
                "",
                f"**Change against {result.compared_to}**",
                "",
                markdown_table(("figure", "before", "after", "change"), c_rows),
            ]
        return "\n".join(parts) + "\n"
    out = rich_table(plan_header(result.plan), HEADERS, plan_rows(result.plan))
    if c_rows:
        out += rich_table(
            f"change against {result.compared_to}", ("figure", "before", "after", "change"), c_rows
        )
    if v_rows:
        out += rich_table("violations", ("limit", "allowed", "actual"), v_rows)
    return out + f"check {verdict}\n"
