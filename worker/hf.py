"""Random-LTD for Hugging Face Transformers models: apply a plan, train with its schedule.

    p = planner.plan({...})              # the schedule: reserved length r per step, LayerTokens
    apply_random_ltd(model, p)           # the plan's dropping layers now drop tokens in training
    Trainer(model, ..., callbacks=[RandomLTDCallback(p)]).train()

This is the only module of the project that imports Transformers (the `hf` extra).

What a dropping layer does (training mode, reserved length r below the batch's length S): each
sample keeps an independent uniform r-subset of its positions, in sequence order
(`worker.token_drop.sample_kept_indices`), and the layer runs on those r tokens with every
per-token input cut to match:

- hidden states (B, S, H) -> (B, r, H);
- rotary angles (Llama, Mistral, Qwen2): the model computes (cos, sin) once for positions
  0..S-1 and hands them to every layer; a dropping layer gets its kept tokens' own rows (B, r, D),
  so each token is rotated by its original position (DeepSpeed passes them unchanged, rotating a
  kept token as if it sat at its new index); `position_ids` likewise;
- the attention mask: the 4D mask the model built for its attention implementation (eager: an
  additive float mask; sdpa: a boolean one), with causality, padding and any sliding window in it,
  cut to the kept tokens' rows and columns (B, 1, r, r). Where the model left the mask out (None:
  sdpa without padding, the attention module then uses `is_causal`), it stays None: kept tokens
  keep their order, so "causal among the kept tokens" is causal by original position.

GPT-2 and BERT add absolute position embeddings before the first layer, so their layers need no
positions. The layer's outputs are restored into the full sequence
(`worker.token_drop.drop_apply_restore`): a dropped token leaves the layer unchanged and its
gradient passes straight through; a kept token's flows through the layer.

How it is applied: each dropping layer's class is swapped, in place, for a subclass that adds the
above around the original `forward` (`LlamaDecoderLayer` -> `RandomLTDLlamaDecoderLayer`, the way
FSDP2's `fully_shard` swaps classes). Parameters, buffers and `state_dict` keys are unchanged (a
checkpoint saves and loads as the plain model's, `save_pretrained` included); `isinstance` still
holds, so Transformers' output-recording hooks see full sequences and gradient checkpointing wraps
the whole dropping layer (its recompute replays the same random drops: checkpointing restores
the RNG state).

Evaluation: `model.eval()` runs every layer on the full sequence, as the paper evaluates.

Supported: model types in ARCHITECTURES, attention implementations in ATTENTION_IMPLEMENTATIONS.
Flash-attention and flex-attention take their masks in other forms (a 2D padding mask with
packed positions, a BlockMask) and are refused with that reason. Not supported: cross-attention
layers, and a filled key/value cache (dropping is for training; generation runs in eval mode). A
key/value cache that a training forward builds gets nothing from a dropping layer.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from transformers import PretrainedConfig, TrainerCallback

from planner.calibration import runs_for_plan
from planner.document import Plan
from planner.lr import LRConfig
from planner.models import ModelShape
from planner.run import Run
from planner.schedule import RandomLTDConfig, default_ltd_layer_ids
from worker.token_drop import drop_apply_restore, gather_tokens, sample_kept_indices

# model_type -> (package under transformers.models, the class of one transformer layer).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "gpt2": ("gpt2", "GPT2Block"),
    "llama": ("llama", "LlamaDecoderLayer"),
    "mistral": ("mistral", "MistralDecoderLayer"),
    "qwen2": ("qwen2", "Qwen2DecoderLayer"),
    "bert": ("bert", "BertLayer"),
}
# The names a layer's key/value cache goes by (Transformers 5 renamed past_key_values to cache).
CACHE_ARGUMENTS = ("cache", "past_key_values", "layer_past")
# Attention implementations whose masks are a 4D tensor (or None): rows and columns select.
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


# The dropping layer ----------------------------------------------------------------------------


class RandomLTDLayerMixin(nn.Module):
    """What a dropping layer adds to a Transformers layer class (module docstring).

    Attributes, per layer: `ltd_reserved_length` (tokens kept per sample in training; None: no
    dropping; set by `set_reserved_length`), and from the last forward `ltd_kept_indices` (the
    (B, r) sorted positions kept, None when the layer ran the full sequence) and
    `ltd_tokens_run` (tokens the layer processed: B * r or B * S).
    """

    ltd_reserved_length: int | None = None
    ltd_kept_indices: Tensor | None = None
    ltd_tokens_run: int = 0
    _ltd_argument_names: tuple[str, ...] = ()  # set per class by _dropping_class

    def forward(self, hidden_states: Tensor, *args: Any, **kwargs: Any) -> Any:
        x_BSH = hidden_states
        B, S = x_BSH.shape[:2]
        r = self.ltd_reserved_length
        if not self.training or r is None or r >= S:
            self.ltd_kept_indices, self.ltd_tokens_run = None, B * S
            return super().forward(x_BSH, *args, **kwargs)
        named = _named_arguments(self._ltd_argument_names, args, kwargs)
        idx_Br = sample_kept_indices(B, S, r, device=x_BSH.device)
        kept_inputs = _gather_side_inputs(named, idx_Br, S)
        self.ltd_kept_indices, self.ltd_tokens_run = idx_Br, B * r
        layer_forward = super().forward
        extras: list[tuple[Any, ...]] = []

        def run_kept(kept_BrH: Tensor) -> Tensor:
            out = layer_forward(kept_BrH, **kept_inputs)
            if isinstance(out, tuple):  # older layers return (hidden, attention weights, ...)
                extras.append(out[1:])
                return out[0]
            return out

        out_BSH = drop_apply_restore(x_BSH, idx_Br, run_kept, seq_dim=1)
        return (out_BSH, *extras[0]) if extras else out_BSH


_DROPPING_CLASSES: dict[type, type] = {}


def _dropping_class(base: type[nn.Module]) -> type[nn.Module]:
    """`RandomLTD<Base>`, a subclass of `base` with the mixin's forward, made once per class and
    kept in this module's namespace so that pickling finds it by name."""
    cls = _DROPPING_CLASSES.get(base)
    if cls is None:
        name = f"RandomLTD{base.__name__}"
        namespace = {"__module__": __name__, "_ltd_argument_names": _argument_names(base)}
        cls = type(name, (RandomLTDLayerMixin, base), namespace)
        cls.__qualname__ = name
        _DROPPING_CLASSES[base] = cls
        globals()[name] = cls
    return cls


