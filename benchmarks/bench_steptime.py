"""The step-time model against measurement, side by side in one run on this machine.

1. Profile the device (`ltd profile`'s `measure_profile`).
2. For model shapes that differ in hidden size, vocabulary, layer count and S, plan a run with
   that profile (the plan's `savings.wall_clock` is the model's prediction) and measure the same
   plan with a validation job on the same shape, nothing scaled down
   (`measured_wall_clock_saving`). Print both beside the FLOPs saving.

The model never sees the validation measurements: its constants come from the profile and from
kernel counts of the implementation (`--count-kernels` prints those counts from a torch.profiler
trace). Each shape is measured `--runs` times (default 3) and the median measured saving is
compared. Target (issue 18): every shape within 3 points; the shapes span head sizes 32-128,
hidden sizes 128-768, S 128-1024 and vocabularies 512-50k.

    python benchmarks/bench_steptime.py [--runs 3] [--measure-steps 15] [--profile FILE]
    python benchmarks/bench_steptime.py --count-kernels
    python benchmarks/bench_steptime.py --profile-spread 3   # the predictions' noise, no training
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from planner import plan
from planner.device import DeviceProfile
from planner.document import Plan
from planner.models import ModelShape
from planner.validation import ValidationSettings
from worker.model import build_model
from worker.profile import measure_profile
from worker.train import loss_fn, make_optimizer
from worker.validate import run_validation

# name: (layers, hidden, heads, vocabulary, S, micro-batch); head size = hidden / heads.
SHAPES = {
    "h128-hd32-S256": (4, 128, 4, 512, 256, 8),
    "h128-hd128-S512": (6, 128, 1, 1024, 512, 4),
    "h128-hd64-12L-S128": (12, 128, 2, 512, 128, 1),
    "h192-hd32-S256-6L": (6, 192, 6, 8192, 256, 4),
    "h256-hd32-S1024": (8, 256, 8, 512, 1024, 1),
    "h256-hd128-S384-6L": (6, 256, 2, 2048, 384, 4),
    "h384-hd64-V50k-S384": (6, 384, 6, 50257, 384, 2),
    "h512-hd32-S128": (4, 512, 16, 4096, 128, 8),
    "h512-hd64-S512": (6, 512, 8, 1024, 512, 2),
    "h768-hd64-V32k-S256": (4, 768, 12, 32000, 256, 2),
    "h768-hd128-S1024": (4, 768, 6, 512, 1024, 1),
}
TARGET_POINTS = 3.0
TRAIN_STEPS = 1000  # the plan: 1,000 steps, S/16 growing to S over all of them

VIEWS = {
    "aten::view", "aten::reshape", "aten::_reshape_alias", "aten::transpose", "aten::t",
    "aten::expand", "aten::as_strided", "aten::unsqueeze", "aten::squeeze", "aten::permute",
    "aten::unbind", "aten::select", "aten::slice", "aten::split", "aten::chunk", "aten::empty",
    "aten::empty_like", "aten::empty_strided", "aten::detach", "aten::alias",
    "aten::_unsafe_view", "aten::lift_fresh", "aten::result_type", "aten::resolve_conj",
    "aten::resolve_neg", "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense",
    "aten::narrow", "aten::flatten", "aten::contiguous",
}  # fmt: skip


def kernels_of(fn: object) -> int:
    """Leaf aten ops (those that launch work) of one call of `fn`, views excluded."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()  # type: ignore[operator]
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    parents = {e.id for e in events for c in e.cpu_children if c.name.startswith("aten::")}
    return sum(
        Counter(e.name for e in events if e.id not in parents and e.name not in VIEWS).values()
    )


