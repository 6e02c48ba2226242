"""Does a validation job measure the user's model as given, and does it know how long it takes?

For small GPT shapes on this CPU, run `ltd validate`'s job with its defaults (no max_minutes:
the 10-minute default; throughput mode) and print what it measured (layers, S, micro-batch: the
plan's, or what it scaled down and why) and the step-time model's `predicted_job_seconds`
beside the `seconds` the job took. The device profile is measured once and cached, as a worker
does (LTD_PROFILE_CACHE_DIR; here a temporary folder unless `--profile-cache` is given).

Target (issue 18): the 6-layer hidden-192 S 256 GPT and a 6-layer S 384 model at full size, and
the prediction within 30% of the measurement for every shape.

    python benchmarks/bench_sizing.py [--implementation native|hf|auto] [--profile-cache DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from planner import plan
from planner.validation import ValidationSettings
from worker.predict import device_profile
from worker.validate import run_validation

# name: (layers, hidden, heads, vocabulary, S, global batch, micro-batch)
SHAPES = {
    "6L-h192-S256": (6, 192, 6, 8192, 256, 32, 4),
    "6L-h256-S384": (6, 256, 4, 2048, 384, 16, 4),
    "6L-h384-S384": (6, 384, 6, 8192, 384, 16, 2),
    "8L-h256-S512": (8, 256, 8, 4096, 512, 16, 2),
    "4L-h512-S1024": (4, 512, 8, 1024, 1024, 8, 1),
}
TOLERANCE = 0.30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--implementation", choices=("native", "hf", "auto"), default="native")
    ap.add_argument("--profile-cache", type=Path, help="cache folder (default: a fresh one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.profile_cache or Path(tmp)
        # The device's profile first, as a worker's first job measures and caches it: the jobs
        # below then predict with it and read it from the cache (the steady state).
        first = plan({"model": "gpt2", "train_batch_size": 8, "train_steps": 100})
        started = time.monotonic()
        profile, measured = device_profile(first, torch.device("cpu"), torch.float32, cache)
        print(f"device profile {'measured' if measured else 'read'} in "
              f"{time.monotonic() - started:.1f} s: {profile.source}")  # fmt: skip
        print(f"{'shape':<16} {'measured model':<28} {'predicted s':>11} {'seconds':>8} "
              f"{'pred/meas':>9}  implementation")  # fmt: skip
        ok = True
        for name, (layers, hidden, heads, vocab, S, G, mb) in SHAPES.items():
            p = plan({
                "model": {"name": name, "num_layers": layers, "hidden_size": hidden,
                          "num_heads": heads, "vocab_size": vocab, "seq_len": S},
                "train_batch_size": G, "train_steps": 2000,
                "hardware": {"num_gpus": 1, "micro_batch_size": mb},
            })  # fmt: skip
            settings = ValidationSettings(device="cpu", implementation=args.implementation)
            started = time.monotonic()
            r = run_validation(p, settings, profile_cache=cache)
            wall = time.monotonic() - started
            predicted = r.predicted_job_seconds or 0.0
            ratio = predicted / r.seconds
            full = (r.num_layers, r.seq_len, r.micro_batch_size) == (layers, S, mb)
            ok &= full and abs(ratio - 1) <= TOLERANCE
            model = f"{r.num_layers}L S{r.seq_len} mb{r.micro_batch_size}" + (
                " (full size)" if full else f" ({'; '.join(r.scaled_down)})"
            )
            print(
                f"{name:<16} {model:<28} {predicted:>11.1f} {r.seconds:>8.1f} {ratio:>9.2f}  "
                f"{r.implementation} (wall {wall:.1f} s)",
                flush=True,
            )
        print(f"target (full size, prediction within {TOLERANCE:.0%}):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
