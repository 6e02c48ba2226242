"""Where a training step's time goes, at a reserved length r and at the full length S.

    python benchmarks/profile_step.py --device cuda --dtype bfloat16 --layers 12 --hidden 2048 \\
        --heads 16 --seq 2048 --vocab 50257 --batch 4 --keep 0.0625

Profiles forward + backward of one micro-batch with torch.profiler after warm-up and prints the
operators that take the most device time (CPU time on a CPU), for r and for S, side by side with
the planner's FLOPs for the same step. For finding what a step at small r spends beyond its FLOPs.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from planner.flops import step_flops
from planner.models import ModelShape
from worker import measure
from worker.model import build_model
from worker.train import autocast, loss_fn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--keep", type=float, default=0.0625, help="r / S")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--rows", type=int, default=25)
    a = p.parse_args()
    device = measure.pick_device(a.device)
    amp = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    shape = ModelShape(
        num_layers=a.layers,
        hidden_size=a.hidden,
        num_heads=a.heads,
        vocab_size=a.vocab,
        seq_len=a.seq,
    )
    model = build_model(shape).to(device).train()
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device=device)
    r = max(1, int(a.seq * a.keep))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sorts = (
        ["self_device_time_total", "self_cuda_time_total"]
        if device.type == "cuda"
        else ["self_cpu_time_total"]
    )
    for length in (r, a.seq):

        def step(length: int = length) -> None:
            with autocast(device, amp):
                loss = loss_fn(model, x, x, length)
            loss.backward()

        ms = measure.timed_ms(step, device, warmup=3, repeats=5)
        flops = step_flops(
            shape, reserved=length, rows=a.batch, num_ltd_layers=len(model.ltd_layer_ids)
        )
        print(
            f"\n=== reserved length {length} of {a.seq}: {ms:.2f} ms fwd+bwd, "
            f"{flops / 1e12:.3f} TFLOP, {flops / ms / 1e9:.1f} TFLOP/s ==="
        )
        with profile(activities=activities) as prof:
            for _ in range(2):
                step()
            measure.synchronize(device)
        for sort in sorts:  # the key's name changed across torch releases
            try:
                print(
                    prof.key_averages().table(
                        sort_by=sort, row_limit=a.rows, max_name_column_width=50
                    )
                )
                break
            except (AttributeError, KeyError, ValueError):
                continue


if __name__ == "__main__":
    main()