def __getattr__(name: str) -> type[nn.Module]:
    """`RandomLTD<Layer>` classes on demand, so that a pickled model unpickles in a fresh
    process (pickle finds classes by module and name)."""
    for module, layer_class in ARCHITECTURES.values():
        if name == f"RandomLTD{layer_class}":
            return _dropping_class(_layer_class(module, layer_class))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _argument_names(base: type[nn.Module]) -> tuple[str, ...]:
    """The names of a layer's positional-or-keyword inputs after `hidden_states` (GPT-2 and
    BERT pass the mask and the cache positionally)."""
    params = list(inspect.signature(base.forward).parameters.values())[2:]  # self, hidden
    return tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)


def _named_arguments(
    names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """A layer's inputs after `hidden_states` as one dict by parameter name."""
    if len(args) > len(names):
        raise TypeError(f"{len(args)} positional inputs, the layer takes at most {len(names)}")
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _gather_side_inputs(named: dict[str, Any], idx_Br: Tensor, seq_len: int) -> dict[str, Any]:
    """The layer's other inputs cut to the kept tokens: the attention mask's rows and columns,
    the rotary (cos, sin) rows and the position ids; everything else as it was."""
    if named.get("encoder_hidden_states") is not None:
        raise NotImplementedError("random-LTD does not support cross-attention layers")
    out = dict(named)
    for name in CACHE_ARGUMENTS:
        if named.get(name) is not None:
            # A training forward's cache: keep the kept tokens out of it. (A cache filled by
            # earlier calls makes the mask longer than the sequence: gather_mask refuses it.)
            out[name] = None
    if named.get("attention_mask") is not None:
        out["attention_mask"] = gather_mask(named["attention_mask"], idx_Br, seq_len)
    if named.get("position_embeddings") is not None:
        out["position_embeddings"] = tuple(
            gather_per_token(t, idx_Br) for t in named["position_embeddings"]
        )
    if named.get("position_ids") is not None:
        out["position_ids"] = gather_per_token(named["position_ids"], idx_Br)
    return out


def gather_per_token(t_bS: Tensor, idx_Br: Tensor) -> Tensor:
    """Rows of a per-token tensor (b, S, ...) with b = B or 1 (shared by the batch, as the
    rotary angles and position ids of an unpadded batch are): (B, r, ...)."""
    if t_bS.shape[0] == 1:
        return t_bS[0][idx_Br]  # (B, r, ...) by advanced indexing, no (B, S, ...) copy
    return gather_tokens(t_bS, idx_Br, seq_dim=1)


def gather_mask(mask: Any, idx_Br: Tensor, seq_len: int) -> Tensor:
    """The kept tokens' rows and columns of a 4D attention mask (b, h, S, S), b = B or 1, of
    either kind (boolean: True attends; float: added to the scores): (B, h, r, r)."""
    if not isinstance(mask, Tensor) or mask.dim() != 4:
        raise TypeError(
            f"random-LTD needs the attention mask as a 4D tensor or None, got {type(mask).__name__}"
            f"{'' if not isinstance(mask, Tensor) else f' of shape {tuple(mask.shape)}'}: load "
            f"the model with attn_implementation in {ATTENTION_IMPLEMENTATIONS}"
        )
    if tuple(mask.shape[-2:]) != (seq_len, seq_len):
        raise ValueError(
            f"attention mask of shape {tuple(mask.shape)} for {seq_len} tokens: dropping layers "
            "attend within the sequence (no filled key/value cache, no prefix)"
        )
    B, r = idx_Br.shape
    heads = mask.shape[1]
    mask_BhSS = mask.expand(B, heads, seq_len, seq_len)
    rows = idx_Br[:, None, :, None].expand(B, heads, r, seq_len)
    mask_BhrS = mask_BhSS.gather(2, rows)
    cols = idx_Br[:, None, None, :].expand(B, heads, r, r)
    return mask_BhrS.gather(3, cols)  # (B, h, r, r)


# Applying a plan -------------------------------------------------------------------------------


def _layer_class(module: str, name: str) -> type[nn.Module]:
    modeling = importlib.import_module(f"transformers.models.{module}.modeling_{module}")
    cls: type[nn.Module] = getattr(modeling, name)
    return cls


def layer_stack(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer layers (e.g. `model.model.layers` of a Llama, or
    `model.transformer.h` of a GPT-2), whatever head it carries; a clear error for a model type
    or an attention implementation this module does not support."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"random-LTD supports Transformers model types {', '.join(ARCHITECTURES)}; "
            f"{type(model).__name__} has model_type {model_type!r}"
        )
    impl = getattr(config, "_attn_implementation", None)
    if impl not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"random-LTD supports attn_implementation {' or '.join(ATTENTION_IMPLEMENTATIONS)} "
            f"(4D masks whose rows and columns it selects), this model uses {impl!r}: load it "
            "with attn_implementation='sdpa'"
        )
    if getattr(config, "add_cross_attention", False):
        raise ValueError("random-LTD does not support models with cross-attention layers")
    layer_cls = _layer_class(*ARCHITECTURES[model_type])
    stacks = [
        m
        for m in model.modules()
        if isinstance(m, nn.ModuleList) and len(m) and all(isinstance(x, layer_cls) for x in m)
    ]
    if len(stacks) != 1:
        raise ValueError(
            f"expected one list of {layer_cls.__name__} in the model, found {len(stacks)}"
        )
    return stacks[0]


