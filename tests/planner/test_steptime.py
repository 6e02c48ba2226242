"""The step-time model, part by part against hand-derived values, and its properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import flops as F
from planner import plan
from planner.device import DeviceProfile, builtin_profile, ideal_profile
from planner.errors import PlanInputError
from planner.gpus import GPUS
from planner.models import ModelShape
from planner.presets import get_preset
from planner.steptime import (
    DDP_BUCKET_BYTES,
    FRESH_ALLOCATION_BYTES,
    StepShape,
    allreduce_s,
    attention_core_s,
    drop_bytes,
    head_fresh_s,
    layer_fresh_s,
    layer_memory_bytes,
    linear_s,
    optimizer_s,
    param_tensors,
    with_launches,
)
from planner.steptime_table import step_time_s

TINY = ModelShape(num_layers=4, hidden_size=4, num_heads=1, vocab_size=8, seq_len=8,
                  ffn_hidden_size=16)  # fmt: skip


def flat(tflops: float = 1.0, **update: object) -> DeviceProfile:
    """A device with one rate everywhere (TFLOP/s), copy bandwidth 1 GB/s, 10 µs launches."""
    fields: dict[str, object] = {
        "device_name": "flat", "dtype": "float32", "source": "test",
        "matmul_rows": [1, 10], "matmul_widths": [1, 10],
        "matmul_tflops": [[tflops, tflops], [tflops, tflops]],
        "attention_lengths": [1, 10], "attention_tflops": [tflops, tflops],
        "memory_gbps": 1.0, "launch_overhead_us": 10.0, "async_launch": False,
    }  # fmt: skip
    return DeviceProfile.model_validate({**fields, **update})


def test_linear_is_three_gemms_at_the_achieved_rate() -> None:
    # 3 x 2 x 100 x 10 x 20 = 120,000 FLOPs at 1 TFLOP/s: 1.2e-7 s.
    assert float(linear_s(np.asarray(100.0), 10, 20, flat())) == pytest.approx(1.2e-7)


def test_matmul_rate_interpolates_in_log_space_and_holds_at_the_edges() -> None:
    p = flat(matmul_rows=[10, 1000], matmul_tflops=[[1.0, 1.0], [100.0, 100.0]])
    # halfway in log rows (100) the rate is the geometric mean: sqrt(1 x 100) = 10 TFLOP/s
    assert float(p.matmul_flops_per_s(np.asarray(100.0), 5.0)) == pytest.approx(10e12)
    assert float(p.matmul_flops_per_s(np.asarray(1.0), 5.0)) == pytest.approx(1e12)  # held
    assert float(p.matmul_flops_per_s(np.asarray(1e6), 5.0)) == pytest.approx(100e12)


def test_attention_core_counts_the_full_n_squared() -> None:
    shape = StepShape(TINY, 2, micro_batch_size=3, accumulation=1, num_gpus=1)
    # 3 passes x b 3 x 4 n^2 h = 3 x 3 x 4 x 64 x 4 = 9,216 FLOPs at 1 TFLOP/s
    assert float(attention_core_s(np.asarray(8), shape, flat())) == pytest.approx(9216e-12)


def test_layer_memory_bytes_by_hand() -> None:
    shape = StepShape(TINY, 2, micro_batch_size=1, accumulation=1, num_gpus=1)
    # fp32: per token 4 x (2+3+2+3+2) h = 4 x 48 = 192 on the stream, 4 x 2f = 128 for GELU;
    # 2 tokens: 640 bytes forward, x3 with the backward.
    assert float(layer_memory_bytes(np.asarray(2), shape, flat())) == 1920
    bf16 = flat(dtype="bfloat16")
    # 16-bit: GELU 2 x 32 = 64 a token (stream stays fp32): (192 + 64) x 2 x 3 = 1536; casts:
    # inputs 2 tokens x 3h x 6 = 144; weights (2h^2 + 2h kv + 2hf) x 6 = (32+32+128) x 6 = 1152.
    assert float(layer_memory_bytes(np.asarray(2), shape, bf16)) == 1536 + 144 + 1152


def test_drop_bytes_by_hand_and_none_without_dropping() -> None:
    shape = StepShape(TINY, 2, micro_batch_size=1, accumulation=1, num_gpus=1)
    # 4 bytes x h 4 x ((2r + 2S + r) + (2S + 2r + 2r)) with r 2, S 8: 16 x (22 + 24) = 736;
    # sampling 3 x 8 bytes x S 8 = 192.
    assert float(drop_bytes(np.asarray(2), shape)) == 736 + 192
    assert float(drop_bytes(np.asarray(8), shape)) == 0


def test_fresh_pages_only_for_tensors_the_allocator_cannot_reuse() -> None:
    # GPT, h 256, f 1024, V 8192, S 1024, micro-batch 1, fp32, pages mapped at 4 GB/s.
    m = ModelShape(num_layers=2, hidden_size=256, num_heads=4, vocab_size=8192, seq_len=1024)
    cpu = flat(first_touch_gbps=4.0)
    shape = StepShape(m, 0, micro_batch_size=1, accumulation=1, num_gpus=1)
    # logits 1 x 1024 x 8192 x 4 bytes = 32 MiB, exactly the threshold: the logits and the
    # loss's three fp32 tensors of that size are fresh; the V x h gradients (8 MiB) are not.
    logits = 1024 * 8192 * 4
    assert logits == FRESH_ALLOCATION_BYTES
    assert float(head_fresh_s(shape, cpu)) == pytest.approx(4 * logits / 4e9)
    # micro-batch 4 at 1024 tokens: the MLP's two b n f tensors are 16 MiB, under it: nothing.
    assert float(layer_fresh_s(np.asarray(1024), StepShape(m, 0, 4, 1, 1), cpu)) == 0
    # micro-batch 8: they are 32 MiB, each written forward and its gradient backward: 4 x 32 MiB.
    got = float(layer_fresh_s(np.asarray(1024), StepShape(m, 0, 8, 1, 1), cpu))
    assert got == pytest.approx(4 * 32 * 2**20 / 4e9)
    # One token fewer and they fall under the threshold again; a caching allocator: nothing.
    assert float(layer_fresh_s(np.asarray(1023), StepShape(m, 0, 8, 1, 1), cpu)) == 0
    assert float(head_fresh_s(shape, flat())) == 0


def test_launches_add_on_the_cpu_and_overlap_on_a_gpu() -> None:
    work = np.asarray([5e-6, 50e-6])  # 5 and 50 µs of work, 1 kernel of 10 µs
    assert with_launches(work, 1, flat()).tolist() == pytest.approx([15e-6, 60e-6])
    assert with_launches(work, 1, flat(async_launch=True)).tolist() == pytest.approx([10e-6, 50e-6])


def test_allreduce_ring_and_what_hides_behind_the_backward_pass() -> None:
    p = flat(interconnect_gbps=100.0, internode_gbps=10.0)
    one = StepShape(TINY, 2, micro_batch_size=1, accumulation=1, num_gpus=1)
    assert allreduce_s(one, p, backward_s=0.0) == 0.0
    eight = StepShape(TINY, 2, micro_batch_size=1, accumulation=1, num_gpus=8)
    ring = TINY.num_params * 4 * 2 * 7 / 8 / 100e9
    assert allreduce_s(eight, p, backward_s=0.0) == pytest.approx(ring)
    assert allreduce_s(eight, p, backward_s=1.0) == pytest.approx(ring)  # all of it is the
    # last bucket (a tiny model's gradients are smaller than 25 MiB)
    big = get_preset("gpt3-1.3b")
    many = StepShape(big, 22, micro_batch_size=1, accumulation=1, num_gpus=16)  # 2 nodes
    ring_16 = big.num_params * 4 * 2 * 15 / 16 / 10e9
    bucket = DDP_BUCKET_BYTES * 2 * 15 / 16 / 10e9
    assert allreduce_s(many, p, backward_s=0.1) == pytest.approx(ring_16 - 0.1)
    assert allreduce_s(many, p, backward_s=100.0) == pytest.approx(bucket)


def test_optimizer_from_measured_costs() -> None:
    p = flat(optimizer_ns_per_param=2.0, optimizer_us_per_tensor=3.0)
    shape = StepShape(TINY, 2, micro_batch_size=1, accumulation=1, num_gpus=1)
    # 4 layers x (2 LayerNorms x 2 + 5 linears x 2) + token, position, final norm x 2 = 60
    assert param_tensors(TINY) == 4 * 14 + 4
    expected = TINY.num_params * 2e-9 + param_tensors(TINY) * 3e-6
    assert optimizer_s(shape, p) == pytest.approx(expected)


shapes = st.builds(
    lambda layers, heads, head_dim, vocab, seq, mlp: ModelShape(
        num_layers=layers, hidden_size=heads * head_dim, num_heads=heads, vocab_size=vocab,
        seq_len=seq, activation=mlp,
    ),
    st.integers(3, 48), st.integers(1, 32), st.sampled_from([16, 32, 64, 128]),
    st.integers(2, 200_000), st.integers(16, 16_384), st.sampled_from(["gelu", "swiglu"]),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(m=shapes, mb=st.integers(1, 16), acc=st.integers(1, 64), data=st.data())
def test_ideal_device_gives_exactly_the_flops_ratio(
    m: ModelShape, mb: int, acc: int, data: st.DataObject
) -> None:
    r = data.draw(st.integers(1, m.seq_len))
    shape = StepShape(m, m.num_layers - 2, micro_batch_size=mb, accumulation=acc, num_gpus=1)
    t = step_time_s(np.asarray([r, m.seq_len]), shape, ideal_profile(989.0))
    f = F.step_flops(m, reserved=np.asarray([r, m.seq_len]), num_ltd_layers=m.num_layers - 2)
    assert t[0] / t[1] == pytest.approx(f[0] / f[1], rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(m=shapes, mb=st.integers(1, 16), gpus=st.sampled_from([1, 8, 64]),
       gpu=st.sampled_from(sorted(GPUS)))  # fmt: skip
def test_step_time_never_decreases_as_r_grows(m: ModelShape, mb: int, gpus: int, gpu: str) -> None:
    """Below S; at r = S nothing is dropped, so the token path's cost drops out (a real step: the
    worker measures it too)."""
    shape = StepShape(m, m.num_layers - 2, micro_batch_size=mb, accumulation=4, num_gpus=gpus)
    r = np.unique(np.linspace(1, m.seq_len - 1, 64).astype(np.int64))
    t = step_time_s(r, shape, builtin_profile(gpu))
    assert np.all(np.diff(t) >= -1e-12 * t[1:])


@pytest.mark.parametrize("gpu", sorted(GPUS))
def test_every_gpu_preset_has_a_builtin_profile(gpu: str) -> None:
    p = builtin_profile(gpu)
    assert p.peak_tflops == GPUS[gpu].peak_tflops
    assert max(map(max, p.matmul_tflops)) < p.peak_tflops  # achieved stays under peak
    assert DeviceProfile.model_validate_json(p.model_dump_json()) == p


def test_plan_with_an_ideal_device_saves_wall_clock_as_it_saves_flops() -> None:
    req = {"model": "gpt3-125m", "train_batch_size": 64, "train_steps": 2000,
           "hardware": {"device_profile": ideal_profile(312.0).model_dump()}}  # fmt: skip
    p = plan(req)
    assert p.projection.method == "step_time_model"
    assert p.savings.wall_clock == pytest.approx(p.savings.flops, rel=1e-12)
    built_in = plan({**req, "hardware": {}})
    assert built_in.savings.wall_clock < built_in.savings.flops  # fixed costs do not shrink
    assert math.isclose(built_in.baseline.wall_clock_hours, p.baseline.wall_clock_hours)


def test_a_stored_profile_id_needs_the_server() -> None:
    req = {"model": "gpt3-125m", "train_batch_size": 64, "train_steps": 2000,
           "hardware": {"device_profile": "dp_0123456789abcdef"}}  # fmt: skip
    with pytest.raises(PlanInputError, match="hardware.device_profile"):
        plan(req)


def test_profile_rules_name_the_field() -> None:
    with pytest.raises(ValueError, match="matmul_rows"):
        flat(matmul_rows=[10, 1])
    with pytest.raises(ValueError, match="matmul_tflops"):
        flat(matmul_tflops=[[1.0, 1.0]])


def test_a_profile_field_added_later_leaves_plan_ids_as_stored() -> None:
    # A stored plan whose request carries a profile measured before first_touch_gbps existed
    # (tests/api/data/old_rows.json, written by 1a9e6d8): planned again, it gets the id it was
    # stored under.
    import json
    from pathlib import Path

    rows = json.loads((Path(__file__).parents[1] / "api/data/old_rows.json").read_text())
    row = next(r for r in rows["device_profiles"]["plans"] if "device_profile" in r["request_json"])
    request, stored = json.loads(row["request_json"]), json.loads(row["plan_json"])
    assert plan(request).id == stored["id"]
    # Measured with the field, the same numbers are another profile: another plan.
    request["hardware"]["device_profile"]["first_touch_gbps"] = 5.0
    assert plan(request).id != stored["id"]
