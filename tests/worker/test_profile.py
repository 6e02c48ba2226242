"""The launch probe of `ltd profile` (`worker.profile.LaunchProbe`): its constant is the median
of short bursts spread over the profile, so one burst that a busy moment slowed does not set it."""

from __future__ import annotations

import statistics

import torch

from planner.steptime import LAYER_KERNELS
from worker.profile import LAUNCH_LAYERS, LaunchProbe


def test_the_launch_constant_is_the_median_burst() -> None:
    probe = LaunchProbe(torch.device("cpu"), torch.float32)
    assert probe.kernels == LAUNCH_LAYERS * LAYER_KERNELS  # fp32: no autocast casts
    for _ in range(3):
        probe.sample()
    assert len(probe.samples) == 3 and all(0 < us < 10_000 for us in probe.samples)
    assert probe.value() == statistics.median(probe.samples)
    typical = statistics.median(probe.samples)
    probe.samples.append(typical * 10)  # one burst slowed tenfold (a busy moment)...
    probe.samples.append(typical * 10)  # ...and another: two of five
    assert probe.value() <= max(probe.samples[:3])  # the median stays with the typical ones


def test_a_probe_never_sampled_measures_once() -> None:
    probe = LaunchProbe(torch.device("cpu"), torch.float32)
    assert probe.value() > 0 and len(probe.samples) == 1
