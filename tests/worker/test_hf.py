"""worker.hf: random-LTD on real Hugging Face Transformers models (tiny configs built here,
random weights, the CPU; nothing downloaded).

Each dropping layer is checked against the same layer run by hand on the gathered subsequence,
with the kept tokens' own positions and a mask built here from the 2D padding mask (not cut out
of the model's), so a wrong rotary row, mask row or column, or order shows.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch import Tensor, nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from planner import plan as make_plan  # noqa: E402
from planner.calibration import runs_for_plan  # noqa: E402
from planner.document import Plan  # noqa: E402
from planner.lr import learning_rate  # noqa: E402
from planner.schedule import RandomLTDConfig  # noqa: E402
from worker import hf  # noqa: E402
from worker.hf import (  # noqa: E402
    LayerTokenLRScheduler,
    RandomLTDCallback,
    apply_random_ltd,
    dropping_layers,
    set_reserved_length,
)

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ("gpt2", "llama", "mistral", "qwen2", "bert")
LLAMA_FAMILY = ("llama", "mistral", "qwen2")
B, S, V, HIDDEN = 3, 16, 64, 32
SLIDING_WINDOW = 6  # Mistral's, below S: the mask carries a band the kept tokens must keep


def tiny_config(arch: str, num_layers: int = 4) -> PretrainedConfig:
    """A tiny config of `arch`, dropout off (train mode must be deterministic here)."""
    if arch == "gpt2":
        return GPT2Config(
            n_embd=HIDDEN,
            n_layer=num_layers,
            n_head=4,
            vocab_size=V,
            n_positions=2 * S,
            bos_token_id=0,
            eos_token_id=0,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    if arch == "bert":
        return BertConfig(
            hidden_size=HIDDEN,
            num_hidden_layers=num_layers,
            num_attention_heads=4,
            intermediate_size=2 * HIDDEN,
            vocab_size=V,
            max_position_embeddings=2 * S,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    common = dict(
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped key/value heads
        vocab_size=V,
        max_position_embeddings=2 * S,
    )
    if arch == "mistral":
        return MistralConfig(**common, sliding_window=SLIDING_WINDOW)
    return {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch](**common)


def tiny_model(arch: str, impl: str = "sdpa", seed: int = 0, num_layers: int = 4) -> Any:
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if arch == "bert" else AutoModelForCausalLM
    return auto.from_config(tiny_config(arch, num_layers), attn_implementation=impl).train()


def ltd_config(**kw: Any) -> RandomLTDConfig:
    """Layers 1 and 2 of 4 drop tokens (the default: all but the first and last)."""
    return RandomLTDConfig(min_value=4, max_value=S, require_steps=10, seq_per_step=4, **kw)


def padded_batch(arch: str, padding: str) -> dict[str, Tensor]:
    """Token ids and a 2D padding mask: sample 1 pads 5 tokens and sample 2 pads 3, on the
    left or the right; with left padding the Llama family gets the position ids generation uses
    (the first real token at 0: per-sample positions)."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, V, (B, S), generator=gen)
    mask = torch.ones(B, S, dtype=torch.long)
    if padding == "left":
        mask[1, :5], mask[2, :3] = 0, 0
    elif padding == "right":
        mask[1, -5:], mask[2, -3:] = 0, 0
    batch = {"input_ids": ids, "attention_mask": mask}
    if padding == "left" and arch in LLAMA_FAMILY:
        batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    return batch


def capture(layer: nn.Module) -> tuple[dict[str, Any], list[Any]]:
    """Hooks that keep a layer's full inputs (args, kwargs) and output of each call."""
    seen: dict[str, Any] = {}
    outputs: list[Any] = []

    def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["args"], seen["kwargs"] = args, kwargs

    layer.register_forward_pre_hook(pre, with_kwargs=True)
    layer.register_forward_hook(lambda m, a, out: outputs.append(out))
    return seen, outputs


