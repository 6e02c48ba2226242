"""Model shapes: explicit, from a preset, or from a Hugging Face `config.json`.

A `ModelShape` holds only what the numbers need: layer count, widths, heads, sequence length and
the few architecture switches that change parameter and FLOP counts. Parameter counts follow each
architecture's reference implementation (GPT-2/GPT-3, BERT, ViT, Llama) and are tested against the
published counts for every preset (within 2%).
"""

from __future__ import annotations

import difflib
from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    ValidationError,
    computed_field,
    model_validator,
)

from planner.errors import PlanInputError, input_error_from

Arch = Literal["gpt", "bert", "vit"]
Activation = Literal["gelu", "swiglu"]

# Hard ceilings that no real model reaches; they turn typos (a hidden size of 10^9) into errors.
MAX_LAYERS = 1_000
MAX_HIDDEN = 1_000_000
MAX_SEQ_LEN = 10_000_000
MAX_VOCAB = 10_000_000


NAME_CHARS = 200


def kept_to(limit: int) -> AfterValidator:
    """Free text kept to `limit` characters rather than refused (a worker's report, a display
    name that plans stored by older versions carry)."""
    return AfterValidator(lambda text: text if text is None else text[:limit])


class ModelShape(BaseModel):
    """The shape of a transformer, as far as LayerTokens, FLOPs and memory are concerned."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: Annotated[str | None, kept_to(NAME_CHARS)] = Field(
        None, description=f"Preset or model name, for display only (kept to {NAME_CHARS} chars)."
    )
    arch: Arch = Field("gpt", description="gpt (causal decoder), bert (encoder), vit (encoder).")
    num_layers: int = Field(..., ge=1, le=MAX_LAYERS, description="Transformer layers L.")
    hidden_size: int = Field(..., ge=1, le=MAX_HIDDEN, description="Hidden size h.")
    num_heads: int = Field(..., ge=1, le=MAX_HIDDEN, description="Attention (query) heads a.")
    num_kv_heads: int | None = Field(
        None,
        ge=1,
        le=MAX_HIDDEN,
        description="Key/value heads g (grouped-query attention); default a.",
    )
    ffn_hidden_size: int | None = Field(
        None, ge=1, le=MAX_HIDDEN * 8, description="FFN inner size f; default 4h."
    )
    activation: Activation = Field("gelu", description="gelu (2 MLP matrices) or swiglu (3).")
    vocab_size: int = Field(
        ..., ge=1, le=MAX_VOCAB, description="Vocabulary size V (vit: number of classes)."
    )
    seq_len: int = Field(..., ge=1, le=MAX_SEQ_LEN, description="Sequence length S in tokens.")
    position: Literal["learned", "rotary"] = Field("learned", description="Position encoding.")
    tie_embeddings: bool = Field(True, description="Output head shares the token embedding.")
    bias: bool = Field(True, description="Linear layers carry biases.")
    norm: Literal["layernorm", "rmsnorm"] = Field("layernorm", description="Normalisation.")
    patch_size: int = Field(16, ge=1, le=10_000, description="vit only: patch side in pixels.")
    num_channels: int = Field(3, ge=1, le=10_000, description="vit only: image channels.")
    published_params: int | None = Field(
        None,
        ge=0,
        le=10**15,
        description="Parameter count the model's authors published, for reference.",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_num_params(cls, data: Any) -> Any:
        """`num_params` is computed (and serialised with the shape); a shape read back from a
        plan document carries it, and it is recomputed rather than trusted."""
        if isinstance(data, dict) and "num_params" in data:
            data = {k: v for k, v in data.items() if k != "num_params"}
        return data

    @model_validator(mode="after")
    def _check_heads(self) -> ModelShape:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size: {self.hidden_size} must be a multiple of "
                f"num_heads ({self.num_heads})"
            )
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"num_heads: {self.num_heads} must be a multiple of num_kv_heads ({self.kv_heads})"
            )
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def ffn_size(self) -> int:
        return self.ffn_hidden_size or 4 * self.hidden_size

    @property
    def mlp_matrices(self) -> int:
        """m in DESIGN.md: 2 for GELU (up, down), 3 for SwiGLU (gate, up, down)."""
        return 3 if self.activation == "swiglu" else 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def head_tokens(self, seq_len: np.ndarray | int | None = None) -> np.ndarray | int:
        """Tokens the output head runs on per sequence of `seq_len` tokens (S by default, or
        curriculum learning's c): every position, but only the CLS token for vit. The one place
        this rule lives."""
        if self.arch == "vit":
            return 1
        return self.seq_len if seq_len is None else seq_len

    @computed_field(description="Trainable parameters, counted from the shape.")  # type: ignore[prop-decorator]
    @cached_property
    def num_params(self) -> int:
        return count_params(self)


def _layer_params(m: ModelShape) -> int:
    h, f, kv = m.hidden_size, m.ffn_size, m.kv_heads * m.head_dim
    attention = h * h + 2 * h * kv + h * h  # Q, K, V, O
    mlp = m.mlp_matrices * h * f
    biases = (h + 2 * kv + h) + ((m.mlp_matrices - 1) * f + h) if m.bias else 0
    norms = 2 * (2 * h if m.norm == "layernorm" else h)  # two norms per layer
    return attention + mlp + biases + norms


def count_params(m: ModelShape) -> int:
    """Trainable parameters, as the reference implementation of each architecture has them."""
    h = m.hidden_size
    final_norm = 2 * h if m.norm == "layernorm" else h
    layers = m.num_layers * _layer_params(m)
    positions = m.seq_len * h if m.position == "learned" else 0
    if m.arch == "vit":
        # Patch projection (conv as a matrix + bias), CLS token, positions, final LN, classifier.
        patch = m.num_channels * m.patch_size**2 * h + h
        return patch + h + positions + layers + final_norm + h * m.vocab_size + m.vocab_size
    embeddings = m.vocab_size * h + positions
    if m.arch == "bert":
        # Token-type embeddings (2 types) and the embedding LayerNorm; the pooler (h x h + h).
        return embeddings + 2 * h + 2 * h + layers + h * h + h
    head = 0 if m.tie_embeddings else m.vocab_size * h
    return embeddings + layers + final_norm + head


def _gpt3(name: str, layers: int, hidden: int, heads: int, published: float) -> ModelShape:
    # Brown et al. 2020, Table 2.1: all GPT-3 models use S = 2048 and GPT-2's 50257-token BPE.
    return ModelShape(
        name=name,
        arch="gpt",
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        vocab_size=50257,
        seq_len=2048,
        published_params=int(published),
    )


def _gpt2(name: str, layers: int, hidden: int, heads: int, published: int) -> ModelShape:
    # Radford et al. 2019; counts as the released checkpoints have them (Hugging Face).
    return ModelShape(
        name=name,
        arch="gpt",
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        vocab_size=50257,
        seq_len=1024,
        published_params=published,
    )


PRESETS: dict[str, ModelShape] = {
    m.name: m  # type: ignore[misc]
    for m in [
        _gpt3("gpt3-125m", 12, 768, 12, 125e6),
        _gpt3("gpt3-350m", 24, 1024, 16, 350e6),
        _gpt3("gpt3-760m", 24, 1536, 16, 760e6),
        # The paper's table says 24 heads of 128 for 1.3B, which does not divide 2048; the
        # random-LTD paper (and Megatron) train it with 16 heads of 128.
        _gpt3("gpt3-1.3b", 24, 2048, 16, 1.3e9),
        _gpt3("gpt3-2.7b", 32, 2560, 32, 2.7e9),
        _gpt3("gpt3-6.7b", 32, 4096, 32, 6.7e9),
        # Table 2.1 prints d_model 5140 for 13B, a typo for 40 heads x 128 = 5120.
        _gpt3("gpt3-13b", 40, 5120, 40, 13.0e9),
        _gpt3("gpt3-175b", 96, 12288, 96, 175.0e9),
        _gpt2("gpt2", 12, 768, 12, 124_439_808),
        _gpt2("gpt2-medium", 24, 1024, 16, 354_823_168),
        _gpt2("gpt2-large", 36, 1280, 20, 774_030_080),
        _gpt2("gpt2-xl", 48, 1600, 25, 1_557_611_200),
        # Devlin et al. 2019: 110M and 340M.
        ModelShape(
            name="bert-base",
            arch="bert",
            num_layers=12,
            hidden_size=768,
            num_heads=12,
            vocab_size=30522,
            seq_len=512,
            published_params=110_000_000,
        ),
        ModelShape(
            name="bert-large",
            arch="bert",
            num_layers=24,
            hidden_size=1024,
            num_heads=16,
            vocab_size=30522,
            seq_len=512,
            published_params=340_000_000,
        ),
        # Dosovitskiy et al. 2021, Table 1: 86M and 307M; 224 px / 16 px = 14 x 14 patches + CLS.
        ModelShape(
            name="vit-b16",
            arch="vit",
            num_layers=12,
            hidden_size=768,
            num_heads=12,
            vocab_size=1000,
            seq_len=197,
            published_params=86_000_000,
        ),
        ModelShape(
            name="vit-l16",
            arch="vit",
            num_layers=24,
            hidden_size=1024,
            num_heads=16,
            vocab_size=1000,
            seq_len=197,
            published_params=307_000_000,
        ),
        # Touvron et al. 2023 and Meta's Llama 3 model card; counts of the released checkpoints.
        ModelShape(
            name="llama-2-7b",
            arch="gpt",
            num_layers=32,
            hidden_size=4096,
            num_heads=32,
            ffn_hidden_size=11008,
            activation="swiglu",
            vocab_size=32000,
            seq_len=4096,
            position="rotary",
            tie_embeddings=False,
            bias=False,
            norm="rmsnorm",
            published_params=6_738_415_616,
        ),
        ModelShape(
            name="llama-3-8b",
            arch="gpt",
            num_layers=32,
            hidden_size=4096,
            num_heads=32,
            num_kv_heads=8,
            ffn_hidden_size=14336,
            activation="swiglu",
            vocab_size=128256,
            seq_len=8192,
            position="rotary",
            tie_embeddings=False,
            bias=False,
            norm="rmsnorm",
            published_params=8_030_261_248,
        ),
    ]
}


def get_preset(name: str, field: str = "model") -> ModelShape:
    """A preset by name (case-insensitive); an unknown name suggests the closest ones."""
    key = name.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    close = difflib.get_close_matches(key, list(PRESETS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(PRESETS)}"
    raise PlanInputError(field, f"unknown model preset {name!r}{hint}")


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

    def as_dict(self) -> dict[str, Any]:
        """The config as `from_hf_config` reads it (original key names, nulls left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


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


def _hf_get(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """An integer field of a Hugging Face config (the first of `keys` present), checked: the
    config is the user's JSON, and arithmetic on a list or a string must not reach the plan."""
    for key in keys:
        if cfg.get(key) is not None:
            value = cfg[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise PlanInputError(f"model.{key}", f"must be an integer, got {value!r:.60}")
            if value < 1:
                raise PlanInputError(f"model.{key}", f"must be at least 1, got {value}")
            return value
    if default is None:
        raise PlanInputError("model", f"Hugging Face config lacks {' or '.join(keys)}")
    return default


def _hf_image_size(cfg: dict[str, Any]) -> tuple[int, int]:
    """ViT's `image_size`: one side, or [height, width]."""
    size = cfg.get("image_size")
    if isinstance(size, list | tuple) and len(size) == 2:
        sides = {"image_size": size[0], "image_width": size[1]}
        return _hf_get(sides, "image_size"), _hf_get(sides, "image_width")
    side = _hf_get(cfg, "image_size")
    return side, side


def from_hf_config(cfg: dict[str, Any]) -> ModelShape:
    """Read a Hugging Face `config.json` (GPT-2, BERT, Llama/Mistral or ViT key names)."""
    kind = str(cfg.get("model_type", "")).lower()
    name = (str(cfg.get("_name_or_path") or "") or kind or "")[:NAME_CHARS] or None
    if kind == "gpt2" or "n_embd" in cfg:
        hidden = _hf_get(cfg, "n_embd")
        return ModelShape(
            name=name,
            arch="gpt",
            num_layers=_hf_get(cfg, "n_layer"),
            hidden_size=hidden,
            num_heads=_hf_get(cfg, "n_head"),
            ffn_hidden_size=_hf_get(cfg, "n_inner", default=4 * hidden),
            vocab_size=_hf_get(cfg, "vocab_size"),
            seq_len=_hf_get(cfg, "n_positions", "n_ctx"),
        )
    if kind == "vit" or "patch_size" in cfg:
        (height, width), patch = _hf_image_size(cfg), _hf_get(cfg, "patch_size")
        labels = cfg.get("id2label") or {}
        if not isinstance(labels, dict):
            raise PlanInputError("model.id2label", "must be an object")
        return ModelShape(
            name=name,
            arch="vit",
            num_layers=_hf_get(cfg, "num_hidden_layers"),
            hidden_size=_hf_get(cfg, "hidden_size"),
            num_heads=_hf_get(cfg, "num_attention_heads"),
            ffn_hidden_size=_hf_get(cfg, "intermediate_size"),
            vocab_size=len(labels) or _hf_get(cfg, "num_labels", default=1000),
            seq_len=(height // patch) * (width // patch) + 1,
            patch_size=patch,
            num_channels=_hf_get(cfg, "num_channels", default=3),
        )
    llama_like = kind in {"llama", "mistral", "qwen2"} or cfg.get("hidden_act") == "silu"
    if kind not in {"bert", "roberta"} and not llama_like:
        raise PlanInputError(
            "model", f"unsupported Hugging Face model_type {kind!r} (gpt2, bert, llama, vit)"
        )
    common = dict(
        num_layers=_hf_get(cfg, "num_hidden_layers"),
        hidden_size=_hf_get(cfg, "hidden_size"),
        num_heads=_hf_get(cfg, "num_attention_heads"),
        ffn_hidden_size=_hf_get(cfg, "intermediate_size"),
        vocab_size=_hf_get(cfg, "vocab_size"),
        seq_len=_hf_get(cfg, "max_position_embeddings"),
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
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        num_kv_heads=_hf_get(cfg, "num_key_value_heads", default=0) or None,
        **common,
    )


def resolve_model(
    spec: str | dict[str, Any] | ModelShape | HFConfig, field: str = "model"
) -> ModelShape:
    """A preset name, an explicit shape (our field names) or a Hugging Face config object."""
    try:
        return _resolve_model(spec, field)
    except ValidationError as exc:
        raise input_error_from(exc, prefix=field) from None


def _resolve_model(spec: str | dict[str, Any] | ModelShape | HFConfig, field: str) -> ModelShape:
    if isinstance(spec, ModelShape):
        return spec
    if isinstance(spec, HFConfig):
        return from_hf_config(spec.as_dict())
    if isinstance(spec, str):
        return get_preset(spec, field)
    if isinstance(spec, dict):
        if "num_layers" in spec or "hidden_size" in spec and "num_hidden_layers" not in spec:
            return ModelShape.model_validate(spec)
        return from_hf_config(spec)
    raise PlanInputError(field, "must be a preset name, a model shape or a config.json object")
