"""A Hugging Face `config.json` read into a `ModelShape`, and a request's model in any form.

`HFConfig` types the keys the planner reads, so a value of the wrong type or out of bounds is
refused, with its path, when the request is read. `from_hf_config` then reads the typed fields
and checks only what a type cannot say: which keys each architecture needs. `ModelSpec` is a
request's `model` (a preset's name, an explicit shape or a config.json) and `resolve_model`
turns any of the three into a shape.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    ValidationError,
)

from planner.errors import PlanInputError, input_error_from
from planner.models import MAX_VOCAB, ModelShape
from planner.presets import get_preset

HFInt = Annotated[int, Field(ge=1, le=10**9)]


def _two_sides(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return tuple(value) if isinstance(value, list) else value  # a tuple even in strict mode


# ViT's image_size: one side (a square) or [height, width]; read as [height, width].
ImageSize = Annotated[
    tuple[HFInt, HFInt],
    BeforeValidator(_two_sides, json_schema_input_type=HFInt | tuple[HFInt, HFInt]),
]


# An object is an explicit ModelShape when it has `num_layers`, or `hidden_size` without
# `num_hidden_layers`; any other object is a config.json (the schema says so: HFConfig excludes
# these two forms). Hugging Face configs name their layers n_layer or num_hidden_layers.
SHAPE_FORMS: list[JsonValue] = [
    {"required": ["num_layers"]},
    {"required": ["hidden_size"], "not": {"required": ["num_hidden_layers"]}},
]


def _is_shape(value: dict[str, Any]) -> bool:
    return "num_layers" in value or "hidden_size" in value and "num_hidden_layers" not in value


class HFConfig(BaseModel):
    """A Hugging Face `config.json` (GPT-2, BERT/RoBERTa, Llama/Mistral/Qwen2 or ViT): the keys
    the planner reads, typed; every other key of the file is allowed and ignored (an object of
    SHAPE_FORMS is a ModelShape instead)."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        allow_inf_nan=False,
        serialize_by_alias=True,  # `_name_or_path`, as the file spells it
        json_schema_extra={"not": {"anyOf": SHAPE_FORMS}},
    )

    model_type: str | None = Field(None, max_length=100, description="gpt2, bert, llama, vit...")
    name_or_path: str | None = Field(None, alias="_name_or_path", max_length=1000)
    n_embd: HFInt | None = Field(None, description="GPT-2: hidden size.")
    n_layer: HFInt | None = Field(None, description="GPT-2: layers.")
    n_head: HFInt | None = Field(None, description="GPT-2: heads.")
    n_inner: HFInt | None = Field(None, description="GPT-2: FFN size (null: 4 n_embd).")
    n_positions: HFInt | None = Field(None, description="GPT-2: sequence length.")
    n_ctx: HFInt | None = Field(None, description="GPT-2: sequence length (older configs).")
    vocab_size: HFInt | None = None
    hidden_size: HFInt | None = None
    num_hidden_layers: HFInt | None = None
    num_attention_heads: HFInt | None = None
    num_key_value_heads: HFInt | None = Field(None, description="Llama: grouped-query heads.")
    intermediate_size: HFInt | None = None
    max_position_embeddings: HFInt | None = None
    hidden_act: str | None = Field(None, max_length=100, description="silu: a Llama-like MLP.")
    tie_word_embeddings: bool | None = None
    image_size: ImageSize | None = Field(
        None, description="ViT: one side, or [height, width], in pixels."
    )
    patch_size: HFInt | None = Field(None, description="ViT: patch side in pixels.")
    num_channels: HFInt | None = Field(None, description="ViT: image channels.")
    num_labels: HFInt | None = Field(None, description="ViT: classes (without id2label).")
    id2label: dict[str, Annotated[str, Field(max_length=1000)]] | None = Field(
        None, max_length=MAX_VOCAB, description="ViT: the classes."
    )


def _model_kind(value: Any) -> str:
    """Which of ModelSpec's forms a value is: a name, our shape, or a Hugging Face config."""
    if isinstance(value, str):
        return "preset name"
    if isinstance(value, ModelShape):
        return "model shape"
    if isinstance(value, HFConfig):
        return "config.json"
    if isinstance(value, dict) and _is_shape(value):
        return "model shape"
    return "config.json"