def original_forward(layer: nn.Module) -> Any:
    """The Transformers class's own forward (the class after worker.hf's mixin)."""
    mro = type(layer).__mro__
    return mro[mro.index(hf.RandomLTDLayerMixin) + 1].forward


def by_hand(
    model: Any,
    arch: str,
    layer: nn.Module,
    x_BSH: Tensor,
    idx_Br: Tensor,
    batch: dict[str, Tensor],
) -> Tensor:
    """The layer's original forward on the kept tokens x[b, idx[b]], with their original
    positions and a mask built here: key j visible to query i iff j is not padding, and (causal
    models) idx_j <= idx_i, and (Mistral) idx_i - idx_j < the sliding window."""
    b = torch.arange(idx_Br.shape[0])[:, None]
    r = idx_Br.shape[1]
    kept_x = x_BSH[b, idx_Br]  # (B, r, H)
    real_Br = batch["attention_mask"].bool()[b, idx_Br]
    visible_Brr = real_Br[:, None, :].expand(-1, r, -1).clone()
    if arch != "bert":
        visible_Brr &= idx_Br[:, None, :] <= idx_Br[:, :, None]
    if arch == "mistral":
        visible_Brr &= idx_Br[:, :, None] - idx_Br[:, None, :] < SLIDING_WINDOW
    mask = torch.zeros(visible_Brr.shape).masked_fill(~visible_Brr, torch.finfo(torch.float32).min)
    kwargs: dict[str, Any] = {"attention_mask": mask[:, None]}  # (B, 1, r, r)
    if arch in LLAMA_FAMILY:
        positions_BS = batch.get("position_ids", torch.arange(S).expand(B, S))
        kept_pos = positions_BS[b, idx_Br]  # the kept tokens' original positions
        kwargs["position_embeddings"] = model.model.rotary_emb(kept_x, position_ids=kept_pos)
        kwargs["position_ids"] = kept_pos
    return original_forward(layer)(layer, kept_x, **kwargs)


def real_rows(batch: dict[str, Tensor], idx_Br: Tensor) -> Tensor:
    """(B, r) True where a kept token is not padding: those rows are compared (a padding
    query's output is never used, and with every key masked its value is the convention of the
    attention kernel)."""
    return batch["attention_mask"].bool()[torch.arange(idx_Br.shape[0])[:, None], idx_Br]


