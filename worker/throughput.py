"""Stage 2 of a validation job: step time across the lengths a plan's schedule visits, and the
wall-clock saving it implies.

One path serves every plan: the job times whole optimizer steps at pairs (c, r) (sequence length
c, reserved length r; c = S without curriculum learning), fits T'(c, min(r, c)) in the plan's
units and integrates it over the plan's own schedule (`planner.calibration`), beside the
step-time model's prediction for the very shape measured, integrated the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from planner.calibration import fit_step_time, measured_saving
from planner.device import DeviceProfile
from planner.document import Plan
from planner.flops import step_flops
from planner.models import ModelShape
from planner.resolve import Runs
from planner.sizing import JobSize, accumulation_steps, measured_points, plan_points
from planner.steptime import StepShape
from planner.validation import StepTime, ValidationSettings
from worker import distributed, measure
from worker.data import Corpus
from worker.model import build_model
from worker.predict import with_predictions
from worker.train import make_optimizer, unwrap


@dataclass(frozen=True)
class Throughput:
    """Stage 2's figures."""

    step_times: list[StepTime]
    fit: list[float]
    saving: float
    gather_scatter_fraction: float | None
    accumulation: int
    optimizer_step_ms: float
    predicted_saving: float
    prediction_profile: str

    def result_fields(self, device: torch.device) -> dict[str, Any]:
        """The throughput part of a ValidationResult."""
        full = self.step_times[-1]  # the full-length step
        return {
            "accumulation_steps": self.accumulation,
            "optimizer_step_ms": self.optimizer_step_ms,
            "step_times": self.step_times,
            "step_time_fit": self.fit,
            "measured_wall_clock_saving": self.saving,
            "predicted_wall_clock_saving": self.predicted_saving,
            "prediction_profile": self.prediction_profile,
            "mfu": measure.mfu(full.model_flops_per_s, device),
            "gather_scatter_fraction": self.gather_scatter_fraction,
        }


# The throughput part of a result where none was measured (convergence mode).
NO_THROUGHPUT: dict[str, Any] = {
    "accumulation_steps": 1,
    "optimizer_step_ms": None,
    "step_times": [],
    "step_time_fit": None,
    "measured_wall_clock_saving": None,
    "mfu": None,
    "gather_scatter_fraction": None,
}


def measure_step_times(
    model: torch.nn.Module,
    points: list[tuple[int, int]],
    *,
    corpus: Corpus,
    size: JobSize,
    accumulation: int,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    progress: Callable[[float], None],
    report_seqlen: bool,
) -> tuple[list[StepTime], float]:
    """Step time at each (c, r) of the measured model: `accumulation` forward-backward passes on
    sequences cut to c, timed after warm-up, plus one optimizer update; under DDP rank 0's
    figures. Returns the step times and the optimizer update's milliseconds."""
    core = unwrap(model)
    shape, L_ltd, mb = core.shape, len(core.ltd_layer_ids), size.micro_batch_size
    rng = np.random.default_rng(settings.seed)
    inputs, targets = corpus.batch("train", mb, size.seq_len, shape.vocab_size, rng)
    model.train()
    seqlens, lengths = [c for c, _ in points], [r for _, r in points]
    fb_ms = measure.forward_backward_ms(
        model,
        (inputs.to(device), targets.to(device)),
        lengths,
        amp_dtype=amp_dtype,
        warmup=settings.warmup_steps,
        repeats=settings.measure_steps,
        progress=progress,
        seqlens=seqlens,
    )
    opt_ms = distributed.agree(measure.optimizer_step_ms(model, make_optimizer(model)))
    results = []
    for (c, r), ms in zip(points, fb_ms, strict=True):
        step_ms = accumulation * distributed.agree(ms) + opt_ms
        flops = accumulation * float(
            step_flops(shape, reserved=r, seqlen=c, rows=mb, num_ltd_layers=L_ltd)
        )
        results.append(
            StepTime(
                reserved_length=r,
                seqlen=c if report_seqlen else None,
                step_time_ms=step_ms,
                tokens_per_s=accumulation * mb * c / (step_ms / 1e3),
                model_flops_per_s=flops / (step_ms / 1e3),
            )
        )
    return results, opt_ms


