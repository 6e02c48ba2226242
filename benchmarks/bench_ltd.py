"""Random-LTD step time against the planner's FLOPs saving, side by side in one run.

A GPT whose layers dominate (small vocabulary) runs forward and backward on one micro-batch at the
full length S and at a reserved length r (default S/4), timed round-robin after warm-up with the
device synchronised. It reports

- the measured step-time saving 1 - T(r) / T(S) beside the planner's FLOPs saving for that step,
  and their ratio (the issue asks >= 0.85 on a CPU, aims at >= 0.90 on a GPU in bf16);
- the share of the step at r spent sampling, gathering and scattering tokens (asked: <= 3%).

T is a micro-batch's forward and backward, the work the planner's step FLOPs count. The optimizer
update (clipping, AdamW) runs once per global batch, after many micro-batches, so it is timed and
shown apart; `--accumulation K` folds it in as K micro-batches plus one update.

    python benchmarks/bench_ltd.py                                   # CPU, fp32, 8 x 512, S 1024
    python benchmarks/bench_ltd.py --device cuda --dtype bfloat16 --layers 24 --hidden 2048 \\
        --heads 16 --seq 2048 --batch 8

`--check` exits 1 when a threshold is missed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import numpy as np
import torch

from planner.flops import step_flops
from planner.models import ModelShape
from worker import measure
from worker.data import load_corpus
from worker.model import build_model
from worker.train import make_optimizer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=8, help="transformer layers L")
    p.add_argument("--hidden", type=int, default=512, help="hidden size h")
    p.add_argument("--heads", type=int, default=8, help="attention heads")
    p.add_argument("--seq", type=int, default=1024, help="sequence length S (tokens)")
    p.add_argument("--vocab", type=int, default=256, help="vocabulary (bytes: 256)")
    p.add_argument("--batch", type=int, default=1, help="micro-batch (sequences per step)")
    p.add_argument(
        "--accumulation",
        type=int,
        default=0,
        help="micro-batches per optimizer step to fold the update into T (0: none)",
    )
    p.add_argument("--keep", type=float, default=0.25, help="r / S, a fraction")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="autocast dtype (weights and residual stream stay fp32)",
    )
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per length")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per length")
    p.add_argument("--min-ratio", type=float, default=0.85, help="--check: measured/FLOPs")
    p.add_argument("--max-gather-share", type=float, default=0.03, help="--check: share")
    p.add_argument("--check", action="store_true", help="exit 1 if a threshold is missed")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, object]:
    """Time the two lengths and compute the figures (see the module docstring)."""
    device = measure.pick_device(args.device)
    amp_dtype = measure.pick_amp_dtype(device, args.dtype)
    shape = ModelShape(
        name="bench",
        arch="gpt",
        num_layers=args.layers,
        hidden_size=args.hidden,
        num_heads=args.heads,
        vocab_size=args.vocab,
        seq_len=args.seq,
    )
    torch.manual_seed(0)
    model = build_model(shape).to(device).train()
    L_ltd, S = len(model.ltd_layer_ids), args.seq
    r = max(1, round(S * args.keep))
    corpus = load_corpus("stdlib", max_tokens=max(2_000_000, 4 * S))
    inputs, targets = corpus.batch("train", args.batch, S, args.vocab, np.random.default_rng(0))
    batch = (inputs.to(device), targets.to(device))
    fb_full, fb_r = measure.forward_backward_ms(
        model, batch, [S, r], amp_dtype=amp_dtype, warmup=args.warmup, repeats=args.repeats
    )
    opt_ms = measure.optimizer_step_ms(model, make_optimizer(model))
    k = args.accumulation
    t_full, t_r = ((k * t + opt_ms) / k if k else t for t in (fb_full, fb_r))  # per micro-batch
    gs_ms = measure.gather_scatter_ms(
        batch=args.batch,
        seq_len=S,
        reserved_length=r,
        hidden=args.hidden,
        num_ltd_layers=L_ltd,
        device=device,
        dtype=torch.float32,
        repeats=args.repeats,
    )
    f_full, f_r = (
        float(step_flops(shape, reserved=n, rows=args.batch, num_ltd_layers=L_ltd)) for n in (S, r)
    )
    measured, planned = 1 - t_r / t_full, 1 - f_r / f_full
    mfu = measure.mfu(f_full / (t_full / 1e3), device)
    return {
        "device": measure.gpu_name(device)
        or f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "dtype": str(amp_dtype).removeprefix("torch."),
        "shape": {
            "layers": args.layers,
            "ltd_layers": L_ltd,
            "hidden": args.hidden,
            "heads": args.heads,
            "seq": S,
            "vocab": args.vocab,
            "batch": args.batch,
        },
        "reserved_length": r,
        "step_time_ms_full": t_full,
        "step_time_ms_r": t_r,
        "optimizer_step_ms": opt_ms,
        "accumulation": k,
        "tokens_per_s_full": args.batch * S / (t_full / 1e3),
        "model_tflops_per_s_full": f_full / (t_full / 1e3) / 1e12,
        "mfu_full": mfu,
        "measured_saving": measured,
        "flops_saving": planned,
        "ratio": measured / planned,
        "gather_scatter_ms": gs_ms,
        "gather_scatter_share": gs_ms / t_r,
    }


def print_table(res: dict[str, object]) -> None:
    shape = res["shape"]
    print(f"device {res['device']}, torch {res['torch']}, {res['dtype']}; GPT {shape}")
    rows = [
        ("fwd+bwd per micro-batch at r = S", f"{res['step_time_ms_full']:.1f} ms"),
        (
            f"fwd+bwd per micro-batch at r = {res['reserved_length']}",
            f"{res['step_time_ms_r']:.1f} ms",
        ),
        (
            "optimizer update (once per step)" + (" [folded in]" if res["accumulation"] else ""),
            f"{res['optimizer_step_ms']:.1f} ms",
        ),
        ("tokens/s at S", f"{res['tokens_per_s_full']:.0f}"),
        ("model TFLOP/s at S", f"{res['model_tflops_per_s_full']:.3f}"),
        ("MFU at S", "n/a (peak unknown)" if res["mfu_full"] is None else f"{res['mfu_full']:.1%}"),
        ("measured step-time saving", f"{res['measured_saving']:.1%}"),
        ("planner FLOPs saving (same step)", f"{res['flops_saving']:.1%}"),
        ("ratio measured / FLOPs", f"{res['ratio']:.3f}"),
        ("gather + scatter (fwd + bwd)", f"{res['gather_scatter_ms']:.2f} ms"),
        ("gather + scatter share of step at r", f"{res['gather_scatter_share']:.2%}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>20}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    ok = res["ratio"] >= args.min_ratio and res["gather_scatter_share"] <= args.max_gather_share
    if args.check and not ok:
        print(
            f"FAILED: ratio >= {args.min_ratio} and share <= {args.max_gather_share} asked",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