# Exactness ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ARCHS)
def test_full_reserved_length_equals_the_unwrapped_model(arch: str, impl: str) -> None:
    """r = S (and r = None): logits and every parameter's gradient equal the plain model's,
    state_dict keys and values unchanged; r < S does change the logits."""
    plain = tiny_model(arch, impl)
    model = apply_random_ltd(copy.deepcopy(plain), ltd_config())
    assert list(model.state_dict()) == list(plain.state_dict())
    batch = padded_batch(arch, "right")
    weights = torch.randn(B, S, V, generator=torch.Generator().manual_seed(2))

    def logits_and_grads(m: Any) -> tuple[Tensor, dict[str, Tensor]]:
        m.zero_grad()
        logits = m(**batch).logits
        (logits * weights).sum().backward()
        return logits.detach(), {
            n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None
        }

    want_logits, want_grads = logits_and_grads(plain)
    for r in (S, None, S + 5):
        set_reserved_length(model, r)
        logits, grads = logits_and_grads(model)
        torch.testing.assert_close(logits, want_logits)
        assert grads.keys() == want_grads.keys()
        for name in want_grads:
            torch.testing.assert_close(grads[name], want_grads[name], msg=name)
        assert all(layer.ltd_kept_indices is None for layer in dropping_layers(model))
    set_reserved_length(model, S // 2)
    assert not torch.allclose(model(**batch).logits, want_logits, atol=1e-3)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("padding", ["none", "left", "right"])
@pytest.mark.parametrize("arch", ARCHS)
def test_kept_tokens_equal_the_layer_run_by_hand(arch: str, padding: str, impl: str) -> None:
    """r < S: each dropping layer's kept outputs equal its original forward on the gathered
    subsequence with the original positions and mask (built here), dropped ones its input."""
    model = tiny_model(arch, impl)
    apply_random_ltd(model, ltd_config())
    layers = dropping_layers(model)
    assert [type(x).__name__.removeprefix("RandomLTD") for x in layers] == [
        type(x).__name__ for x in hf.layer_stack(tiny_model(arch, impl))[1:3]
    ]
    probes = [capture(layer) for layer in layers]
    set_reserved_length(model, 6)
    batch = padded_batch(arch, padding)
    logits = model(**batch).logits
    assert torch.isfinite(logits).all()
    b = torch.arange(B)[:, None]
    for layer, (seen, outputs) in zip(layers, probes, strict=True):
        x_BSH, out_BSH = seen["args"][0], outputs[-1]
        idx_Br = layer.ltd_kept_indices
        assert idx_Br is not None and idx_Br.shape == (B, 6)
        assert (idx_Br.diff(dim=1) > 0).all()  # distinct, in order
        dropped = torch.ones(B, S, dtype=torch.bool)
        dropped[b, idx_Br] = False
        assert torch.equal(out_BSH[dropped], x_BSH[dropped])
        want = by_hand(model, arch, layer, x_BSH, idx_Br, batch)
        rows = real_rows(batch, idx_Br)
        torch.testing.assert_close(out_BSH[b, idx_Br][rows], want[rows], atol=2e-5, rtol=1e-4)
    if padding == "none":  # samples draw their own subsets
        assert not all(torch.equal(idx_Br[0], idx_Br[i]) for i in range(1, B))


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_flow_only_through_kept_tokens(arch: str) -> None:
    """A dropped token's input gradient is exactly its output gradient (pass-through); a kept
    token's, and the layer's parameter gradients, are those of the layer run on the kept
    subsequence alone."""
    model = tiny_model(arch)
    apply_random_ltd(model, ltd_config())
    layer = dropping_layers(model)[0]
    seen, _ = capture(layer)
    batch = padded_batch(arch, "right")
    no_cache = {} if arch == "bert" else {"use_cache": False}
    model(**batch, **no_cache)  # the layer's full side inputs: mask, rotary angles
    set_reserved_length(model, 5)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(B, S, HIDDEN, generator=gen, requires_grad=True)
    g = torch.randn(B, S, HIDDEN, generator=gen)
    model.zero_grad()
    layer(x, *seen["args"][1:], **seen["kwargs"]).backward(g)
    idx_Br = layer.ltd_kept_indices
    assert idx_Br is not None
    b = torch.arange(B)[:, None]
    dropped = torch.ones(B, S, dtype=torch.bool)
    dropped[b, idx_Br] = False
    assert x.grad is not None and torch.equal(x.grad[dropped], g[dropped])
    wrapped_grads = {n: p.grad.clone() for n, p in layer.named_parameters()}

    model.zero_grad()
    kept_x = x.detach()[b, idx_Br].requires_grad_()
    x_full = x.detach().clone()
    x_full[b, idx_Br] = kept_x  # by_hand gathers these rows back out
    by_hand(model, arch, layer, x_full, idx_Br, batch).backward(g[b, idx_Br])
    rows = real_rows(batch, idx_Br)
    torch.testing.assert_close(x.grad[b, idx_Br][rows], kept_x.grad[rows], atol=1e-5, rtol=1e-4)
    for name, p in layer.named_parameters():
        torch.testing.assert_close(wrapped_grads[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)
    assert not torch.equal(x.grad[b, idx_Br], g[b, idx_Br])  # kept ones went through the layer


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_eval_runs_the_full_sequence(arch: str) -> None:
    plain = tiny_model(arch).eval()
    model = apply_random_ltd(copy.deepcopy(plain), ltd_config())
    set_reserved_length(model, 4)
    batch = padded_batch(arch, "left")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, plain(**batch).logits)
    assert all(layer.ltd_kept_indices is None for layer in dropping_layers(model))


def test_gradient_checkpointing_replays_the_same_drops() -> None:
    """Checkpointing wraps the whole dropping layer and restores the RNG on recompute: the
    gradients equal those of the same seeded step without it."""
    grads = []
    for checkpointing in (False, True):
        model = apply_random_ltd(tiny_model("llama"), ltd_config())
        if checkpointing:
            model.activation_checkpointing_enable()
        set_reserved_length(model, 5)
        torch.manual_seed(7)
        model(**padded_batch("llama", "none")).logits.square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)


