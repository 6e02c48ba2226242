"""The plan's figures: a real PNG, and an inline SVG for the report page with the panels that have
something to show (a learning rate, a job's measurements, a quality comparison)."""

from pathlib import Path

import pytest

from ltd.cli import main

REQ = [
    "--model",
    "gpt3-125m",
    "--train-batch-size",
    "64",
    "--train-steps",
    "3000",
    "--require-steps",
    "1500",
    "--peak-lr",
    "6e-4",
    "--decay-tokens",
    "300M",
    "--price-per-gpu-hour",
    "2",
]


def test_plot_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.png"
    assert main(["plan", *REQ, "--plot", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_svg_has_its_panels() -> None:
    from planner import build_runs, parse_request, resolve
    from planner.document import plan_from_runs
    from present.figures import plan_svg

    runs = build_runs(
        resolve(
            parse_request(
                {
                    "model": "gpt3-125m",
                    "train_batch_size": 64,
                    "train_steps": 3000,
                    "lr": {"peak_lr": 6e-4, "decay_tokens": 300_000_000},
                }
            )
        )
    )
    svg = plan_svg(plan_from_runs(runs), runs)
    assert svg.startswith("<svg")
    assert 'href="http' not in svg and "url(http" not in svg  # nothing fetched from outside
    for title in (
        "Reserved length",
        "Learning rate against LayerTokens",
        "Cumulative compute",
        "Cost side by side",
        "Step time by part: the plan's step on a100 (bfloat16)",
    ):
        assert title in svg
    for part in ("matmuls", "attention core", "memory-bound work", "gather/scatter", "launches",
                 "optimizer", "all-reduce"):  # fmt: skip
        assert part in svg
    assert plan_svg(plan_from_runs(runs), runs) == svg  # the same bytes every time


def _plan_and_runs(**request: object):  # type: ignore[no-untyped-def]
    from planner import build_runs, parse_request, resolve
    from planner.document import plan_from_runs

    body = {"model": "gpt3-125m", "train_batch_size": 64, "train_steps": 3000, **request}
    runs = build_runs(resolve(parse_request(body)))
    return plan_from_runs(runs), runs


def test_no_empty_panel_without_a_learning_rate() -> None:
    from present.figures import plan_svg

    svg = plan_svg(*_plan_and_runs())
    assert "Learning rate" not in svg and "no learning-rate schedule" not in svg
    assert "Step time by part" in svg


def test_a_quality_result_draws_its_curves_and_verdict() -> None:
    from planner.validation import ValidationResult
    from present.figures import plan_svg
    from tests.factories import validation_result

    p, runs = _plan_and_runs()
    curves = [
        {"run": run, "seed": seed, "steps": [10, 20], "seconds": [1.0, 2.0],
         "eval_loss": [3.0 + d + 0.01 * seed, 2.5 + d + 0.01 * seed]}
        for run, d in (("baseline", 0.0), ("random_ltd", -0.02)) for seed in (0, 1, 2)
    ]  # fmt: skip
    quality = {
        "basis": "equal_time", "seeds": [0, 1, 2], "baseline_eval_loss": [2.5, 2.51, 2.52],
        "random_ltd_eval_loss": [2.48, 2.49, 2.50], "baseline_steps": 20,
        "random_ltd_steps": 26, "baseline_seconds": 2.0, "random_ltd_seconds": 2.0,
        "baseline_layer_tokens": 1, "random_ltd_layer_tokens": 1, "batch_size": 8,
        "seq_len": 256, "eval_tokens": 32768, "difference_mean": -0.02,
        "difference_ci95": [-0.03, -0.01], "verdict": "better", "detectable_difference": 0.005,
        "curves": curves,
    }  # fmt: skip
    result = ValidationResult.model_validate(validation_result(quality=quality))
    svg = plan_svg(p, runs, result)
    assert "Quality (equal time): random-LTD better, difference -0.0200 [-0.0300, -0.0100]" in svg
    assert "seconds of training" in svg and "held-out loss" in svg
