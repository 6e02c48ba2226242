"""`run_validation` end to end on a tiny plan, on the CPU."""

from __future__ import annotations

import pytest

from planner import plan
from planner.sizing import default_reserved_lengths, size_job
from planner.validation import ValidationResult, ValidationSettings
from tests.factories import tiny_plan_request
from worker.validate import run_validation


def tiny_plan():
    return plan(tiny_plan_request())


def test_default_lengths_span_the_schedule() -> None:
    p = tiny_plan()
    lengths = default_reserved_lengths(p.random_ltd_config, 64)
    assert lengths[0] == p.random_ltd_config.min_value and lengths[-1] == 64
    assert len(lengths) == 5 and lengths == sorted(lengths)


def test_size_job_keeps_the_plans_model_where_the_step_time_model_says_it_fits() -> None:
    from planner.calibration import runs_for_plan
    from planner.device import builtin_profile

    p = plan({"model": "gpt2", "train_batch_size": 8, "train_steps": 100,
              "hardware": {"num_gpus": 1, "micro_batch_size": 8}})  # fmt: skip
    runs, a100 = runs_for_plan(p), builtin_profile("a100")
    settings = ValidationSettings()
    full = size_job(p.model, runs, settings, plan_micro_batch_size=8, budget_s=540,
                    memory_bytes=2**40, profile=a100)  # fmt: skip
    assert (full.num_layers, full.seq_len, full.micro_batch_size) == (12, 1024, 8)
    assert full.scaled_down == () and full.predicted_seconds > 0
    # By hand: 5 lengths x 8 timed micro-batches of T(r) each, plus 4 optimizer updates.
    from planner.sizing import measured_points, plan_points, predict_job_s

    parts = predict_job_s(p.model, 10, 8, measured_points(plan_points(runs, settings), 1024,
                                                           1024), settings, a100)  # fmt: skip
    assert full.predicted_seconds == pytest.approx(parts["timing"])
    third = full.predicted_seconds / 3
    tight = size_job(p.model, runs, settings, plan_micro_batch_size=8, budget_s=third,
                     memory_bytes=2**40, profile=a100)  # fmt: skip
    assert tight.num_layers < 12 and any("num_layers 12 -> 6" in s for s in tight.scaled_down)
    assert tight.predicted_seconds <= third
    kept = size_job(p.model, runs, ValidationSettings(num_layers=5), plan_micro_batch_size=8,
                    budget_s=0.001, memory_bytes=2**40, profile=a100)  # fmt: skip
    assert kept.num_layers == 5  # a size the user set is kept


@pytest.mark.slow
def test_run_validation_end_to_end_tiny_plan() -> None:
    calls: list[tuple[float, str]] = []
    settings = ValidationSettings(
        mode="both", warmup_steps=1, measure_steps=2, train_steps=8, seeds=2, eval_points=2,
        eval_batches=2, device="cpu",
    )  # fmt: skip
    result = run_validation(tiny_plan(), settings, progress=lambda f, m: calls.append((f, m)))
    assert isinstance(result, ValidationResult)
    ValidationResult.model_validate_json(result.model_dump_json())
    assert result.device == "cpu" and result.mfu is None and result.gpu_name is None
    assert result.num_layers == 4 and result.num_ltd_layers == 2 and result.seq_len == 64
    assert [t.reserved_length for t in result.step_times][-1] == 64
    assert len(result.step_times) == 5 and all(t.step_time_ms > 0 for t in result.step_times)
    assert result.measured_wall_clock_saving is not None
    assert -1.0 < result.measured_wall_clock_saving < 1.0
    # The step-time model's prediction for the very shape measured, beside each measurement.
    for t in result.step_times:
        assert t.predicted_step_time_ms is not None and t.predicted_step_time_ms > 0
        assert t.prediction_error == pytest.approx(t.predicted_step_time_ms / t.step_time_ms - 1)
    assert result.predicted_wall_clock_saving is not None
    assert -1.0 < result.predicted_wall_clock_saving < 1.0
    assert result.prediction_profile is not None and result.prediction_profile.startswith("cpu")
    assert result.flops_saving == pytest.approx(tiny_plan().savings.flops)
    assert result.gather_scatter_fraction is not None and result.gather_scatter_fraction >= 0
    assert result.peak_memory_bytes and result.peak_memory_bytes > 0
    assert result.predicted_job_seconds is not None and result.predicted_job_seconds > 0
    q = result.quality  # "both": quality at equal LayerTokens
    assert q is not None and q.basis == "equal_layer_tokens" and q.seeds == [0, 1]
    assert q.random_ltd_steps >= q.baseline_steps == 8
    assert q.random_ltd_layer_tokens >= q.baseline_layer_tokens
    assert all(loss > 0 for loss in q.baseline_eval_loss + q.random_ltd_eval_loss)
    fractions = [f for f, _ in calls]
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)
    assert fractions[-1] == 1.0