def test_state_dict_pickle_and_loading_into_the_plain_model(tmp_path: Path) -> None:
    """Keys unchanged: a strict load into the plain model, and save_pretrained/from_pretrained
    give the plain classes back; pickle finds the dropping class by name."""
    model = apply_random_ltd(tiny_model("qwen2"), ltd_config())
    plain = tiny_model("qwen2", seed=1)
    plain.load_state_dict(model.state_dict())  # same keys: strict load
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert not dropping_layers(reloaded)
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone.model.layers[1]) is type(model.model.layers[1])
    assert hf.RandomLTDQwen2DecoderLayer is type(model.model.layers[1])  # by name, for pickle
    assert isinstance(
        model.model.layers[1], transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer
    )
    model.eval(), plain.eval(), clone.eval()
    ids = padded_batch("qwen2", "none")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, plain(ids).logits)
        torch.testing.assert_close(clone(ids).logits, plain(ids).logits)
        torch.testing.assert_close(reloaded(ids).logits, plain(ids).logits)


def test_hidden_states_recorded_by_transformers_are_full_length() -> None:
    model = apply_random_ltd(tiny_model("llama"), ltd_config())
    set_reserved_length(model, 4)
    out = model(**padded_batch("llama", "none"), output_hidden_states=True)
    assert [tuple(h.shape) for h in out.hidden_states] == [(B, S, HIDDEN)] * 5


# Clear errors ------------------------------------------------------------------------------------


def test_unsupported_architecture_names_the_supported_ones() -> None:
    opt = AutoModelForCausalLM.from_config(
        OPTConfig(
            hidden_size=16,
            num_hidden_layers=2,
            ffn_dim=32,
            num_attention_heads=2,
            vocab_size=V,
            max_position_embeddings=S,
            word_embed_proj_dim=16,
        )
    )
    with pytest.raises(ValueError, match="gpt2, llama, mistral, qwen2, bert.*'opt'"):
        apply_random_ltd(opt, ltd_config())


def test_unsupported_attention_implementation_is_refused() -> None:
    model = tiny_model("llama", impl="flex_attention")
    with pytest.raises(ValueError, match="eager or sdpa.*'flex_attention'"):
        apply_random_ltd(model, ltd_config())


def test_a_plans_config_chooses_the_layers() -> None:
    """A RandomLTDConfig with explicit layer_ids (as every plan's is) wraps exactly those."""
    model = tiny_model("bert")
    apply_random_ltd(model, ltd_config(layer_ids=(0, 2)))
    stack = hf.layer_stack(model)
    assert [isinstance(x, hf.RandomLTDLayerMixin) for x in stack] == [True, False, True, False]
    assert dropping_layers(model) == [stack[0], stack[2]]


def test_misuse_is_refused() -> None:
    model = tiny_model("gpt2")
    with pytest.raises(ValueError, match="call apply_random_ltd first"):
        set_reserved_length(model, 4)
    with pytest.raises(ValueError, match=r"layer_ids \[7\] outside"):
        apply_random_ltd(model, ltd_config(layer_ids=(1, 7)))
    apply_random_ltd(model, ltd_config())
    with pytest.raises(ValueError, match="already applied"):
        apply_random_ltd(model, ltd_config())
    with pytest.raises(ValueError, match="at least 1"):
        set_reserved_length(model, 0)
    six = tiny_model("gpt2", num_layers=6)
    with pytest.raises(ValueError, match="plan is for 4 layers.*has 6"):
        apply_random_ltd(six, tiny_plan(model))


# The plan in training ----------------------------------------------------------------------------