def dropping_layers(model: nn.Module) -> list[RandomLTDLayerMixin]:
    """The model's dropping layers, in order (empty before `apply_random_ltd`)."""
    return [m for m in model.modules() if isinstance(m, RandomLTDLayerMixin)]


def apply_random_ltd(model: nn.Module, plan: Plan | RandomLTDConfig) -> nn.Module:
    """Make the plan's dropping layers of a Transformers model drop tokens in training, in place,
    and return the model (module docstring: what a dropping layer does, what is supported).

    `plan` is a `planner.document.Plan` (its `random_ltd_config.layer_ids` are explicit; its
    model must have as many layers as this one) or a bare `RandomLTDConfig` (`layer_ids` None:
    all but the first and last layer, the paper's). Every dropping layer starts with no reserved
    length (it runs the full sequence) until `set_reserved_length` or `RandomLTDCallback` sets
    one. Parameters and state_dict keys are unchanged.
    """
    stack = layer_stack(model)
    num_layers = len(stack)
    cfg = plan.random_ltd_config if isinstance(plan, Plan) else plan
    if isinstance(plan, Plan) and plan.model.num_layers != num_layers:
        raise ValueError(
            f"the plan is for {plan.model.num_layers} layers, {type(model).__name__} has "
            f"{num_layers}: plan with this model's config"
        )
    layer_ids = cfg.layer_ids if cfg.layer_ids is not None else default_ltd_layer_ids(num_layers)
    outside = [i for i in layer_ids if not 0 <= i < num_layers]
    if outside:
        raise ValueError(f"layer_ids {outside} outside the model's layers 0..{num_layers - 1}")
    if dropping_layers(model):
        raise ValueError("random-LTD is already applied to this model")
    _make_dropping(stack, layer_ids)
    return model


