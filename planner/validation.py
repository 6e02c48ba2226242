"""Validation jobs: their settings and their result, as the API stores them and the worker
reports them (pure pydantic). What a result means for a plan (the fitted step time, the saving it
implies, the calibrated projection) is `planner.calibration`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.device import DeviceProfile

# Bounds of what a worker measures: beyond any run, inside every number type the API stores.
Length = Annotated[int, Field(ge=1, le=10**7)]  # tokens in a sequence
Count = Annotated[int, Field(ge=0, le=10**18)]
Ms = Annotated[float, Field(ge=0, le=1e9)]
Rate = Annotated[float, Field(ge=0, le=1e21)]
Signed = Annotated[float, Field(ge=-1e12, le=1e12)]
Saving = Annotated[float, Field(ge=-1e3, le=1)]  # a fraction; negative: slower with dropping
Loss = Annotated[float, Field(ge=0, le=1e6)]
Name = Annotated[str, Field(max_length=200)]


class ValidationSettings(BaseModel):
    """How a validation job measures; every field has a default sized for about a minute on a
    CPU with a small model."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mode: Literal["throughput", "quality", "convergence", "both", "profile"] = Field(
        "throughput",
        description="throughput: measure step time across the schedule. quality: time the "
        "steps, then train baseline and random-LTD on paired seeds (`basis`) and compare their "
        "held-out losses with a noise band. convergence and both (earlier names) are quality "
        "on the equal_layer_tokens basis. profile: measure the device into a device profile "
        "(`ltd profile`) that the API stores.",
    )
    num_layers: int | None = Field(
        None, ge=3, le=1000, description="Layers to build; default: the plan's, scaled to fit."
    )
    micro_batch_size: int | None = Field(None, ge=1, le=4096, description="Sequences per step.")
    reserved_lengths: list[Length] | None = Field(
        None,
        min_length=2,
        max_length=32,
        description="Reserved lengths to time; default 5 points from min_value to S.",
    )
    warmup_steps: int = Field(3, ge=0, le=1000, description="Untimed steps per length.")
    measure_steps: int = Field(5, ge=1, le=10000, description="Timed steps per length.")
    train_steps: int = Field(
        60,
        ge=1,
        le=1_000_000,
        description="Quality: the baseline's optimizer steps a run (random-LTD's follow from "
        "`basis`).",
    )
    dataset: str = Field(
        "stdlib", max_length=255, description="'stdlib' (Python's own sources) or a file path."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds data, init and token drops.")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="Where to run.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: bfloat16 autocast on CUDA, float32 on the CPU."
    )
    max_minutes: float = Field(
        10.0,
        gt=0,
        le=24 * 60,
        description="Hard cap on the job's minutes; the job is scaled down only where the "
        "step-time model predicts it would not fit.",
    )
    implementation: Literal["native", "hf", "auto"] = Field(
        "native",
        description="native: the project's own blocks (worker/model.py), whose kernels the "
        "step-time model counts; hf: the plan's model built with Hugging Face Transformers "
        "(GPT-2, Llama-family and BERT shapes; the hf extra); auto: hf where the shape and "
        "the installed packages allow, else native.",
    )
    seeds: int = Field(
        3, ge=2, le=50, description="Quality: paired seeds (each pair shares init and data)."
    )
    basis: Literal["equal_time", "equal_layer_tokens"] = Field(
        "equal_time",
        description="Quality: each run gets the same time on this device (step counts from the "
        "measured step times), or the same LayerTokens (the paper's basis).",
    )
    batch_size: int = Field(
        8,
        ge=8,
        le=65_536,
        description="Quality: sequences per optimizer step, accumulated over micro-batches "
        "where memory needs it.",
    )
    eval_points: int = Field(
        5, ge=1, le=100, description="Quality: evaluations along each run (the last at its end)."
    )
    eval_batches: int = Field(
        16, ge=1, le=10_000, description="Quality: held-out batches (of batch_size) per evaluation."
    )

    @model_validator(mode="before")
    @classmethod
    def _earlier_modes(cls, data: Any) -> Any:
        """`convergence` and `both` (earlier versions' modes) are quality jobs on the paper's
        basis, equal LayerTokens (both of them time the steps first)."""
        if isinstance(data, dict) and data.get("mode") in ("convergence", "both"):
            data = {**data, "mode": "quality", "basis": data.get("basis", "equal_layer_tokens")}
        return data


class StepTime(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # NaN is no measurement: refused

    reserved_length: Length
    seqlen: Length | None = Field(
        None, description="Curriculum learning: the sequence length c the step ran at."
    )
    step_time_ms: Ms
    tokens_per_s: Rate
    model_flops_per_s: Rate
    predicted_step_time_ms: Ms | None = Field(
        None, description="The step-time model's T(r) for the very shape measured."
    )
    prediction_error: Signed | None = Field(
        None, description="predicted / measured - 1 (0.05: the model says 5% slower)."
    )


class ConvergenceResult(BaseModel):
    """One seed trained to equal LayerTokens: what jobs of earlier versions reported (they
    still read back); jobs now report `QualityResult`."""

    model_config = ConfigDict(allow_inf_nan=False)  # NaN is no measurement: refused

    layer_tokens: Count = Field(description="LayerTokens both runs were trained to.")
    baseline_steps: Count
    random_ltd_steps: Count
    baseline_eval_loss: Loss
    random_ltd_eval_loss: Loss


class QualityCurve(BaseModel):
    """One run's held-out loss along its training, against the time it was given."""

    model_config = ConfigDict(allow_inf_nan=False)

    run: Literal["baseline", "random_ltd"]
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)]
    steps: list[Count] = Field(max_length=1000, description="Optimizer steps done at each point.")
    seconds: list[Ms] = Field(
        max_length=1000,
        description="The run's time at each point by the measured step times (its time on "
        "this device).",
    )
    eval_loss: list[Loss] = Field(max_length=1000)


