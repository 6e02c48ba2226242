"""The plan's figures: a real PNG with four panels, and an inline SVG for the report page."""

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


def test_svg_has_the_four_panels() -> None:
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
    ):
        assert title in svg