def count_kernels() -> None:
    """The kernel counts planner.steptime uses, from traces of a 4- and a 6-layer GPT."""
    counts = {}
    for layers, ltd in ((4, ()), (4, (1, 2)), (6, ())):
        m = ModelShape(num_layers=layers, hidden_size=64, num_heads=2, vocab_size=256, seq_len=32)
        model = build_model(m, ltd_layer_ids=ltd)
        x, y = torch.randint(0, 256, (1, 32)), torch.randint(0, 256, (1, 32))
        r = 16 if ltd else None

        def step(
            model: torch.nn.Module = model,
            r: int | None = r,
            x: torch.Tensor = x,
            y: torch.Tensor = y,
        ) -> None:
            loss_fn(model, x, y, r).backward()

        step()  # gradients exist, as in every micro-batch but a step's first
        counts[(layers, ltd)] = kernels_of(step)
        if layers == 4 and not ltd:
            opt = make_optimizer(model)

            def update(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()

            update()
            tensors = len(list(model.parameters()))
            print(f"optimizer: {kernels_of(update)} kernels for {tensors} parameter tensors")
    per_layer = (counts[(6, ())] - counts[(4, ())]) / 2
    print(
        f"per layer {per_layer:g}; head {counts[(4, ())] - 4 * per_layer:g}; "
        f"per dropping layer {(counts[(4, (1, 2))] - counts[(4, ())]) / 2:g}"
    )


def gpu_predictions(gpu: str) -> None:
    """The built-in profile's predictions for the cases measured on an H100 on 2026-11-27
    (docs/benchmarks.md), which the model never saw."""
    import numpy as np

    from planner import build_runs, parse_request, resolve
    from planner.device import builtin_profile
    from planner.recipes import paper_run
    from planner.steptime import StepShape
    from planner.steptime_table import StepTimes, step_time_s

    profile = builtin_profile(gpu)
    req = parse_request(paper_run(hardware={"gpu": gpu, "num_gpus": 64, "micro_batch_size": 4}))
    runs = build_runs(resolve(req))
    shape = StepShape(runs.resolved.model, 22, micro_batch_size=4, accumulation=2, num_gpus=1)
    t = step_time_s(runs.ltd.reserved, shape, profile)
    t_full = float(step_time_s(2048, shape, profile)[0])
    ratio = float(np.dot(t, runs.ltd.counts)) / (runs.baseline.num_steps * t_full)
    print(
        f"paper run, one GPU, 24 layers, micro-batch 4 x 2: {1 - ratio:.1%} "
        f"(T(128) {float(step_time_s(128, shape, profile)[0]) * 1e3:.1f} ms, "
        f"T(2048) {t_full * 1e3:.1f} ms)"
    )
    for layers, hidden, heads, S, batch in ((16, 2048, 16, 2048, 4), (8, 4096, 32, 2048, 2),
                                            (8, 512, 8, 1024, 8)):  # fmt: skip
        m = ModelShape(num_layers=layers, hidden_size=hidden, num_heads=heads, vocab_size=256,
                       seq_len=S)  # fmt: skip
        step = StepShape(m, layers - 2, micro_batch_size=batch, accumulation=1, num_gpus=1)
        lengths = np.array([S // 4, S])
        at_r, at_s = StepTimes(step, profile, lengths).micro_batch_s(lengths, np.array([S, S]))
        print(f"{layers} x {hidden}, S {S}, batch {batch}, one step at S/4: {1 - at_r / at_s:.1%}")


def shape_plan(name: str, profile: DeviceProfile) -> Plan:
    """The plan of shape `name` on `profile` (its `savings.wall_clock` is the model's
    prediction): 1,000 steps, S/16 growing to S over all of them, one device."""
    layers, hidden, heads, vocab, S, mb = SHAPES[name]
    shape = {"name": name, "num_layers": layers, "hidden_size": hidden, "num_heads": heads,
             "vocab_size": vocab, "seq_len": S}  # fmt: skip
    return plan(
        {
            "model": shape,
            "train_batch_size": mb,
            "train_steps": TRAIN_STEPS,
            "random_ltd": {"require_steps": TRAIN_STEPS},
            "hardware": {
                "num_gpus": 1,
                "micro_batch_size": mb,
                "device_profile": profile.model_dump(),
            },
        }
    )


def profile_spread(count: int) -> None:
    """How far the model's predictions move when the profile alone is measured again: `count`
    profiles back to back, each shape planned on each (no training)."""
    profiles = [measure_profile("cpu") for _ in range(count)]
    for i, p in enumerate(profiles):
        print(
            f"profile {i + 1}: launch {p.launch_overhead_us:.2f} µs, copy {p.memory_gbps:.1f} "
            f"GB/s, matmul up to {max(map(max, p.matmul_tflops)):.3f} TFLOP/s"
        )
    for name in SHAPES:
        predicted = [shape_plan(name, p).savings.wall_clock for p in profiles]
        spread = (max(predicted) - min(predicted)) * 100
        print(f"{name:<22} " + " ".join(f"{x:7.2%}" for x in predicted) + f"  {spread:.2f}p")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure-steps", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3, help="measurements per shape (median)")
    ap.add_argument("--only", nargs="*", help="shape names to measure (default: all)")
    ap.add_argument("--profile", help="use this profile JSON instead of measuring one")
    ap.add_argument("--count-kernels", action="store_true")
    ap.add_argument("--profile-spread", type=int, metavar="N", help="N profiles' predictions")
    ap.add_argument("--gpu-predictions", metavar="GPU", help="built-in profile's predictions")
    args = ap.parse_args()
    if args.count_kernels:
        count_kernels()
        return
    if args.gpu_predictions:
        gpu_predictions(args.gpu_predictions)
        return
    if args.profile_spread:
        profile_spread(args.profile_spread)
        return
    started = time.perf_counter()
    if args.profile:
        profile = DeviceProfile.model_validate_json(Path(args.profile).read_text())
    else:
        profile = measure_profile("cpu")
        Path("cpu-profile.json").write_text(profile.model_dump_json(indent=2))
    print(
        f"device profile: {profile.device_name}, launch {profile.launch_overhead_us:.2f} µs, "
        f"copy {profile.memory_gbps:.1f} GB/s, loss {profile.loss_gbps:.1f} GB/s, "
        f"first touch {profile.first_touch_gbps or 0:.1f} GB/s, "
        f"matmul up to {max(map(max, profile.matmul_tflops)):.3f} TFLOP/s"
    )
    head = (
        f"{'shape':<22} {'FLOPs':>7} {'model':>7} {'measured':>9} {'runs':>17} "
        f"{'|model-m|':>10} {'|FLOPs-m|':>10}"
    )
    print(head)
    rows = []
    for name, (layers, *_, mb) in SHAPES.items():
        if args.only and name not in args.only:
            continue
        p = shape_plan(name, profile)
        settings = ValidationSettings(
            num_layers=layers,
            micro_batch_size=mb,
            device="cpu",
            measure_steps=args.measure_steps,
            max_minutes=10,
            implementation="native",  # the implementation whose kernels the model counts
        )
        measured = []
        for _ in range(args.runs):
            result = run_validation(p, settings)
            assert not result.scaled_down, result.scaled_down  # the very shape, nothing scaled
            assert result.measured_wall_clock_saving is not None
            measured.append(result.measured_wall_clock_saving)
        model, meas, flops = p.savings.wall_clock, statistics.median(measured), p.savings.flops
        rows.append((name, abs(model - meas), abs(flops - meas)))
        spread = "/".join(f"{m:.1%}" for m in measured)
        print(
            f"{name:<22} {flops:>7.2%} {model:>7.2%} {meas:>9.2%} {spread:>17} "
            f"{abs(model - meas) * 100:>9.2f}p {abs(flops - meas) * 100:>9.2f}p",
            flush=True,
        )
    hits = sum(r[1] * 100 <= TARGET_POINTS for r in rows)
    worst = max(rows, key=lambda r: r[1])
    print(
        f"within {TARGET_POINTS:g} points: {hits} of {len(rows)} (worst {worst[0]}, "
        f"{worst[1] * 100:.2f} points); median of {args.runs} runs each; "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
