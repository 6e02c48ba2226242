"""The `ltd` command line: outputs, exit codes, and bad input of every kind."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ltd.cli import main
from planner.recipes import RECIPES

GPT = ["--model", "gpt3-1.3b", "--train-batch-size", "512", "--train-tokens", "300B"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_json_has_the_public_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "plan",
        *GPT,
        "--ltd-train-tokens",
        "200e9",
        "--require-steps",
        "133333",
        "--format",
        "json",
    )
    assert code == 0
    doc = json.loads(out)
    for run_name in ("baseline", "random_ltd"):
        for field in (
            "steps",
            "tokens",
            "layer_tokens",
            "effective_tokens",
            "flops",
            "wall_clock_hours",
            "gpu_hours",
        ):
            assert field in doc[run_name]
    assert doc["baseline"]["steps"] == 286_103
    assert abs(doc["savings"]["layer_tokens"] - 0.333) < 0.001
    assert doc["schedule"][0] == [0, 128] and doc["schedule"][-1][1] == 2048
    assert "n*n" in doc["conventions"]["causal_attention"]


def test_plan_formats(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", *GPT, "--format", "markdown")
    assert code == 0 and "| LayerTokens |" in out
    code, out, _ = run(capsys, "plan", *GPT, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["figure"] for r in rows} >= {"steps", "layer_tokens", "flops", "gpu_hours"}
    code, out, _ = run(capsys, "plan", *GPT)
    assert code == 0 and "286,103" in out


def test_schedule_csv_one_row_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "schedule",
        "--model",
        "gpt3-125m",
        "--train-batch-size",
        "4",
        "--train-steps",
        "50",
        "--require-steps",
        "20",
        "--peak-lr",
        "1e-3",
        "--decay-tokens",
        "400000",
        "--warmup-tokens",
        "10000",
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [
        "step",
        "reserved_length",
        "layer_tokens",
        "cumulative_layer_tokens",
        "effective_tokens",
        "cumulative_effective_tokens",
        "lr",
    ]
    assert [int(r["step"]) for r in rows] == list(range(50))
    total = 0
    for r in rows:  # cumulative columns are running sums; LayerTokens per DeepSpeed
        total += int(r["layer_tokens"])
        assert int(r["cumulative_layer_tokens"]) == total
        assert int(r["layer_tokens"]) == 4 * (int(r["reserved_length"]) * 10 + 2048 * 2)
    assert float(rows[0]["lr"]) == 0.0  # warmup starts from a zero counter
    code, out, _ = run(
        capsys,
        "schedule",
        "--model",
        "gpt3-125m",
        "--train-batch-size",
        "4",
        "--train-steps",
        "50",
        "--every",
        "10",
    )
    assert [int(r["step"]) for r in csv.DictReader(io.StringIO(out))] == [0, 10, 20, 30, 40]


def test_check_passes_and_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "check", *GPT, "--max-gpu-hours", "1e9", "--format", "markdown")
    assert code == 0 and "PASSED" in out
    code, out, _ = run(capsys, "check", *GPT, "--max-gpu-hours", "10", "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["passed"] is False
    assert doc["violations"][0]["limit"] == "max_gpu_hours"
    assert doc["violations"][0]["actual"] > 10
    limits = tmp_path / "limits.toml"
    limits.write_text("[limits]\nmin_flops_saving = 0.9\n")
    code, _, _ = run(capsys, "check", *GPT, "--limits", str(limits))
    assert code == 1


BAD_INPUT = [
    (["plan", "--model", "gpt3-13m", *GPT[2:]], "model", "gpt3-13b"),
    (["plan", *GPT[:4], "--train-tokens", "-5"], "train_tokens", None),
    (["plan", *GPT[:4], "--train-tokens", "1e18"], "train_tokens", None),
    (["plan", *GPT, "--min-value", "4096"], "min_value", None),
    (["plan", *GPT, "--seq-per-step", "0"], "seq_per_step", None),
    (["plan", *GPT, "--require-steps", "0"], "require_steps", None),
    (["plan", *GPT, "--layer-ids", "0,5,24"], "layer_ids", "out of range"),
    (["plan", *GPT, "--mfu", "nan"], "--mfu", None),
    (["plan", *GPT, "--mfu", "1.5"], "mfu", None),
    (["plan", *GPT, "--price-per-gpu-hour", "inf"], "--price-per-gpu-hour", None),
    (["plan", *GPT, "--gpu", "h100sxm"], "gpu", "h100-sxm"),
    (["plan", "--model", "gpt3-1.3b", "--train-tokens", "1B"], "train_batch_size", None),
    (["plan", *GPT, "--train-steps", "10"], "train_tokens", None),
    (["plan", *GPT, "--deepspeed-config", "/nonexistent.json"], "--deepspeed-config", None),
    (["check", *GPT, "--min-flops-saving", "2"], "min_flops_saving", None),
    (["schedule", *GPT, "--every", "0"], "--every", None),
]


@pytest.mark.parametrize("argv, field, hint", BAD_INPUT)
def test_bad_input_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], argv: list[str], field: str, hint: str | None
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own type errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert field in err
    assert "Traceback" not in err
    if hint:
        assert hint in err


def test_bad_deepspeed_json_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "ds.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, "plan", *GPT, "--deepspeed-config", str(bad))
    assert code == 2 and "--deepspeed-config" in err


def test_entry_point_runs_without_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ltd",
            "plan",
            "--model",
            "nope",
            "--train-steps",
            "1",
            "--train-batch-size",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "model: unknown model preset 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_models_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--format", "json")
    assert code == 0 and "llama-3-8b" in json.loads(out)


def test_check_compare_fails_on_growth(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    assert main(["plan", *GPT, "--num-gpus", "64", "--format", "json", "-o", str(old)]) == 0
    capsys.readouterr()
    # The same run on 10% more tokens: GPU-hours grow by ~10%, over a 5% allowance.
    code, out, _ = run(
        capsys,
        "check",
        "--model",
        "gpt3-1.3b",
        "--train-batch-size",
        "512",
        "--train-tokens",
        "330B",
        "--num-gpus",
        "64",
        "--compare",
        str(old),
        "--max-growth",
        "0.05",
        "--format",
        "markdown",
    )
    assert code == 1
    assert "| max_growth.gpu_hours |" in out
    assert "**Change against p_" in out and "| gpu_hours |" in out and "+10.00%" in out
    # Within a 15% allowance it passes, still printing the diff.
    code, out, _ = run(
        capsys,
        "check",
        "--model",
        "gpt3-1.3b",
        "--train-batch-size",
        "512",
        "--train-tokens",
        "330B",
        "--num-gpus",
        "64",
        "--compare",
        str(old),
        "--max-growth",
        "0.15",
        "--format",
        "markdown",
    )
    assert code == 0 and "| gpu_hours |" in out


def test_export_deepspeed_reads_back_to_the_same_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ds = tmp_path / "ds.json"
    code, out, _ = run(
        capsys,
        "plan",
        *GPT,
        "--require-steps",
        "133333",
        "--format",
        "json",
        "--export-deepspeed",
        str(ds),
    )
    assert code == 0
    block = json.loads(ds.read_text())
    ltd = block["data_efficiency"]["data_routing"]["random_ltd"]
    assert block["train_batch_size"] == 512 and ltd["random_ltd_layer_id"] == list(range(1, 23))
    assert ltd["random_ltd_schedule"]["schedule_config"] == {
        "require_steps": 133333,
        "seq_per_step": 16,
    }
    code, again, _ = run(
        capsys,
        "plan",
        "--model",
        "gpt3-1.3b",
        "--train-tokens",
        "300B",
        "--deepspeed-config",
        str(ds),
        "--format",
        "json",
    )
    assert code == 0 and json.loads(again)["id"] == json.loads(out)["id"]


@pytest.mark.slow
def test_profile_then_plan_with_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    assert main(["profile", "--device", "cpu", "-o", str(out)]) == 0
    profile = json.loads(out.read_text())
    assert profile["device_name"] == "cpu" and profile["torch_version"]
    capsys.readouterr()
    args = ["plan", "--model", "gpt2", "--train-batch-size", "8", "--train-steps", "100",
            "--num-gpus", "1", "--micro-batch-size", "8", "--format", "json"]  # fmt: skip
    code, text, _ = run(capsys, *args, "--device-profile", str(out))
    assert code == 0
    plan = json.loads(text)
    assert plan["projection"]["device_profile"].startswith("cpu (float32)")
    assert plan["hardware"]["device_profile"]["device_name"] == "cpu"
    code, _, err = run(capsys, *args, "--device-profile", str(tmp_path / "none.json"))
    assert code == 2 and "--device-profile" in err


def test_composed_schedule_csv_has_the_curriculum_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text, _ = run(capsys, "schedule", "--recipe", "gpt3-1.3b-cl-ltd-300b", "--every", "5000")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[-3:] == ["lr", "curriculum_seqlen", "dropping"]
    assert rows[0]["curriculum_seqlen"] == "80" and rows[0]["dropping"] == "0"  # c 80 < r 128
    assert rows[0]["reserved_length"] == "128"
    late = rows[-1]  # both ramps done: full sequences, nothing dropped
    assert late["curriculum_seqlen"] == "2048" and late["dropping"] == "0"
    # layer_tokens are the actual ones: G x (c (L - L_ltd) + min(r, c) L_ltd) = 512 x 80 x 24
    assert int(rows[0]["layer_tokens"]) == 512 * 80 * 24
    assert int(rows[0]["effective_tokens"]) == 512 * 80


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_plans(capsys: pytest.CaptureFixture[str], recipe: str) -> None:
    code, text, _ = run(capsys, "plan", "--recipe", recipe, "--format", "json")
    assert code == 0
    p = json.loads(text)
    assert p["curriculum"]["config"]["metric"] == "seqlen_truncate"
    assert p["curriculum"]["reorder_metrics"] == ["voc"]
    assert p["random_ltd"]["effective_tokens"] >= p["ltd_target"]


def test_bad_curriculum_flags_exit_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", *GPT, "--min-difficulty", "80", "--max-difficulty", "2048",
                       "--total-curriculum-step", "0", "--difficulty-step", "8")  # fmt: skip
    assert code == 2 and "curriculum.schedule_config" in err and "total_curriculum_step" in err
    code, _, err = run(capsys, "plan", *GPT, "--min-difficulty", "80", "--max-difficulty", "4096",
                       "--total-curriculum-step", "100", "--difficulty-step", "8")  # fmt: skip
    assert code == 2 and "curriculum.max_difficulty" in err


def _spellings() -> list[tuple[str, int | None]]:
    """Token spellings and their exact values, by integer arithmetic on the digits (None: the
    spelling denotes no whole number)."""
    table: list[tuple[str, int | None]] = []
    for n in range(0, 1000, 37):
        for d in range(10):
            table.append((f"{n}.{d}K", n * 10**3 + d * 10**2))
            table.append((f"{n}.{d}B", n * 10**9 + d * 10**8))
            table.append((f"{n}.{d}T", n * 10**12 + d * 10**11))
            table.append((f"{n}.{d:02d}M", n * 10**6 + d * 10**4))
            table.append((f"{n}.{d}", n if d == 0 else None))
        for e in range(0, 19, 3):
            table.append((f"{n}e{e}", n * 10**e))
    table += [("8.2B", 8_200_000_000), ("9007199254740993", 2**53 + 1), ("1.25K", 1250),
              ("1.2345K", None), ("0.5", None), ("12x", None)]  # fmt: skip
    return table


def test_every_token_spelling_parses_exactly_or_is_refused() -> None:
    import argparse

    from ltd.flags import count

    for text, expected in _spellings():
        if expected is None:
            with pytest.raises(argparse.ArgumentTypeError):
                count(text)
        else:
            assert count(text) == expected, text


@pytest.mark.parametrize("spelling", ["8.2B", "1.5", "2**53"])
def test_token_flags_exit_2_naming_the_flag_or_plan(
    capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    try:
        code = main(["plan", "--model", "gpt3-125m", "--train-batch-size", "8",
                     "--train-tokens", spelling])  # fmt: skip
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    if spelling == "8.2B":
        assert code == 0
    else:
        assert code == 2 and "--train-tokens" in err and "Traceback" not in err