def tiny_plan(model: PreTrainedModel, **request: Any) -> Plan:
    """A plan for `model` itself (its config.json), S = 2 * 16 = 32 tokens, G = 4."""
    return make_plan(
        {
            "model": json.loads(model.config.to_json_string()),
            "train_batch_size": 4,
            "train_steps": 8,
            "random_ltd": {"min_value": 8, "seq_per_step": 8, "require_steps": 6},
            **request,
        }
    )


class CutToCurriculum(TrainerCallback):
    """The data pipeline's part of curriculum learning (seqlen_truncate), for the test: each
    training forward sees its step's first c tokens."""

    def __init__(self, ltd: RandomLTDCallback, model: nn.Module) -> None:
        def cut(module: nn.Module, args: Any, kwargs: dict[str, Any]) -> Any:
            c = ltd.current.seqlen if ltd.current is not None else None
            cut_names = ("input_ids", "attention_mask", "labels")
            return args, {k: v[:, :c] if k in cut_names else v for k, v in kwargs.items()}

        model.register_forward_pre_hook(cut, with_kwargs=True)


class LRProbe(TrainerCallback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.lrs.append(kwargs["optimizer"].param_groups[0]["lr"])


def train_with_plan(p: Plan, model: Any, tmp_path: Path, curriculum: bool = False) -> Any:
    """8 Trainer steps on the CPU, G = 2 per device x 2 accumulation = the plan's 4."""
    ltd = RandomLTDCallback(p)
    probe = LRProbe()
    callbacks = [ltd, probe] + ([CutToCurriculum(ltd, model)] if curriculum else [])
    ids = torch.randint(V, (32, 2 * S), generator=torch.Generator().manual_seed(4))
    args = TrainingArguments(
        str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=8,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    opt = torch.optim.AdamW(model.parameters())
    optimizers = (opt, LayerTokenLRScheduler(opt, p)) if p.lr is not None else (None, None)
    data = [{"input_ids": x, "labels": x} for x in ids]
    Trainer(model, args, train_dataset=data, callbacks=callbacks, optimizers=optimizers).train()
    return ltd, probe


def test_callback_follows_the_plan_step_by_step(tmp_path: Path) -> None:
    """Each step's dropping layers ran the plan's r (what they ran, recorded by hooks), the
    LayerTokens the layers processed equal the plan's per step and in total, and the optimizer
    ran the plan's LayerToken learning rate."""
    model = tiny_model("llama")
    p = tiny_plan(model, lr={"peak_lr": 1e-3, "warmup_tokens": 200, "decay_tokens": 800})
    apply_random_ltd(model, p)
    ltd, probe = train_with_plan(p, model, tmp_path)
    series = runs_for_plan(p).ltd.series(np.arange(8), p.lr)
    changes = dict(p.schedule)  # the plan document's [step, r] change points
    r_doc = [changes[max(s for s in changes if s <= t)] for t in range(8)]
    assert [rec.step for rec in ltd.history] == list(range(8))
    assert [rec.forwards for rec in ltd.history] == [2] * 8
    kept = [min(rec.kept_lengths, default=2 * S) for rec in ltd.history]
    assert kept == r_doc == [8, 8, 16, 16, 24, 24, 32, 32]
    assert all(len(rec.kept_lengths) <= 1 for rec in ltd.history)
    assert [rec.layer_tokens for rec in ltd.history] == series.layer_tokens.tolist()
    assert ltd.layer_tokens == series.cumulative_layer_tokens[-1]
    # Megatron's counter before each step, summed here from the per-step effective tokens.
    before = np.concatenate(([0], np.cumsum(series.effective_tokens)[:-1]))
    np.testing.assert_allclose(probe.lrs, learning_rate(before, p.lr), rtol=1e-12)
    assert probe.lrs[0] == 0.0 and max(probe.lrs) > 0


def test_callback_with_a_curriculum_composed_plan(tmp_path: Path) -> None:
    """Curriculum learning starts below r: dropping waits until c exceeds r; the actual
    LayerTokens (the plan's counter under CL) match when sequences are cut to c."""
    model = tiny_model("gpt2")
    p = tiny_plan(
        model,
        curriculum={
            "min_difficulty": 8,
            "max_difficulty": 2 * S,
            "schedule_config": {"total_curriculum_step": 6, "difficulty_step": 8},
        },
    )
    apply_random_ltd(model, p)
    ltd, _ = train_with_plan(p, model, tmp_path, curriculum=True)
    series = runs_for_plan(p).ltd.series(np.arange(8))
    want_r = [
        int(r) if d else None for r, d in zip(series.reserved_length, series.dropping, strict=True)
    ]
    assert [rec.reserved_length for rec in ltd.history] == want_r
    assert want_r[0] is None and any(want_r)  # c = 8 <= r at first, dropping later
    assert [min(rec.kept_lengths, default=None) for rec in ltd.history] == want_r
    assert [rec.seqlen for rec in ltd.history] == series.seqlen.tolist()
    assert [rec.layer_tokens for rec in ltd.history] == series.layer_tokens.tolist()


def test_callback_refuses_a_model_without_the_plan_applied(tmp_path: Path) -> None:
    model = tiny_model("bert")
    p = tiny_plan(model)
    with pytest.raises(ValueError, match="call apply_random_ltd"):
        train_with_plan(p, model, tmp_path)


def test_callback_warns_when_the_trainers_batch_is_not_the_plans() -> None:
    model = tiny_model("llama")
    p = tiny_plan(model)  # G = 4
    apply_random_ltd(model, p)
    args = SimpleNamespace(
        per_device_train_batch_size=2, gradient_accumulation_steps=1, world_size=1
    )
    with pytest.warns(UserWarning, match="global batch is 2 sequences, the plan's 4"):
        RandomLTDCallback(p).on_train_begin(args, None, None, model=model)


def test_lr_scheduler_needs_a_plan_with_lr() -> None:
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="no learning-rate schedule"):
        LayerTokenLRScheduler(torch.optim.SGD(model.parameters()), tiny_plan(model))


def test_lr_scheduler_state_dict_is_plain() -> None:
    model = tiny_model("llama")
    p = tiny_plan(model, lr={"peak_lr": 1e-3, "decay_tokens": 800})
    opt = torch.optim.SGD(model.parameters())
    sched = LayerTokenLRScheduler(opt, p)
    opt.step(), sched.step(), sched.step()
    state = sched.state_dict()
    assert state["last_epoch"] == 2 and "run" not in state
    again = LayerTokenLRScheduler(torch.optim.SGD(model.parameters()), p)
    again.load_state_dict(state)
    assert again.last_epoch == 2


# The README's example ----------------------------------------------------------------------------


def readme_example() -> str:
    """The python block of README.md's "Train with the plan in Hugging Face Transformers"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Train with the plan in Hugging Face Transformers", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


# Trainer pins its batches' memory by default; on a machine without a GPU torch warns that it
# cannot (a fact of this machine, not of the example).
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
def test_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example, substituted nothing (its model is already the tiny one it says it is),
    trains 20 steps on the CPU with the plan's schedule."""
    code = readme_example()
    assert len([x for x in code.splitlines() if x and not x.startswith(" ")]) <= 12
    made: list[RandomLTDCallback] = []

    class Spy(RandomLTDCallback):  # the same callback, remembered so its record can be read
        def __init__(self, plan: Plan) -> None:
            super().__init__(plan)
            made.append(self)

    monkeypatch.setattr(hf, "RandomLTDCallback", Spy)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    p, model = namespace["p"], namespace["model"]
    assert [type(x).__name__ for x in dropping_layers(model)] == ["RandomLTDLlamaDecoderLayer"] * 2
    (ltd,) = made
    series = runs_for_plan(p).ltd.series(np.arange(20))
    assert len(ltd.history) == p.random_ltd.steps == 20
    assert [min(rec.kept_lengths, default=64) for rec in ltd.history] == (
        series.reserved_length.tolist()
    )
    assert ltd.layer_tokens == p.random_ltd.layer_tokens
