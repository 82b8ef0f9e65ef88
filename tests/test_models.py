"""Student loading (built, saved, reloaded, LoRA) and the graph encoder."""

from __future__ import annotations

import pytest
import torch
from factories import TINY_ARCHITECTURE, tiny_student

from magdi_lightning.models.graph_encoder import GraphEncoder
from magdi_lightning.models.student import enable_checkpointing, load_student
from magdi_lightning.models.tokenizer import DEFAULT_TOKENIZER_DIR, train_toy_tokenizer


def test_from_pretrained_path_loads_a_locally_saved_student(tmp_path) -> None:
    torch.manual_seed(0)
    built = tiny_student()
    built.save_pretrained(tmp_path / "student")
    loaded = load_student(name_or_path=str(tmp_path / "student"))
    ids = built.tokenizer("Question: Ann has 3 pens.", return_tensors="pt")
    mask = ids["attention_mask"]
    expected = built.hidden_states(ids["input_ids"], mask)
    assert torch.allclose(loaded.hidden_states(ids["input_ids"], mask), expected, atol=1e-6)
    assert loaded.tokenizer.get_vocab() == built.tokenizer.get_vocab()


def test_lora_trains_adapters_only_and_hidden_states_still_flow(tmp_path) -> None:
    student = load_student(architecture=TINY_ARCHITECTURE,
                           lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
                                 "lora_dropout": 0.05})
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    ids = torch.tensor([[1, 5, 6, 7]])
    hidden = student.hidden_states(ids, torch.ones_like(ids))
    student.lm_logits(hidden).sum().backward()
    assert all(p.grad is not None for n, p in student.named_parameters() if p.requires_grad)
    student.save_pretrained(tmp_path / "adapters")
    assert (tmp_path / "adapters" / "adapter_config.json").exists()


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = tiny_student()
    checkpointed = tiny_student()
    checkpointed.model.load_state_dict(plain.model.state_dict())
    enable_checkpointing(checkpointed.model)
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    for student in (plain, checkpointed):
        student.train()
        student.lm_logits(student.hidden_states(ids, torch.ones_like(ids))).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_shipped_tokenizer_splits_digits_and_round_trips() -> None:
    student = tiny_student()
    tokenizer = student.tokenizer
    tokens = tokenizer.tokenize("Ann has 123 pens.")
    assert "1" in tokens and "2" in tokens and "3" in tokens
    text = "Question: Jared types 47 WPM; the answer is \\boxed{52}. Ünïcode ok"
    assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == text


def test_shipped_tokenizer_is_what_training_produces() -> None:
    shipped = load_student(architecture=TINY_ARCHITECTURE).tokenizer
    assert train_toy_tokenizer().get_vocab() == shipped.get_vocab()
    assert DEFAULT_TOKENIZER_DIR.exists()


@pytest.mark.parametrize("kind", ["gcn", "gat", "sage"])
def test_graph_encoder_dropout_follows_train_and_eval(kind: str) -> None:
    torch.manual_seed(0)
    encoder = GraphEncoder(8, kind=kind, hidden_channels=16, dropout=0.5)
    x = torch.randn(5, 8)
    edges = torch.tensor([[0, 1, 2, 3], [4, 4, 4, 4]])
    encoder.eval()
    assert torch.equal(encoder(x, edges), encoder(x, edges))
    encoder.train()
    assert not torch.equal(encoder(x, edges), encoder(x, edges))
    assert encoder(x, edges).shape == (5, 2)


def test_graph_encoder_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="gcn"):
        GraphEncoder(8, kind="transformer")
