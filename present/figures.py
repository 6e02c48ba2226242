"""The plan's figures: schedule, learning rate against LayerTokens, cumulative compute, cost.

One function draws them (matplotlib, Agg backend, no display): `ltd plan --plot FILE.png` writes
a PNG, and the report page (`present.report`) embeds the same figure as inline SVG. Import this
module only to draw: it loads matplotlib.
"""

from __future__ import annotations

import io
import threading

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from planner.document import Plan
from planner.resolve import Runs
from planner.run import Run

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


def draw(plan: Plan, runs: Runs) -> Figure:
    """A 2 x 2 matplotlib figure of the plan, one panel per function below."""
    data = series(runs)
    base, ltd = data["baseline"], data["random_ltd"]
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    fig.suptitle(
        f"random-LTD plan {plan.id}: {plan.model.name or 'model'}, "
        f"{plan.savings.flops:.1%} FLOPs saved",
        fontsize=12,
    )
    lengths_panel(axes[0, 0], plan, ltd)
    lr_panel(axes[0, 1], base, ltd)
    compute_panel(axes[1, 0], base, ltd)
    cost_panel(axes[1, 1], plan)
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
    if "lr" in ltd:
        ax.plot(base["cumulative_layer_tokens"], base["lr"], label="baseline")
        ax.plot(ltd["cumulative_layer_tokens"], ltd["lr"], label="random-LTD")
        ax.legend()
    else:
        ax.text(
            0.5,
            0.5,
            "no learning-rate schedule in the request\n(--peak-lr, --decay-tokens)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="grey",
        )
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


def plot_plan(plan: Plan, runs: Runs, path: str) -> None:
    with _RENDER_LOCK:
        draw(plan, runs).savefig(path, dpi=110)


def plan_svg(plan: Plan, runs: Runs) -> str:
    """The figure as an inline SVG document (no external assets)."""
    buf = io.StringIO()
    with _RENDER_LOCK, mpl.rc_context({"svg.fonttype": "none"}):  # text stays <text>
        draw(plan, runs).savefig(buf, format="svg", metadata={"Creator": None, "Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]