def _make_dropping(stack: nn.ModuleList, layer_ids: tuple[int, ...]) -> None:
    """Swap the class of each of `layer_ids` for its dropping subclass, no reserved length."""
    for i in sorted(set(layer_ids)):
        layer = stack[i]
        layer.__class__ = _dropping_class(type(layer))
        assert isinstance(layer, RandomLTDLayerMixin)  # internal invariant
        layer.ltd_reserved_length = None


def set_reserved_length(model: nn.Module, reserved_length: int | None) -> None:
    """Set every dropping layer's reserved length (tokens kept per sample in training); None, or
    a length at least the batch's sequence length, drops nothing. For training loops of your own
    (per step: `planner.calibration.runs_for_plan(plan).ltd.series(steps)`, its
    `reserved_length` where `dropping`, else None) and for tests."""
    if reserved_length is not None and reserved_length < 1:
        raise ValueError(f"reserved_length must be at least 1 or None, got {reserved_length}")
    layers = dropping_layers(model)
    if not layers:
        raise ValueError("the model has no dropping layers: call apply_random_ltd first")
    for layer in layers:
        layer.ltd_reserved_length = reserved_length


# The plan's schedule, step by step -------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStep:
    """One optimizer step of the plan's random-LTD run (`planner.run.Run.series`)."""

    step: int
    reserved_length: int | None  # r on the dropping layers; None where nothing is dropped
    seqlen: int  # c, curriculum learning's sequence length (S without it)
    layer_tokens: int  # the plan's LayerTokens for the step
    cumulative_layer_tokens: int  # through the step
    lr: float | None  # the LayerToken learning rate (Megatron's counter before the step)


def planned_step(run: Run, step: int, lr: LRConfig | None = None) -> PlannedStep:
    """The plan's figures at optimizer step `step` (counted from 0)."""
    s = run.series(np.array([step], dtype=np.int64), lr)
    return PlannedStep(
        step=step,
        reserved_length=int(s.reserved_length[0]) if bool(s.dropping[0]) else None,
        seqlen=int(s.seqlen[0]),
        layer_tokens=int(s.layer_tokens[0]),
        cumulative_layer_tokens=int(s.cumulative_layer_tokens[0]),
        lr=None if s.lr is None else float(s.lr[0]),
    )


# Trainer callback ------------------------------------------------------------------------------


@dataclass
class StepRecord:
    """What one optimizer step of training used, as the callback saw it."""

    step: int
    reserved_length: int | None  # set from the plan (None: no dropping)
    seqlen: int  # the plan's sequence length c for the step (S without curriculum learning)
    kept_lengths: set[int] = field(default_factory=set)  # lengths the dropping layers ran
    layer_tokens: int = 0  # tokens processed, summed over every layer and micro-batch
    forwards: int = 0  # training forwards (micro-batches) seen