class QualityResult(BaseModel):
    """Is the saving worth taking? Baseline and random-LTD on paired seeds (planner.quality)."""

    model_config = ConfigDict(allow_inf_nan=False)

    basis: Literal["equal_time", "equal_layer_tokens"]
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(max_length=100)
    baseline_eval_loss: list[Loss] = Field(max_length=100, description="Final loss, per seed.")
    random_ltd_eval_loss: list[Loss] = Field(max_length=100, description="Final loss, per seed.")
    baseline_steps: Count
    random_ltd_steps: Count
    baseline_seconds: Annotated[float, Field(ge=0, le=1e8)] = Field(
        description="The time the baseline was given (by the measured step times)."
    )
    random_ltd_seconds: Annotated[float, Field(ge=0, le=1e8)]
    baseline_layer_tokens: Count
    random_ltd_layer_tokens: Count
    batch_size: Count = Field(description="Sequences per optimizer step.")
    seq_len: Length
    eval_tokens: Count = Field(description="Held-out tokens each evaluation reads.")
    difference_mean: Signed = Field(
        description="Random-LTD minus baseline, mean over seeds (negative: random-LTD better)."
    )
    difference_ci95: tuple[Signed, Signed] = Field(
        description="95% t-interval of the paired differences, [lo, hi]."
    )
    verdict: Literal["better", "no_detectable_difference", "worse"] = Field(
        description="better: hi < 0; worse: lo > 0; else no_detectable_difference."
    )
    detectable_difference: Annotated[float, Field(ge=0, le=1e6)] = Field(
        description="The smallest difference this job had an 80% chance to call."
    )
    curves: list[QualityCurve] = Field(max_length=200)


class ValidationResult(BaseModel):
    """What a validation job reports back (no NaN or infinity anywhere: refused with a 422)."""

    model_config = ConfigDict(allow_inf_nan=False)

    device: Name
    gpu_name: Name | None
    torch_version: Name
    dtype: Name
    implementation: Name | None = Field(
        None,
        description="What was measured: 'native' (the project's blocks) or 'hf: <class>' "
        "(Hugging Face Transformers); None in profile mode.",
    )
    num_layers: Count | None = Field(
        description="Layers of the model actually measured (L'); None in profile mode."
    )
    num_ltd_layers: Count | None = Field(description="Its dropping layers (L'_ltd).")
    micro_batch_size: Count | None
    seq_len: Length | None
    accumulation_steps: Count = Field(
        1,
        description="Micro-batches per optimizer step (the plan's G / (GPUs x micro-batch)): "
        "step_time_ms is this many forward-backward passes plus one optimizer "
        "update.",
    )
    optimizer_step_ms: Ms | None = Field(
        None, description="Once per optimizer step: gradient clipping and AdamW, milliseconds."
    )
    scaled_down: list[Annotated[str, Field(max_length=2000)]] = Field(
        max_length=100, description="What was made smaller than the plan, and why."
    )
    step_times: list[StepTime] = Field(max_length=1000)
    step_time_fit: list[Signed] | None = Field(
        None,
        max_length=10,
        description="The measured model's step time T'(c, k) = a + b c + e k + d c^2 + f k^2 "
        "as [a, b, e, d, f], milliseconds, in the plan's units of length (k = min(r, c); c = S "
        "without curriculum learning); None: no step timed.",
    )
    measured_wall_clock_saving: Saving | None = Field(
        None, description="The plan's saving from the measured T'(r); None: nothing was timed."
    )
    predicted_wall_clock_saving: Saving | None = Field(
        None,
        description="The same integration over the step-time model's T(r) for the shape "
        "measured: what the model predicted for this measurement.",
    )
    prediction_profile: Name | None = Field(
        None, description="The device profile the prediction used."
    )
    flops_saving: Saving = Field(description="The planner's FLOPs saving for the same schedule.")
    mfu: Annotated[float, Field(ge=0, le=1e3)] | None = Field(
        description="Model FLOPs utilisation of the full-length step."
    )
    peak_memory_bytes: Annotated[int, Field(ge=0, le=10**18)] | None
    gather_scatter_fraction: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="Share of the step spent gathering and scattering tokens."
    )
    convergence: ConvergenceResult | None = None
    quality: QualityResult | None = None
    predicted_job_seconds: Annotated[float, Field(ge=0, le=1e8)] | None = Field(
        None,
        description="The step-time model's prediction of the job's work (timed steps, training, "
        "evaluation) on this device, made before it ran: compare with `seconds`.",
    )
    stopped_early: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Why the job ended before all its work was done (max_minutes)."
    )
    device_profile: DeviceProfile | None = Field(
        None,
        description="A profile of this device measured by the job (mode profile, or the first "
        "job on a device without a cached profile): the API stores it.",
    )
    prediction_device_profile: DeviceProfile | None = Field(
        None,
        description="The profile the step-time model's predictions used (the report "
        "draws the measured shape's T(r) by part with it).",
    )
    seconds: Annotated[float, Field(ge=0, le=1e8)] = Field(
        description="Wall-clock seconds the job took."
    )
