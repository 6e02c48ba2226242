"""The plan's figures: schedule, learning rate against LayerTokens, cumulative compute, cost,
the step-time model's T(r) by part, and a quality job's held-out loss against time.

One function draws them (matplotlib, Agg backend, no display): `ltd plan --plot FILE.png` writes
a PNG, and the report page (`present.report`) embeds the same figure as inline SVG, with a
validation job's measurements where one succeeded. A panel is drawn only when it has something
to show. Import this module only to draw: it loads matplotlib.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from functools import partial

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from planner.document import Plan
from planner.projection import device_profile_for, step_shape
from planner.resolve import Runs
from planner.run import Run
from planner.steptime import StepShape
from planner.steptime_table import StepTimes
from planner.typed import changed
from planner.validation import QualityResult, ValidationResult

MAX_POINTS = 2000
# Figures are built without pyplot (no global figure registry); rcParams are still global, so
# rendering takes a lock: the API renders reports from several threads.
_RENDER_LOCK = threading.Lock()


def _steps(num_steps: int) -> np.ndarray:
    every = max(1, num_steps // MAX_POINTS)
    return np.unique(np.append(np.arange(0, num_steps, every), num_steps - 1))


def series(runs: Runs) -> dict[str, dict[str, np.ndarray]]:
    """Sampled per-step figures of both runs (steps, length, cumulative LayerTokens/FLOPs, lr)."""
    res = runs.resolved
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, run in (("baseline", runs.baseline), ("random_ltd", runs.ltd)):
        steps = _steps(run.num_steps)
        at = run.series(steps, res.lr)

        def flops(r: np.ndarray, c: np.ndarray, run: Run = run) -> np.ndarray:
            return run.counters.step_flops(r.astype(np.float64), c.astype(np.float64))

        data = {
            "step": steps,
            "reserved_length": at.reserved_length,
            "cumulative_layer_tokens": at.cumulative_layer_tokens,
            "cumulative_flops": run.cumulative(flops, steps, dtype=np.float64),
        }
        if run.counters.length_curriculum:
            data["curriculum_seqlen"] = at.seqlen
        if at.lr is not None:
            data["lr"] = at.lr
        out[name] = data
    return out


Series = dict[str, np.ndarray]


Panel = Callable[[Axes], None]


def draw(plan: Plan, runs: Runs, result: ValidationResult | None = None) -> Figure:
    """The plan's figure, two panels a row: those below that have something to show."""
    data = series(runs)
    base, ltd = data["baseline"], data["random_ltd"]
    panels: list[Panel] = [partial(lengths_panel, plan=plan, ltd=ltd)]
    if "lr" in ltd:
        panels.append(partial(lr_panel, base=base, ltd=ltd))
    panels += [
        partial(compute_panel, base=base, ltd=ltd),
        partial(cost_panel, plan=plan),
        partial(step_time_panel, plan=plan, runs=runs, result=result),
    ]
    if result is not None and result.quality is not None:
        panels.append(partial(quality_panel, quality=result.quality))
    rows = -(-len(panels) // 2)
    fig = Figure(figsize=(12, 4 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    fig.suptitle(
        f"random-LTD plan {plan.id}: {plan.model.name or 'model'}, "
        f"{plan.savings.flops:.1%} FLOPs saved",
        fontsize=12,
    )
    for ax, panel in zip(axes, panels, strict=False):
        panel(ax)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()  # an odd number of panels: the last cell stays empty
    return fig


def lengths_panel(ax: Axes, plan: Plan, ltd: Series) -> None:
    """The reserved length r by step (and curriculum learning's c where it is on)."""
    ax.step(ltd["step"], ltd["reserved_length"], where="post", color="tab:orange",
            label="reserved length r")  # fmt: skip
    title = "Reserved length per dropping layer"
    if "curriculum_seqlen" in ltd:  # composed: both lengths on one chart
        ax.step(ltd["step"], ltd["curriculum_seqlen"], where="post", color="tab:green",
                label="curriculum length c (dropping layers keep min(r, c))")  # fmt: skip
        title = "Reserved length r and curriculum length c"
    ax.set(title=title, xlabel="optimizer step", ylabel="tokens")
    ax.axhline(plan.model.seq_len, color="grey", lw=0.8, ls="--", label="full sequence S")
    ax.legend(loc="lower right")


def lr_panel(ax: Axes, base: Series, ltd: Series) -> None:
    """Both runs' learning rate against their cumulative LayerTokens."""
    ax.plot(base["cumulative_layer_tokens"], base["lr"], label="baseline")
    ax.plot(ltd["cumulative_layer_tokens"], ltd["lr"], label="random-LTD")
    ax.legend()
    ax.set(
        title="Learning rate against LayerTokens",
        xlabel="cumulative LayerTokens",
        ylabel="learning rate",
    )


def compute_panel(ax: Axes, base: Series, ltd: Series) -> None:
    """Both runs' cumulative model FLOPs by step."""
    ax.plot(base["step"], base["cumulative_flops"], label="baseline")
    ax.plot(ltd["step"], ltd["cumulative_flops"], label="random-LTD")
    ax.set(title="Cumulative compute", xlabel="optimizer step", ylabel="model FLOPs")
    ax.legend()


def cost_panel(ax: Axes, plan: Plan) -> None:
    """GPU-hours (and cost, and the calibrated GPU-hours) of both runs side by side."""
    figures = [("GPU-hours", plan.baseline.gpu_hours, plan.random_ltd.gpu_hours)]
    if plan.baseline.cost_usd is not None:
        figures.append(("cost (USD)", plan.baseline.cost_usd, plan.random_ltd.cost_usd or 0.0))
    if plan.calibrated:
        figures.append(
            (
                "GPU-hours, calibrated",
                plan.baseline.gpu_hours,
                plan.calibrated.random_ltd_gpu_hours,
            )
        )
    x = np.arange(len(figures))
    ax.bar(x - 0.2, [f[1] for f in figures], 0.4, label="baseline")
    ax.bar(x + 0.2, [f[2] for f in figures], 0.4, label="random-LTD")
    ax.set_xticks(x, [f[0] for f in figures])
    ax.set(title="Cost side by side")
    ax.legend()


PART_LABELS = {
    "matmuls": "matmuls",
    "attention": "attention core",
    "memory_bound": "memory-bound work",
    "token_drop": "gather/scatter",
    "launch_overhead": "launches",
    "optimizer": "optimizer",
    "allreduce_exposed": "all-reduce",
}
PART_POINTS = 16


def _measured_shape(plan: Plan, result: ValidationResult) -> StepShape | None:
    """The step shape a job measured (its model, micro-batch and accumulation), if it did."""
    if result.num_layers is None or result.seq_len is None or not result.step_times:
        return None
    model = changed(plan.model, num_layers=result.num_layers, seq_len=result.seq_len)
    return StepShape(
        model,
        result.num_ltd_layers or 0,
        result.micro_batch_size or 1,
        result.accumulation_steps,
        num_gpus=1,
    )


def step_time_panel(ax: Axes, plan: Plan, runs: Runs, result: ValidationResult | None) -> None:
    """The step-time model's T(r) as its stacked parts: for the model a job measured, on the
    profile its predictions used, with the measured step times on top; else for the plan's
    own step shape on the plan's profile."""
    shape, profile = step_shape(runs), device_profile_for(runs.resolved.hardware)
    measured: list[tuple[int, float]] = []
    where = f"the plan's step on {profile.device_name} ({profile.dtype})"
    job_shape = _measured_shape(plan, result) if result else None
    if result is not None and job_shape is not None and result.prediction_device_profile:
        shape, profile = job_shape, result.prediction_device_profile
        S_job = job_shape.model.seq_len
        measured = [
            (t.reserved_length, t.step_time_ms)
            for t in result.step_times
            if t.seqlen is None or t.seqlen == S_job
        ]
        where = (
            f"the job's step ({job_shape.model.num_layers} layers, S {S_job}) on "
            f"{profile.device_name} ({profile.dtype})"
        )
    S = shape.model.seq_len
    first = min(int(runs.ltd.reserved[0] * S / runs.resolved.model.seq_len), S)
    lengths = sorted({int(x) for x in np.linspace(max(first, 1), S, PART_POINTS)})
    table = StepTimes(shape, profile, np.asarray(lengths))
    parts = [table.breakdown_s(r) for r in lengths]
    stacks = [[p[name] * 1e3 for p in parts] for name in PART_LABELS]
    ax.stackplot(lengths, stacks, labels=list(PART_LABELS.values()), alpha=0.8)
    if measured:
        r, ms = zip(*measured, strict=True)
        ax.plot(r, ms, "ko", label="measured", zorder=3)
    ax.set(
        title=f"Step time by part: {where}",
        xlabel="reserved length r (tokens)",
        ylabel="ms per optimizer step",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="upper left")


def quality_panel(ax: Axes, quality: QualityResult) -> None:
    """Held-out loss against the time each run was given, the mean of the seeds as a line and
    their range as a band; the verdict and its interval in the title."""
    for run, color, label in (("baseline", "tab:blue", "baseline"),
                              ("random_ltd", "tab:orange", "random-LTD")):  # fmt: skip
        curves = [c for c in quality.curves if c.run == run]
        if not curves:
            continue
        points = min(len(c.seconds) for c in curves)
        seconds = np.asarray(curves[0].seconds[:points])
        losses = np.asarray([c.eval_loss[:points] for c in curves])
        ax.plot(seconds, losses.mean(axis=0), color=color, label=f"{label} (mean of seeds)")
        ax.fill_between(seconds, losses.min(axis=0), losses.max(axis=0), color=color, alpha=0.2)
    lo, hi = quality.difference_ci95
    verdict = quality.verdict.replace("_", " ")
    ax.set(
        title=f"Quality ({quality.basis.replace('_', ' ')}): random-LTD {verdict}, "
        f"difference {quality.difference_mean:+.4f} [{lo:+.4f}, {hi:+.4f}]",
        xlabel="seconds of training on the job's device",
        ylabel="held-out loss",
    )
    ax.title.set_fontsize(9)
    ax.legend()


def plot_plan(plan: Plan, runs: Runs, path: str) -> None:
    with _RENDER_LOCK:
        draw(plan, runs).savefig(path, dpi=110)


def plan_svg(plan: Plan, runs: Runs, result: ValidationResult | None = None) -> str:
    """The figure as an inline SVG document (no external assets; the same bytes every time)."""
    buf = io.StringIO()
    # Text stays <text>; ids are salted with the plan id, so the same plan draws the same bytes.
    with _RENDER_LOCK, mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": plan.id}):
        draw(plan, runs, result).savefig(
            buf, format="svg", metadata={"Creator": None, "Date": None}
        )
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]
