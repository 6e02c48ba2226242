"""Random-LTD on a Hugging Face Transformers Llama: step time against the planner's FLOPs saving.

A `transformers.LlamaForCausalLM` (rotary positions, grouped key/value heads, SwiGLU; random
weights, fp32, sdpa attention) with `worker.hf.apply_random_ltd` runs one micro-batch's forward
and backward (the loss over the full sequence) at the full length S and at a reserved length r
(default S/4) in its dropping layers. The two lengths alternate round by round (S then r, then r
then S, ...) after warm-up, the device synchronised around each step, so drift in the machine's
speed falls on both. It reports, as `benchmarks/bench_ltd.py` does for the project's own model,

    ratio = (1 - T(r) / T(S)) / (1 - F(r) / F(S))

the measured step-time saving as a share of the planner's FLOPs saving for the same step
(`planner.flops.step_flops`: full layers at S, dropping layers at r, the head at S). T is the
fastest round of each length: on a shared machine other processes only ever add time, so the
minimum is the figure least disturbed by them (Python's `timeit` takes it for that reason). Beside
it, as the noise figure: the range of each round's own ratio (its T(S) and T(r), run back to back)
over the quiet rounds (both times within 10% of the fastest), over all rounds, and the ratio from
the median times.

The default shape is one where matrix multiplies dominate the step, so that the FLOPs saving is
the right yardstick: hidden 512 and SwiGLU 1536 with batch 4 x S 1024 give every projection
4096 rows at S and still 1024 at r = S/4, enough for the CPU's GEMMs to stay near their
rate; a 256-token vocabulary keeps the head, which always runs at S, small; at S 1024 attention
is a third of a layer's FLOPs (n / 6h), enough to show the quadratic term's saving without
turning the step into a softmax benchmark; 8 layers, 6 of them dropping (the paper's: all but
the first and last).

    python benchmarks/bench_hf.py                       # CPU, fp32, 8 x 512, S 1024, batch 4
    python benchmarks/bench_hf.py --device cuda --hidden 2048 --heads 16 --kv-heads 4 \\
        --ffn 5632 --seq 2048 --batch 8

`--check` exits 1 when the ratio is under `--min-ratio` (0.85).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from planner import Plan, plan
from planner.flops import step_flops
from worker import measure
from worker.hf import apply_random_ltd, dropping_layers, set_reserved_length

QUIET = 1.10  # a round is quiet when both its times are within 10% of the fastest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=8, help="transformer layers L")
    p.add_argument("--hidden", type=int, default=512, help="hidden size h")
    p.add_argument("--heads", type=int, default=8, help="attention (query) heads")
    p.add_argument("--kv-heads", type=int, default=2, help="key/value heads (grouped query)")
    p.add_argument("--ffn", type=int, default=1536, help="SwiGLU intermediate size")
    p.add_argument("--seq", type=int, default=1024, help="sequence length S (tokens)")
    p.add_argument("--vocab", type=int, default=256, help="vocabulary size")
    p.add_argument("--batch", type=int, default=4, help="micro-batch (sequences per step)")
    p.add_argument("--keep", type=float, default=0.25, help="r / S, a fraction")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per length")
    p.add_argument("--repeats", type=int, default=12, help="timed rounds (one step per length)")
    p.add_argument("--min-ratio", type=float, default=0.85, help="--check: measured/FLOPs")
    p.add_argument("--check", action="store_true", help="exit 1 if the ratio is under it")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args(argv)


def build(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, Plan]:
    """The model, random-LTD applied as a plan for its own config.json, and that plan."""
    config = LlamaConfig(
        hidden_size=args.hidden,
        intermediate_size=args.ffn,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        vocab_size=args.vocab,
        max_position_embeddings=args.seq,
        use_cache=False,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model = model.to(device).train()
    p = plan(
        {
            "model": json.loads(config.to_json_string()),
            "train_batch_size": args.batch,
            "train_steps": 1,
            "random_ltd": {"min_value": 16, "seq_per_step": 16, "require_steps": 100},
        }
    )
    apply_random_ltd(model, p)
    return model, p


def time_steps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    lengths: tuple[int, int],
    *,
    warmup: int,
    repeats: int,
    device: torch.device,
) -> list[tuple[float, float]]:
    """Milliseconds of one forward and backward at each of the two reserved lengths, per
    round; rounds alternate which length runs first."""

    def step(r: int) -> float:
        set_reserved_length(model, r)
        model.zero_grad(set_to_none=True)
        measure.synchronize(device)
        start = time.perf_counter()
        model(input_ids=input_ids, labels=input_ids).loss.backward()
        measure.synchronize(device)
        return (time.perf_counter() - start) * 1e3

    for _ in range(warmup):
        for r in lengths:
            step(r)
    rounds = []
    for i in range(repeats):
        order = lengths if i % 2 == 0 else lengths[::-1]
        t = {r: step(r) for r in order}
        rounds.append((t[lengths[0]], t[lengths[1]]))
    return rounds


def run(args: argparse.Namespace) -> dict[str, object]:
    """Time the two lengths and compute the figures (module docstring)."""
    device = measure.pick_device(args.device)
    model, p = build(args, device)
    S = args.seq
    r = max(1, round(S * args.keep))
    L_ltd = len(dropping_layers(model))
    input_ids = torch.randint(
        args.vocab, (args.batch, S), generator=torch.Generator().manual_seed(0)
    ).to(device)
    rounds = time_steps(
        model, input_ids, (S, r), warmup=args.warmup, repeats=args.repeats, device=device
    )
    f_full, f_r = (
        float(step_flops(p.model, reserved=n, rows=args.batch, num_ltd_layers=L_ltd))
        for n in (S, r)
    )
    planned = 1 - f_r / f_full
    t_full, t_r = min(t for t, _ in rounds), min(t for _, t in rounds)
    med_full = statistics.median(t for t, _ in rounds)
    med_r = statistics.median(t for _, t in rounds)
    measured = 1 - t_r / t_full
    round_ratios = [(1 - tr / ts) / planned for ts, tr in rounds]
    quiet_ratios = [
        (1 - tr / ts) / planned for ts, tr in rounds if ts <= QUIET * t_full and tr <= QUIET * t_r
    ]
    return {
        "device": measure.gpu_name(device)
        or f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "dtype": "float32",
        "shape": {
            "layers": args.layers,
            "ltd_layers": L_ltd,
            "hidden": args.hidden,
            "heads": args.heads,
            "kv_heads": args.kv_heads,
            "ffn": args.ffn,
            "seq": S,
            "vocab": args.vocab,
            "batch": args.batch,
        },
        "reserved_length": r,
        "repeats": args.repeats,
        "step_time_ms_full": t_full,
        "step_time_ms_r": t_r,
        "median_step_time_ms_full": med_full,
        "median_step_time_ms_r": med_r,
        "step_times_ms": rounds,
        "model_tflops_per_s_full": f_full / (t_full / 1e3) / 1e12,
        "measured_saving": measured,
        "flops_saving": planned,
        "ratio": measured / planned,
        "ratio_of_medians": (1 - med_r / med_full) / planned,
        "round_ratio_min": min(round_ratios),
        "round_ratio_max": max(round_ratios),
        "round_ratio_stdev": statistics.stdev(round_ratios) if len(round_ratios) > 1 else 0.0,
        "quiet_rounds": len(quiet_ratios),
        "quiet_ratio_min": min(quiet_ratios, default=None),
        "quiet_ratio_max": max(quiet_ratios, default=None),
    }


def print_table(res: dict[str, object]) -> None:
    print(
        f"device {res['device']}, torch {res['torch']}, transformers {res['transformers']}, "
        f"{res['dtype']}; LlamaForCausalLM {res['shape']}"
    )
    r = res["reserved_length"]
    rows = [
        ("fwd+bwd at r = S (fastest)", f"{res['step_time_ms_full']:.1f} ms"),
        (f"fwd+bwd at r = {r} (fastest)", f"{res['step_time_ms_r']:.1f} ms"),
        (
            f"medians at S and at {r}",
            f"{res['median_step_time_ms_full']:.0f} / {res['median_step_time_ms_r']:.0f} ms",
        ),
        ("model TFLOP/s at S", f"{res['model_tflops_per_s_full']:.3f}"),
        ("measured step-time saving", f"{res['measured_saving']:.1%}"),
        ("planner FLOPs saving (same step)", f"{res['flops_saving']:.1%}"),
        ("ratio measured / FLOPs", f"{res['ratio']:.3f}"),
        ("ratio from the medians", f"{res['ratio_of_medians']:.3f}"),
        (
            f"each quiet round's ratio ({res['quiet_rounds']} rounds)",
            "none quiet"
            if res["quiet_ratio_min"] is None
            else f"{res['quiet_ratio_min']:.3f}-{res['quiet_ratio_max']:.3f}",
        ),
        (
            f"each round's ratio, {res['repeats']} rounds",
            f"{res['round_ratio_min']:.3f}-{res['round_ratio_max']:.3f}, "
            f"sd {res['round_ratio_stdev']:.3f}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>24}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    if args.check and res["ratio"] < args.min_ratio:  # type: ignore[operator]
        print(f"FAILED: ratio >= {args.min_ratio} asked", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
