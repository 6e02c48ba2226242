"""The built-in model presets, each with the parameter count its authors published.

`ltd models` lists them and a request names one by `model`; a test checks every preset's count
from its shape against the published one (within 2%).
"""

from __future__ import annotations

import difflib

from planner.errors import PlanInputError
from planner.models import ModelShape


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