class RandomLTDCallback(TrainerCallback):
    """A `transformers.Trainer` callback that runs the plan's random-LTD schedule.

    Before each optimizer step t it sets every dropping layer's reserved length to the plan's
    r(t) (None where the plan drops nothing: r >= S, or r >= c under curriculum learning). During
    the step it counts the tokens each of the model's layers processed in training forwards
    (dropping layers: B * r, the others: B * S) and records, in `history`, one StepRecord a step;
    `layer_tokens` is the running total. These are the plan's LayerTokens when the Trainer's
    global batch is the plan's `train_batch_size` (a warning says when it is not) and its
    sequences have the plan's length (c under a length curriculum: cutting sequences to c is the
    data pipeline's job, as in DeepSpeed; `current.seqlen` says c). One case differs by
    definition: with `max_value` below S, DeepSpeed's counter (the plan's) counts the full
    layers at max_value tokens, while they process S. The plan's LayerToken learning rate is
    `LayerTokenLRScheduler`.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.run = runs_for_plan(plan).ltd
        self.history: list[StepRecord] = []
        self.layer_tokens = 0
        self.current: StepRecord | None = None
        self._pending: dict[int, tuple[int, int | None]] = {}  # layer -> (tokens, kept r)
        self._handles: list[Any] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        stack = layer_stack(model)
        ids = tuple(i for i, layer in enumerate(stack) if isinstance(layer, RandomLTDLayerMixin))
        if ids != tuple(sorted(set(self.plan.random_ltd_config.layer_ids or ()))):
            raise ValueError(
                f"the model's dropping layers {ids} are not the plan's "
                f"{self.plan.random_ltd_config.layer_ids}: call apply_random_ltd(model, plan)"
            )
        rows = args.per_device_train_batch_size * args.gradient_accumulation_steps
        rows *= args.world_size
        if rows != self.plan.global_batch_size:
            warnings.warn(
                f"the Trainer's global batch is {rows} sequences, the plan's "
                f"{self.plan.global_batch_size}: LayerTokens will differ from the plan's",
                stacklevel=2,
            )
        for i, layer in enumerate(stack):
            self._handles.append(layer.register_forward_hook(self._layer_hook(i)))
        self._handles.append(model.register_forward_hook(self._model_hook))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        planned = planned_step(self.run, state.global_step)
        set_reserved_length(kwargs["model"], planned.reserved_length)
        self.current = StepRecord(state.global_step, planned.reserved_length, planned.seqlen)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.current is not None:
            self.history.append(self.current)
            self.current = None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _layer_hook(self, index: int) -> Callable[..., None]:
        def hook(layer: nn.Module, args: Any, output: Any) -> None:
            if not layer.training:
                return
            if isinstance(layer, RandomLTDLayerMixin):
                kept = layer.ltd_kept_indices
                r = None if kept is None else kept.shape[1]
                self._pending[index] = (layer.ltd_tokens_run, r)
            else:
                out = output[0] if isinstance(output, tuple) else output
                self._pending[index] = (out.shape[0] * out.shape[1], None)

        return hook

    def _model_hook(self, model: nn.Module, args: Any, output: Any) -> None:
        """One training forward (a micro-batch) done: add what its layers ran. Layers report
        into `_pending` and the model-level hook commits once, so a layer recomputed by gradient
        checkpointing is not counted twice."""
        pending, self._pending = self._pending, {}
        if not model.training or self.current is None:
            return
        tokens = sum(t for t, _ in pending.values())
        self.current.layer_tokens += tokens
        self.current.kept_lengths.update(r for _, r in pending.values() if r is not None)
        self.current.forwards += 1
        self.layer_tokens += tokens


# The LayerToken learning rate ------------------------------------------------------------------


class LayerTokenLRScheduler(torch.optim.lr_scheduler.LRScheduler):
    """The plan's LayerToken learning rate (`plan.lr`, planner.lr) as a torch LR scheduler.

    At optimizer step t (the scheduler's `last_epoch`; call `step()` after each optimizer step,
    as `Trainer` does) every parameter group's learning rate is the plan's
    `lr(C_t)`, C_t being Megatron-DeepSpeed's effective-token counter as it stood before step t
    under the plan's schedule, times the group's optional `lr_scale` (1 by default). For a
    Trainer: `Trainer(..., optimizers=(opt, LayerTokenLRScheduler(opt, plan)))`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, plan: Plan, last_epoch: int = -1) -> None:
        if plan.lr is None:
            raise ValueError(
                "the plan has no learning-rate schedule: plan with `lr` (peak_lr, decay_tokens, "
                "warmup_tokens)"
            )
        self.lr_config = plan.lr
        self.run = runs_for_plan(plan).ltd
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        lr = planned_step(self.run, max(self.last_epoch, 0), self.lr_config).lr
        assert lr is not None  # internal invariant: the series was asked for lr
        return [lr * group.get("lr_scale", 1.0) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The step and torch's own fields; the plan is not saved (rebuild it from the plan)."""
        skip = ("optimizer", "lr_config", "run")
        return {k: v for k, v in self.__dict__.items() if k not in skip}


# Validation jobs on the user's own architecture --------------------------------------------------


MODEL_CLASSES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "bert": "BertForMaskedLM"}