def gather_scatter_fraction(
    points: list[tuple[int, int]],
    times: list[StepTime],
    *,
    size: JobSize,
    accumulation: int,
    hidden: int,
    num_ltd_layers: int,
    device: torch.device,
) -> float | None:
    """Share of the step at the smallest measured reserved length spent sampling, gathering and
    scattering, in every micro-batch (where it weighs most); None where nothing drops."""
    dropping = [(r, c, t) for (c, r), t in zip(points, times, strict=True) if r < c]
    if not dropping or num_ltd_layers == 0:
        return None
    r, c, smallest = min(dropping, key=lambda x: x[0])
    # The residual stream the drop acts on stays fp32 under autocast (weights are fp32).
    ms = measure.gather_scatter_ms(
        batch=size.micro_batch_size,
        seq_len=c,
        reserved_length=r,
        hidden=hidden,
        num_ltd_layers=num_ltd_layers,
        device=device,
        dtype=torch.float32,
    )
    return accumulation * ms / smallest.step_time_ms


def build(
    shape: ModelShape,
    ltd_layer_ids: tuple[int, ...],
    seed: int,
    device: torch.device,
    implementation: str = "native",
) -> torch.nn.Module:
    """The model a job measures, the project's own (`native`) or Transformers' (`hf`): the
    same initialisation on every rank and for every run; then each rank's own drops."""
    torch.manual_seed(seed)
    if implementation == "hf":
        from worker.hf import TransformersModel  # Transformers loads only for an hf job

        model: torch.nn.Module = TransformersModel(shape, ltd_layer_ids)
    else:
        model = build_model(shape, ltd_layer_ids=ltd_layer_ids)
    model = distributed.wrap(model.to(device), device)
    torch.manual_seed(seed + distributed.rank())
    return model


def implementation_for(shape: ModelShape, setting: str) -> str:
    """`hf` or `native` for a job's `implementation` setting: `auto` is hf where Transformers
    is installed and has the shape's architecture (ValueError: hf asked for and unavailable)."""
    if setting == "native":
        return "native"
    try:
        from worker.hf import architecture_for
    except ImportError:
        if setting == "hf":
            raise ValueError(
                "implementation 'hf' needs Hugging Face Transformers on the worker: "
                'pip install "ltd-planner[hf]"'
            ) from None
        return "native"
    if architecture_for(shape) is None:
        if setting == "hf":
            raise ValueError(
                f"implementation 'hf': no Transformers architecture matches this model "
                f"({shape.arch}, {shape.position} positions, {shape.activation}, {shape.norm}); "
                "it times GPT-2, Llama-family and BERT shapes"
            )
        return "native"
    return "hf"


def run_throughput(
    plan: Plan,
    runs: Runs,
    shape: ModelShape,
    size: JobSize,
    ltd_ids: tuple[int, ...],
    *,
    corpus: Corpus,
    settings: ValidationSettings,
    device: torch.device,
    amp_dtype: torch.dtype,
    profile: DeviceProfile | None,
    implementation: str,
    progress: Callable[[float], None],
) -> Throughput:
    """Time the measured model (`shape`) at the plan's (c, r) pairs, fit T'(c, min(r, c)) in
    the plan's units and integrate it over the plan's schedule; the step-time model predicts
    the same pairs on `profile` (rank 0's; None on other ranks), integrated alike."""
    S = runs.resolved.model.seq_len
    points = measured_points(plan_points(runs, settings), S, size.seq_len)
    model = build(shape, ltd_ids, settings.seed, device, implementation)
    accumulation = accumulation_steps(plan, size.micro_batch_size)
    times, opt_ms = measure_step_times(
        model,
        points,
        corpus=corpus,
        size=size,
        accumulation=accumulation,
        settings=settings,
        device=device,
        amp_dtype=amp_dtype,
        progress=progress,
        report_seqlen=runs.ltd.counters.length_curriculum,
    )
    del model
    to_plan = S / size.seq_len
    in_plan_units = [(c * to_plan, min(r, c) * to_plan) for c, r in points]
    fit = fit_step_time(in_plan_units, [t.step_time_ms for t in times])
    step = StepShape(
        shape, len(ltd_ids), size.micro_batch_size, accumulation, num_gpus=distributed.world_size()
    )
    times, predicted, label = with_predictions(profile, times, points, step)
    predicted_fit = fit_step_time(in_plan_units, predicted)
    share = gather_scatter_fraction(
        points,
        times,
        size=size,
        accumulation=accumulation,
        hidden=shape.hidden_size,
        num_ltd_layers=len(ltd_ids),
        device=device,
    )

    def saving(fitted: list[float]) -> float:
        return measured_saving(runs, fitted, measured=shape, measured_ltd_layers=len(ltd_ids))

    return Throughput(
        times, fit, saving(fit), share, accumulation, opt_ms, saving(predicted_fit), label
    )