# A request's model: a preset's name, an explicit shape (our field names), or a Hugging Face
# config.json object. The value's keys choose the form, so errors name that form's fields.
ModelSpec = Annotated[
    Annotated[str, Field(max_length=200), Tag("preset name")]
    | Annotated[ModelShape, Tag("model shape")]
    | Annotated[HFConfig, Tag("config.json")],
    Discriminator(_model_kind),
]

T = TypeVar("T")


def _needed(value: T | None, key: str) -> T:
    """A key the config's architecture needs: without it the config is refused, naming the key
    (its type and bounds were checked when the config was read)."""
    if value is None:
        raise PlanInputError("model", f"Hugging Face config lacks {key}")
    return value


def from_hf_config(cfg: HFConfig) -> ModelShape:
    """The shape of a Hugging Face config (GPT-2, BERT, Llama/Mistral or ViT key names); the
    architecture comes from `model_type`, else from the keys only one of them has."""
    kind = (cfg.model_type or "").lower()
    name = cfg.name_or_path or kind or None  # ModelShape keeps the name to NAME_CHARS
    if kind == "gpt2" or cfg.n_embd is not None:
        hidden = _needed(cfg.n_embd, "n_embd")
        return ModelShape(
            name=name,
            arch="gpt",
            num_layers=_needed(cfg.n_layer, "n_layer"),
            hidden_size=hidden,
            num_heads=_needed(cfg.n_head, "n_head"),
            ffn_hidden_size=cfg.n_inner or 4 * hidden,
            vocab_size=_needed(cfg.vocab_size, "vocab_size"),
            seq_len=_needed(cfg.n_positions or cfg.n_ctx, "n_positions or n_ctx"),
        )
    if kind == "vit" or cfg.patch_size is not None:
        height, width = _needed(cfg.image_size, "image_size")
        patch = _needed(cfg.patch_size, "patch_size")
        return ModelShape(
            name=name,
            arch="vit",
            num_layers=_needed(cfg.num_hidden_layers, "num_hidden_layers"),
            hidden_size=_needed(cfg.hidden_size, "hidden_size"),
            num_heads=_needed(cfg.num_attention_heads, "num_attention_heads"),
            ffn_hidden_size=_needed(cfg.intermediate_size, "intermediate_size"),
            vocab_size=len(cfg.id2label or {}) or cfg.num_labels or 1000,
            seq_len=(height // patch) * (width // patch) + 1,
            patch_size=patch,
            num_channels=cfg.num_channels or 3,
        )
    llama_like = kind in {"llama", "mistral", "qwen2"} or cfg.hidden_act == "silu"
    if kind not in {"bert", "roberta"} and not llama_like:
        raise PlanInputError(
            "model", f"unsupported Hugging Face model_type {kind!r} (gpt2, bert, llama, vit)"
        )
    common = dict(
        num_layers=_needed(cfg.num_hidden_layers, "num_hidden_layers"),
        hidden_size=_needed(cfg.hidden_size, "hidden_size"),
        num_heads=_needed(cfg.num_attention_heads, "num_attention_heads"),
        ffn_hidden_size=_needed(cfg.intermediate_size, "intermediate_size"),
        vocab_size=_needed(cfg.vocab_size, "vocab_size"),
        seq_len=_needed(cfg.max_position_embeddings, "max_position_embeddings"),
    )
    if not llama_like:
        return ModelShape(name=name, arch="bert", **common)
    return ModelShape(
        name=name,
        arch="gpt",
        activation="swiglu",
        position="rotary",
        bias=False,
        norm="rmsnorm",
        tie_embeddings=bool(cfg.tie_word_embeddings),
        num_kv_heads=cfg.num_key_value_heads,
        **common,
    )


def resolve_model(spec: str | ModelShape | HFConfig, field: str = "model") -> ModelShape:
    """The shape of a request's model (`ModelSpec`, as read): a preset's name, an explicit shape,
    or a Hugging Face config. A shape its values break (heads that do not divide the hidden
    size) raises PlanInputError under `field`."""
    try:
        if isinstance(spec, ModelShape):
            return spec
        if isinstance(spec, HFConfig):
            return from_hf_config(spec)
        return get_preset(spec, field)
    except ValidationError as exc:
        raise input_error_from(exc, prefix=field) from None
