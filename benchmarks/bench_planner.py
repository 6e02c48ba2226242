"""How fast is a plan? The GPT-3 1.3B 300B-token plan in-process, beside the same totals computed
by stepping a plain Python loop (as DeepSpeed's scheduler does), in one run.

    python benchmarks/bench_planner.py [--repeats 200]

Prints the median time of each and their ratio; checks that both give the same totals.
Targets (issue 17): the plan, step-time projection included, in under 1 ms (median) and at
least 300x faster than the loop; the CL + random-LTD recipe's plan in under 2 ms.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

from planner import plan
from planner.flops import layer_flops
from planner.presets import get_preset
from planner.recipes import paper_run, recipe

REQUEST = paper_run()


def stepped_totals() -> tuple[int, int, int, float]:
    """Steps, LayerTokens and effective tokens of the random-LTD run, one step at a time."""
    m = get_preset("gpt3-1.3b")
    G, S, L, L_ltd = 512, 2048, 24, 22
    lo, hi, require, sps = 128, 2048, 133_333, 16
    budget = 200_000_000_000
    steps = layer_tokens = effective = 0
    flops = 0.0
    while effective < budget:
        v = math.floor((steps / require) * (hi - lo) + lo)
        r = min(v - v % sps, hi)
        layer_tokens += G * (r * L_ltd + hi * (L - L_ltd))
        effective += G * ((S * (L - L_ltd) + r * L_ltd) // L) if r < S else G * S
        flops += 3 * G * ((L - L_ltd) * layer_flops(S, m) + L_ltd * layer_flops(r, m))
        steps += 1
    return steps, layer_tokens, effective, flops


def timed(fn, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--loop-repeats", type=int, default=3)
    args = parser.parse_args()
    plan(REQUEST)  # warm imports and caches once
    plan_s, p = timed(lambda: plan(REQUEST), args.repeats)
    loop_s, (steps, lt, eff, _) = timed(stepped_totals, args.loop_repeats)
    same = (steps, lt, eff) == (
        p.random_ltd.steps,
        p.random_ltd.layer_tokens,
        p.random_ltd.effective_tokens,
    )
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} "
        f"python {platform.python_version()}"
    )
    print(
        f"GPT-3 1.3B, 300B baseline / 200B random-LTD: {p.random_ltd.steps:,} steps, "
        f"LayerToken saving {p.savings.layer_tokens:.2%}"
    )
    print(f"plan (vectorised, median of {args.repeats}): {plan_s * 1e3:8.3f} ms")
    print(f"per-step Python loop (median of {args.loop_repeats}): {loop_s * 1e3:8.1f} ms")
    print(f"speed-up: {loop_s / plan_s:,.0f}x   totals identical: {same}")
    composed = recipe("gpt3-1.3b-cl-ltd-300b")
    plan(composed)
    composed_s, c = timed(lambda: plan(composed), args.repeats)
    print(
        f"composed with curriculum learning (--recipe gpt3-1.3b-cl-ltd-300b, {c.random_ltd.steps:,}"
        f" steps): {composed_s * 1e3:8.3f} ms"
    )
    ok = plan_s < 0.001 and composed_s < 0.002 and loop_s / plan_s >= 300 and same
    print("target (< 1 ms, >= 300x, same totals; composed < 2 ms):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