@pytest.mark.slow
def test_profile_mode_measures_the_device_and_builds_no_model() -> None:
    result = run_validation(tiny_plan(), ValidationSettings(mode="profile", device="cpu"))
    profile = result.device_profile
    assert profile is not None and profile.device_name == "cpu" and profile.dtype == "float32"
    assert profile.torch_version == result.torch_version and not profile.async_launch
    assert all(v > 0 for row in profile.matmul_tflops for v in row)
    assert profile.launch_overhead_us > 0 and profile.memory_gbps and profile.memory_gbps > 0
    assert result.num_layers is None and result.step_times == []
    assert result.measured_wall_clock_saving is None  # nothing for a calibration to use


@pytest.mark.slow
def test_a_composed_plan_is_timed_at_the_c_r_pairs_its_schedule_visits() -> None:
    """Curriculum learning composed with random-LTD: the job cuts sequences to c, times the
    (c, r) pairs of the schedule, fits T(c, min(r, c)) and sums it over the schedule."""
    composed = plan(tiny_plan_request(
        random_ltd={"min_value": 16, "seq_per_step": 8, "require_steps": 150},
        curriculum={"min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
                    "schedule_config": {"total_curriculum_step": 100, "difficulty_step": 8}},
    ))  # fmt: skip
    settings = ValidationSettings(warmup_steps=1, measure_steps=2, device="cpu")
    result = run_validation(composed, settings)
    pairs = [(t.seqlen, t.reserved_length) for t in result.step_times]
    assert (64, 64) in pairs and all(c is not None and 1 <= c <= 64 for c, _ in pairs)
    assert any(c is not None and c < 64 for c, _ in pairs)  # short sequences were timed
    assert result.step_time_fit is not None and len(result.step_time_fit) == 5
    assert result.measured_wall_clock_saving is not None
    assert -1.0 < result.measured_wall_clock_saving < 1.0
    assert result.predicted_wall_clock_saving is not None
    assert all(t.predicted_step_time_ms for t in result.step_times)


@pytest.mark.slow
def test_quality_trains_the_composed_schedule_with_sequences_cut_to_c() -> None:
    from planner.sizing import scaled_curriculum

    composed = plan(tiny_plan_request(
        random_ltd={"min_value": 16, "seq_per_step": 8, "require_steps": 150},
        curriculum={"min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
                    "schedule_config": {"total_curriculum_step": 100, "difficulty_step": 8}},
    ))  # fmt: skip
    cl = scaled_curriculum(composed, seq_len=64, num_steps=8)
    assert cl is not None and cl.max_difficulty == 64
    assert cl.schedule_config.total_curriculum_step == max(1, round(100 * 8 / 200))
    settings = ValidationSettings(
        mode="convergence", train_steps=8, seeds=2, eval_points=1, eval_batches=2,
        warmup_steps=0, measure_steps=1, device="cpu",
    )  # fmt: skip
    result = run_validation(composed, settings)
    q = result.quality
    assert q is not None and all(loss > 0 for loss in q.baseline_eval_loss)
    # Shorter sequences early: the composed run needs more steps for equal LayerTokens.
    assert q.random_ltd_steps > q.baseline_steps
