"""Every preset parses and matches its published parameter count within 2%."""

import pytest

from planner.errors import PlanInputError
from planner.hf_config import HFConfig, from_hf_config, resolve_model
from planner.models import ModelShape
from planner.presets import PRESETS, get_preset
from planner.request import parse_request


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_count_within_2_percent_of_published(name: str) -> None:
    m = get_preset(name)
    assert m.published_params, "every preset cites its published count"
    assert abs(m.num_params / m.published_params - 1) < 0.02
    # Round-trips through its JSON form as an explicit shape.
    assert ModelShape.model_validate(m.model_dump()) == m


def test_gpt2_small_count_by_hand() -> None:
    # 12 layers x (4 h^2 + 4h attention biases... ) computed term by term:
    h, V, S, L = 768, 50257, 1024, 12
    per_layer = 4 * h * h + 4 * h + 8 * h * h + 4 * h + h + 4 * h  # attn W+b, MLP W+b, 2 LNs
    total = V * h + S * h + L * per_layer + 2 * h
    assert total == 124_439_808 == get_preset("gpt2").num_params


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(PlanInputError) as info:
        get_preset("gpt3-13m")
    assert info.value.field == "model"
    assert "gpt3-13b" in info.value.message


HF_CONFIGS = {
    "gpt2": (
        {
            "model_type": "gpt2",
            "n_layer": 12,
            "n_embd": 768,
            "n_head": 12,
            "n_positions": 1024,
            "vocab_size": 50257,
            "n_inner": None,
        },
        "gpt2",
    ),
    "bert": (
        {
            "model_type": "bert",
            "num_hidden_layers": 24,
            "hidden_size": 1024,
            "num_attention_heads": 16,
            "intermediate_size": 4096,
            "vocab_size": 30522,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
        },
        "bert-large",
    ),
    "llama": (
        {
            "model_type": "llama",
            "num_hidden_layers": 32,
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 128256,
            "max_position_embeddings": 8192,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        "llama-3-8b",
    ),
    "vit": (
        {
            "model_type": "vit",
            "num_hidden_layers": 12,
            "hidden_size": 768,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "image_size": 224,
            "patch_size": 16,
            "num_channels": 3,
        },
        "vit-b16",
    ),
}


@pytest.mark.parametrize("kind", sorted(HF_CONFIGS))
def test_hugging_face_config_matches_the_preset(kind: str) -> None:
    cfg, preset = HF_CONFIGS[kind]
    m = from_hf_config(HFConfig.model_validate(cfg))
    assert m.num_params == get_preset(preset).num_params
    assert m.seq_len == get_preset(preset).seq_len
    request = parse_request({"model": cfg, "train_batch_size": 8, "train_steps": 10})
    assert isinstance(request.model, HFConfig)
    assert resolve_model(request.model).num_params == m.num_params


@pytest.mark.parametrize("kind, key", [
    ("gpt2", "n_layer"), ("gpt2", "vocab_size"), ("bert", "max_position_embeddings"),
    ("llama", "num_attention_heads"), ("vit", "image_size"), ("vit", "intermediate_size"),
])  # fmt: skip
def test_a_config_missing_a_key_its_architecture_needs_names_it(kind: str, key: str) -> None:
    cfg = {k: v for k, v in HF_CONFIGS[kind][0].items() if k != key}
    with pytest.raises(PlanInputError) as err:
        resolve_model(HFConfig.model_validate(cfg))
    assert (err.value.field, err.value.message) == ("model", f"Hugging Face config lacks {key}")


def test_gpt2_reads_its_length_from_n_positions_or_n_ctx() -> None:
    cfg = {k: v for k, v in HF_CONFIGS["gpt2"][0].items() if k != "n_positions"}
    with pytest.raises(PlanInputError, match="lacks n_positions or n_ctx"):
        from_hf_config(HFConfig.model_validate(cfg))
    assert from_hf_config(HFConfig.model_validate({**cfg, "n_ctx": 256})).seq_len == 256


def test_bad_shapes_name_the_field() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        ModelShape(num_layers=2, hidden_size=100, num_heads=3, vocab_size=10, seq_len=8)
    with pytest.raises(ValueError, match="num_layers"):
        ModelShape(num_layers=0, hidden_size=64, num_heads=4, vocab_size=10, seq_len=8)
    with pytest.raises(PlanInputError, match="model_type"):
        from_hf_config(HFConfig.model_validate({"model_type": "t5", "d_model": 512}))
    with pytest.raises(PlanInputError) as err:  # the shape's own rule, under the request's field
        resolve_model(HFConfig.model_validate({**HF_CONFIGS["gpt2"][0], "n_head": 5}))
    assert err.value.field == "model.hidden_size"  # 256 is no multiple of 5 heads


@pytest.mark.parametrize(
    "cfg, field",
    [
        ({"model_type": "vit", "image_size": "224", "patch_size": 16, "hidden_size": 768,
          "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
         "model.image_size"),
        ({"model_type": "gpt2", "n_embd": [768], "n_layer": 12, "n_head": 12, "vocab_size": 50257,
          "n_positions": 1024}, "model.n_embd"),
        ({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
          "num_attention_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
          "max_position_embeddings": 4096, "num_key_value_heads": 0.5},
         "model.num_key_value_heads"),
    ],
)  # fmt: skip
def test_hf_config_fields_of_the_wrong_type_name_the_field(cfg: dict, field: str) -> None:
    # Refused by HFConfig when the request is read, before any shape is built.
    with pytest.raises(PlanInputError) as err:
        parse_request({"model": cfg, "train_batch_size": 8, "train_steps": 10})
    assert err.value.field == field


def test_vit_image_size_as_height_and_width() -> None:
    cfg = {"model_type": "vit", "image_size": [224, 160], "patch_size": 16, "hidden_size": 768,
           "num_hidden_layers": 12, "num_attention_heads": 12,
           "intermediate_size": 3072}  # fmt: skip
    assert from_hf_config(HFConfig.model_validate(cfg)).seq_len == (224 // 16) * (160 // 16) + 1


# Real config.json files carry keys our explicit shape also uses: InternLM2 has "bias", Falcon
# "num_kv_heads". They are still Hugging Face configs (they name their layers num_hidden_layers).
INTERNLM2 = {
    "model_type": "internlm2", "hidden_act": "silu", "bias": False, "hidden_size": 4096,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "intermediate_size": 14336, "vocab_size": 92544, "max_position_embeddings": 32768,
}  # fmt: skip


@pytest.mark.parametrize("extra", [{}, {"num_kv_heads": 8}, {"_name_or_path": "/m/" + "a" * 250}])
def test_request_models_read_real_configs_as_configs(extra: dict) -> None:
    from planner import PlanRequest

    request = PlanRequest.model_validate(
        {"model": {**INTERNLM2, **extra}, "train_batch_size": 8, "train_steps": 10}
    )
    shape = resolve_model(request.model)
    assert (shape.num_layers, shape.hidden_size, shape.kv_heads) == (32, 4096, 8)
    assert shape.activation == "swiglu" and shape.position == "rotary"
    assert shape.name is not None and len(shape.name) <= 200  # display text, kept to 200


def test_an_object_with_num_layers_is_our_shape() -> None:
    from planner import PlanRequest

    with pytest.raises(ValueError, match="num_heads"):
        PlanRequest.model_validate({"model": {"num_layers": 2}, "train_steps": 1})