def architecture_for(shape: ModelShape) -> str | None:
    """The Transformers model class a validation job builds for `shape`, or None."""
    config = config_for_shape(shape)
    return None if config is None else MODEL_CLASSES[config.model_type]


def config_for_shape(shape: ModelShape) -> PretrainedConfig | None:
    """The Transformers config of a planner shape from a supported family, or None: GPT-2
    (causal, learned positions, GELU, LayerNorm, biases), Llama (causal, rotary, SwiGLU, RMSNorm,
    no biases; grouped key/value heads: a Mistral or Qwen2 config.json plans to this shape too)
    or BERT (the encoder). Random weights: nothing is downloaded."""
    from transformers import BertConfig, GPT2Config, LlamaConfig

    m = shape
    common: dict[str, Any] = {"vocab_size": m.vocab_size, "attn_implementation": "sdpa"}
    if m.arch == "gpt" and (m.position, m.activation, m.norm, m.bias) == (
        "learned", "gelu", "layernorm", True,
    ):  # fmt: skip
        return GPT2Config(
            n_embd=m.hidden_size, n_layer=m.num_layers, n_head=m.num_heads, n_inner=m.ffn_size,
            n_positions=m.seq_len, tie_word_embeddings=m.tie_embeddings,
            bos_token_id=m.vocab_size - 1, eos_token_id=m.vocab_size - 1, **common,
        )  # fmt: skip
    if m.arch == "gpt" and (m.position, m.activation, m.norm, m.bias) == (
        "rotary", "swiglu", "rmsnorm", False,
    ):  # fmt: skip
        return LlamaConfig(
            hidden_size=m.hidden_size, intermediate_size=m.ffn_size,
            num_hidden_layers=m.num_layers, num_attention_heads=m.num_heads,
            num_key_value_heads=m.kv_heads, max_position_embeddings=m.seq_len,
            tie_word_embeddings=m.tie_embeddings, **common,
        )  # fmt: skip
    if m.arch == "bert" and m.activation == "gelu" and m.norm == "layernorm":
        return BertConfig(
            hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
            num_attention_heads=m.num_heads, intermediate_size=m.ffn_size,
            max_position_embeddings=m.seq_len, **common,
        )  # fmt: skip
    return None


class TransformersModel(nn.Module):
    """A Transformers model (random weights) behind the interface a validation job trains and
    times (`worker.model.Transformer`'s): `model(tokens, reserved_length)` gives the logits, with
    the reserved length set on every dropping layer for that forward."""

    def __init__(self, shape: ModelShape, ltd_layer_ids: tuple[int, ...]) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

        config = config_for_shape(shape)
        if config is None:
            raise ValueError(
                f"no Transformers architecture matches this model ({shape.arch}, "
                f"{shape.position} positions, {shape.activation}, {shape.norm}): the "
                "implementation 'hf' times GPT-2, Llama-family and BERT configs"
            )
        auto = AutoModelForMaskedLM if shape.arch == "bert" else AutoModelForCausalLM
        self.hf = auto.from_config(config)
        self.shape, self.ltd_layer_ids = shape, tuple(ltd_layer_ids)
        self.causal, self.cls_only = shape.arch != "bert", False
        self.vocab_width = shape.vocab_size
        _make_dropping(layer_stack(self.hf), self.ltd_layer_ids)

    def forward(
        self,
        tokens_BS: Tensor,
        reserved_length: int | None = None,
        padding_mask_BS: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Logits (B, S, V) of every position."""
        if self.ltd_layer_ids:
            set_reserved_length(self.hf, reserved_length)
        out = self.hf(input_ids=tokens_BS, attention_mask=padding_mask_BS)
        logits: Tensor = out.logits
        return logits
