"""Curriculum learning composed with random-LTD: budgets, counters and FLOPs against a
step-by-step emulation of Megatron-DeepSpeed's training loop (shared/curriculum.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from planner import PlanRequest, build_runs, parse_request, plan, resolve
from planner import flops as F
from planner.curriculum import CurriculumConfig
from planner.document import request_from_plan
from planner.errors import PlanInputError
from planner.schedule import reserved_length
from tests.planner.test_curriculum import DeepSpeedCurriculumScheduler

GPT_1_3B_LTD = {
    "model": "gpt3-1.3b", "train_batch_size": 512, "train_tokens": 300_000_000_000,
    "ltd_train_tokens": 300_000_000_000,
    "random_ltd": {"min_value": 128, "max_value": 2048, "seq_per_step": 16,
                   "require_steps": 200_000},
}  # fmt: skip
CL = {"metric": "seqlen_truncate", "min_difficulty": 80, "max_difficulty": 2048,
      "schedule_type": "fixed_linear",
      "schedule_config": {"total_curriculum_step": 110_000, "difficulty_step": 8}}  # fmt: skip


def test_the_worked_random_ltd_only_case() -> None:
    """shared/curriculum.md: 300B effective tokens, 128 -> 2048 by 16 over 200,000 steps."""
    assert plan(GPT_1_3B_LTD).random_ltd.steps == 372_789


def megatron_run(req: dict, cl: dict, budget: int) -> dict[str, int]:
    """Megatron-DeepSpeed's loop, step by step: CL updates with k + 1 before the batch, the
    dropping layers keep min(r(k), c), the counter adds G * eff and the run stops at the first
    step whose counter reaches the budget."""
    m = resolve(parse_request(req)).model
    r_cfg = resolve(parse_request(req)).ltd
    G, L, L_ltd = req["train_batch_size"], m.num_layers, len(r_cfg.layer_ids or ())
    scheduler = DeepSpeedCurriculumScheduler(cl)
    counter = actual = deepspeed = steps = 0
    flops = 0.0
    while counter < budget:
        c = scheduler.update_difficulty(steps + 1)
        r = int(reserved_length(steps, r_cfg))
        k = min(r, c)
        counter += G * ((c * (L - L_ltd) + k * L_ltd) // L)
        actual += G * (c * (L - L_ltd) + k * L_ltd)
        deepspeed += G * (r * L_ltd + r_cfg.max_value * (L - L_ltd))
        flops += float(F.step_flops(m, reserved=r, seqlen=c, rows=G, num_ltd_layers=L_ltd))
        steps += 1
    return {"steps": steps, "effective": counter, "actual": actual, "deepspeed": deepspeed,
            "flops": flops}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    min_value=st.sampled_from([16, 32, 64]), require=st.integers(1, 300),
    cl_min=st.integers(16, 128), cl_total=st.integers(1, 300), cl_step=st.sampled_from([1, 8, 16]),
    kind=st.sampled_from(["fixed_linear", "fixed_root"]), budget_steps=st.integers(1, 400),
    layers=st.integers(3, 12),
)  # fmt: skip
def test_composed_budget_equals_megatrons_loop(
    min_value: int, require: int, cl_min: int, cl_total: int, cl_step: int, kind: str,
    budget_steps: int, layers: int,
) -> None:  # fmt: skip
    S, G = 256, 4
    model = {"num_layers": layers, "hidden_size": 64, "num_heads": 4, "vocab_size": 512,
             "seq_len": S}  # fmt: skip
    cl = {"metric": "seqlen_truncate", "min_difficulty": max(cl_min, cl_step),
          "max_difficulty": S, "schedule_type": kind,
          "schedule_config": {"total_curriculum_step": cl_total, "difficulty_step": cl_step,
                              "root_degree": 2}}  # fmt: skip
    budget = budget_steps * G * S // 2
    req = {"model": model, "train_batch_size": G, "train_steps": 1000, "ltd_train_tokens": budget,
           "random_ltd": {"min_value": min_value, "max_value": S, "seq_per_step": 16,
                          "require_steps": require},
           "curriculum": cl}  # fmt: skip
    expected = megatron_run(req, cl, budget)
    p = plan(req)
    assert p.random_ltd.steps == expected["steps"]
    assert p.random_ltd.effective_tokens == expected["effective"]
    assert p.random_ltd.layer_tokens == expected["actual"]
    assert p.curriculum is not None
    assert p.curriculum.deepspeed_layer_tokens == expected["deepspeed"]
    assert p.random_ltd.flops == pytest.approx(expected["flops"], rel=1e-12)


def test_dropping_switches_on_and_off_before_it_stays_on() -> None:
    """CL 80 -> 2048 by 8 over 110k steps against random-LTD 128 -> 2048: CL starts below r,
    so random-LTD does nothing at first, and the two ramps cross a few times."""
    p = plan({**GPT_1_3B_LTD, "curriculum": CL})
    assert p.curriculum is not None
    changes = p.curriculum.dropping_changes
    assert changes[0] == (0, False)  # c = 80 < r = 128: nothing to drop
    assert [on for _, on in changes[:4]] == [False, True, False, True]
    assert changes[-1][1] is False  # both reach 2048: no dropping at the end
    # A CL step is one ahead: at step 0, c = value(1) = floor(1/110000 * 1968 + 80) - 0 = 80.
    assert p.curriculum.seqlen_change_points[0] == (0, 80)
    # DeepSpeed's own counter ignores CL and overcounts the actual LayerTokens.
    assert p.curriculum.deepspeed_layer_tokens > p.random_ltd.layer_tokens


def test_a_curriculum_only_plan() -> None:
    p = plan({**GPT_1_3B_LTD, "random_ltd": {"enabled": False}, "curriculum": CL})
    assert p.random_ltd_config.layer_ids == ()
    assert p.curriculum is not None and not any(on for _, on in p.curriculum.dropping_changes)
    # Shorter sequences early: more steps to reach 300B effective tokens than the baseline.
    assert p.random_ltd.steps > p.baseline.steps
    ds = p.deepspeed_config.data_efficiency
    assert ds.data_routing is None and ds.data_sampling is not None
    assert plan(request_from_plan(p)).id == p.id  # a plan file rebuilds the same plan


def test_a_reordering_metric_changes_no_cost() -> None:
    voc = {**CL, "metric": "voc"}
    with_voc = plan({**GPT_1_3B_LTD, "curriculum": voc})
    without = plan(GPT_1_3B_LTD)
    assert with_voc.random_ltd.steps == without.random_ltd.steps
    assert with_voc.random_ltd.flops == without.random_ltd.flops
    assert with_voc.curriculum is not None and with_voc.curriculum.reorder_metrics == ["voc"]


def test_reshape_keeps_about_g_times_s_tokens_a_step() -> None:
    reshape = {**CL, "metric": "seqlen_reshape"}
    req = {**GPT_1_3B_LTD, "curriculum": reshape, "hardware": {"micro_batch_size": 4}}
    runs = build_runs(resolve(parse_request(req)))
    # At c = 80 a micro-batch of 4 x 2049 tokens is re-cut into rows of 81: min(ceil(8196/81),
    # 4 * (2049 // 81 + 1)) = min(102, 104) = 102 rows (even), times G / 4 = 128 micro-batches.
    assert int(runs.ltd.counters.rows(np.asarray(80))) == 102 * 128


def test_deepspeed_config_blocks_give_the_same_plan() -> None:
    legacy = {"train_batch_size": 512, "curriculum_learning": {
        "enabled": True, "curriculum_type": "seqlen", "min_difficulty": 80,
        "max_difficulty": 2048, "schedule_type": "fixed_linear",
        "schedule_config": {"total_curriculum_step": 110_000, "difficulty_step": 8}}}  # fmt: skip
    metric = {"index_to_sample_path": "x", "difficulty_type": "value",
              "clustering_type": "single_cluster", **CL}  # fmt: skip
    metric.pop("metric")
    sampling = {"train_batch_size": 512, "data_efficiency": {"enabled": True, "data_sampling": {
        "enabled": True, "curriculum_learning": {"enabled": True, "curriculum_metrics": {
            "seqlen_truncate": metric}}}}}  # fmt: skip
    base = {k: v for k, v in GPT_1_3B_LTD.items() if k != "train_batch_size"}
    by_request = plan({**GPT_1_3B_LTD, "curriculum": CL})
    by_sampling = plan(
        {**base, "deepspeed_config": sampling, "random_ltd": GPT_1_3B_LTD["random_ltd"]}
    )
    assert by_sampling.random_ltd.steps == by_request.random_ltd.steps
    by_legacy = plan({**base, "deepspeed_config": legacy, "random_ltd": GPT_1_3B_LTD["random_ltd"]})
    assert by_legacy.curriculum is not None and by_legacy.curriculum.config is not None
    assert by_legacy.curriculum.config.metric == "seqlen"
    assert by_legacy.random_ltd.steps == by_request.random_ltd.steps
    # The exported block reads back to the same plan.
    exported = by_sampling.deepspeed_config.model_dump(mode="json")
    again = plan({**base, "deepspeed_config": exported})
    assert again.id == by_sampling.id or again.random_ltd.steps == by_sampling.random_ltd.steps


BAD_DEEPSPEED = [
    ({"curriculum_learning": {"enabled": True, "min_difficulty": 8, "max_difficulty": 2048,
      "schedule_type": "fixed_linear", "schedule_config": {"total_curriculum_step": 10,
      "difficulty_step": 8}}}, "deepspeed_config.curriculum_learning.curriculum_type"),
    ({"curriculum_learning": {"enabled": True, "curriculum_type": "seqlen", "min_difficulty": 8,
      "max_difficulty": 2048, "schedule_type": "custom", "schedule_config": {}}},
     "deepspeed_config.curriculum_learning.schedule_type"),
    ({"curriculum_learning": {"enabled": True, "curriculum_type": "seqlen", "min_difficulty": 8,
      "max_difficulty": 2048, "schedule_type": "fixed_linear",
      "schedule_config": {"total_curriculum_step": 0, "difficulty_step": 8}}},
     "deepspeed_config.curriculum_learning.schedule_config"),
    ({"data_efficiency": {"data_sampling": {"curriculum_learning": {"enabled": True,
      "curriculum_metrics": {"seqlen_truncate": {"min_difficulty": 8, "max_difficulty": 2048,
      "schedule_type": "fixed_discrete", "schedule_config": {"difficulty": [8, 16],
      "max_step": [5, 10]}}}}}}},
     "deepspeed_config.data_efficiency.data_sampling.curriculum_learning.curriculum_metrics"
     ".seqlen_truncate.schedule_config"),
]  # fmt: skip


@pytest.mark.parametrize("ds, field", BAD_DEEPSPEED)
def test_bad_curriculum_blocks_name_the_field(ds: dict, field: str) -> None:
    req = {"model": "gpt3-1.3b", "train_batch_size": 512, "train_steps": 1000,
           "deepspeed_config": ds}  # fmt: skip
    with pytest.raises(PlanInputError) as err:
        plan(req)
    assert err.value.field.startswith(field), err.value


LEGACY_CL = {"enabled": True, "curriculum_type": "seqlen", "min_difficulty": 80,
             "max_difficulty": 2048, "schedule_type": "fixed_linear"}  # fmt: skip


def legacy_request(schedule_config: dict) -> dict:
    """GPT_1_3B_LTD with its batch size and the legacy CL block in a DeepSpeed config."""
    cl = {**LEGACY_CL, "schedule_config": schedule_config}
    base = {k: v for k, v in GPT_1_3B_LTD.items() if k != "train_batch_size"}
    return {**base, "deepspeed_config": {"train_batch_size": 512, "curriculum_learning": cl}}


def test_a_curriculum_schedule_config_is_typed_and_its_other_keys_ignored() -> None:
    steps = {"total_curriculum_step": 110_000, "difficulty_step": 8}
    assert plan(legacy_request({**steps, "warmup": 3})).id == plan(legacy_request(steps)).id
    # The schema states the keys' types: a strict reader (the API) refuses a string count.
    with pytest.raises(ValidationError) as err:
        PlanRequest.model_validate(legacy_request({**steps, "difficulty_step": "8"}), strict=True)
    where = ("deepspeed_config", "curriculum_learning", "schedule_config", "difficulty_step")
    assert err.value.errors()[0]["loc"] == where


def test_curriculum_longer_than_the_model_is_refused() -> None:
    with pytest.raises(PlanInputError, match="curriculum.max_difficulty"):
        plan({**GPT_1_3B_LTD, "curriculum": {**CL, "max_difficulty": 4096}})


def test_plain_cl_config_validates_alone() -> None:
    assert CurriculumConfig.model_validate(CL).sets_length


def test_bert_rounds_the_curriculum_length_up_to_a_multiple_of_8() -> None:
    cl = {"metric": "seqlen_truncate", "min_difficulty": 100, "max_difficulty": 512,
          "schedule_type": "fixed_linear",
          "schedule_config": {"total_curriculum_step": 1000, "difficulty_step": 4}}  # fmt: skip
    req = {"train_batch_size": 1024, "train_steps": 2000, "curriculum": cl}
    bert = plan({"model": "bert-large", **req})
    gpt = plan({"model": "gpt3-125m", **req})
    assert bert.curriculum is not None and gpt.curriculum is not None
    assert gpt.curriculum.seqlen_change_points[0] == (0, 100)  # 100 is a multiple of 4
    assert bert.curriculum.seqlen_change_points[0] == (0, 104)  # rounded up to 8
