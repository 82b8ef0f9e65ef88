"""Packed graph batches (every prompt and response once, in one row) compute exactly what
one padded row per node computes: the same losses and the same gradients, with no
attention between responses."""

from __future__ import annotations

import pytest
import torch

from magdi_lightning.data import collate_graphs
from magdi_lightning.data.batch import CORRECT
from magdi_lightning.methods.magdi import DistillationModule, graph_hidden_states
from magdi_lightning.models.student import load_student
from tests.factories import TINY_ARCHITECTURE, examples, hand_graphs, tiny_module, tiny_student


def _without_dropout(module: torch.nn.Module) -> torch.nn.Module:
    for layer in module.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
    return module


def _losses_and_grads(module: DistillationModule, batch) -> tuple[dict, dict]:
    module.zero_grad()
    losses = module.compute_losses(batch)
    losses["loss"].backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()
             if p.grad is not None}
    return {k: v.item() for k, v in losses.items()}, grads


@pytest.mark.parametrize("mask_prompt", [True, False])
@pytest.mark.parametrize("student_kind", ["full", "lora_checkpointed"])
def test_packed_batch_gives_the_unpacked_losses_and_gradients(mask_prompt: bool,
                                                              student_kind: str) -> None:
    torch.manual_seed(0)
    if student_kind == "full":
        student = tiny_student()
    else:  # LoRA under activation checkpointing: the recomputed layers see the layout too
        student = load_student(architecture=dict(TINY_ARCHITECTURE),
                               gradient_checkpointing=True,
                               lora={"r": 4, "lora_alpha": 8,
                                     "target_modules": ["q_proj", "v_proj"]})
    module = _without_dropout(tiny_module(student).train())
    items = examples(module.student, hand_graphs())
    pad = module.student.tokenizer.pad_token_id
    unpacked = collate_graphs(items, pad, mask_prompt=mask_prompt)
    packed = collate_graphs(items, pad, mask_prompt=mask_prompt, packing=True)
    assert packed.input_ids.shape[0] == 1
    # Three graphs: three prompts once each instead of once per distinct node.
    assert packed.input_ids.numel() < int(unpacked.attention_mask.sum())
    assert torch.equal(packed.seq_lengths, unpacked.seq_lengths)

    losses_u, grads_u = _losses_and_grads(module, unpacked)
    losses_p, grads_p = _losses_and_grads(module, packed)
    assert losses_u.keys() == losses_p.keys()
    for name in losses_u:
        assert losses_p[name] == pytest.approx(losses_u[name], abs=1e-5), name
    assert grads_u.keys() == grads_p.keys() and grads_u
    for name in grads_u:
        torch.testing.assert_close(grads_p[name], grads_u[name], atol=1e-5, rtol=1e-4,
                                   msg=name)


def test_responses_do_not_see_each_other() -> None:
    """Changing one response changes no other node's hidden states in the packed row."""
    torch.manual_seed(0)
    module = tiny_module().eval()
    items = examples(module.student, hand_graphs()[:1])
    pad = module.student.tokenizer.pad_token_id
    before = collate_graphs(items, pad, packing=True)
    changed = items[0].input_ids[1].clone()
    changed[-3:] = (changed[-3:] + 7) % len(module.student.tokenizer)
    items[0].input_ids[1] = changed
    after = collate_graphs(items, pad, packing=True)
    with torch.no_grad():
        h_before = graph_hidden_states(module.student, before)[0]
        h_after = graph_hidden_states(module.student, after)[0]
    touched = after.response_tokens[after.node_to_seq[1]]
    untouched = torch.ones(h_before.shape[0], dtype=torch.bool)
    untouched[touched[touched >= 0]] = False
    torch.testing.assert_close(h_after[untouched], h_before[untouched])
    assert not torch.allclose(h_after[~untouched], h_before[~untouched])


def test_chunked_cross_entropy_equals_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    student = tiny_student()
    hidden = torch.randn(50, student.hidden_size, requires_grad=True)
    targets = torch.randint(0, len(student.tokenizer), (50,))
    whole = student.token_losses(hidden, targets)
    (grad_whole,) = torch.autograd.grad(whole.sum(), hidden)
    vocab = student.model.get_output_embeddings().out_features
    monkeypatch.setattr(student, "max_logits", 7 * vocab)     # chunks of 7 tokens
    chunked = student.token_losses(hidden, targets)
    (grad_chunked,) = torch.autograd.grad(chunked.sum(), hidden)
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(grad_chunked, grad_whole)


def test_generation_is_unchanged_once_packed_attention_is_on() -> None:
    torch.manual_seed(0)
    module = tiny_module().eval()
    student = module.student
    tok = student.tokenizer
    tok.padding_side = "left"
    prompts = tok(["Question: Ann has 3 apples.\nAnswer:", "Question: 2 + 2?\nAnswer:"],
                  return_tensors="pt", padding=True)
    settings = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": tok.pad_token_id}
    before = student.model.generate(**prompts, **settings)
    module.compute_losses(collate_graphs(examples(student, hand_graphs()), tok.pad_token_id,
                                         packing=True))
    assert student.model.config._attn_implementation == "magdi_packed_sdpa"
    assert torch.equal(student.model.generate(**prompts, **settings), before)


def test_packing_refuses_attention_it_cannot_reproduce() -> None:
    student = tiny_student()
    student.model.set_attn_implementation("eager")
    module = tiny_module(student)
    batch = collate_graphs(examples(student, hand_graphs()), student.tokenizer.pad_token_id,
                           packing=True)
    with pytest.raises(ValueError, match=r"need SDPA attention, not 'eager'.*packing=false"):
        module.compute_losses(batch)


def test_packed_layout_lists_every_correct_token_once_per_sequence() -> None:
    student = tiny_student()
    items = examples(student, hand_graphs())
    batch = collate_graphs(items, student.tokenizer.pad_token_id, packing=True)
    flat = batch.input_ids.view(-1)
    for node, (ids, prompt) in enumerate((ids, p) for e in items
                                         for ids, p in zip(e.input_ids, e.prompt_lengths)):
        seq = batch.node_to_seq[node]
        mine = batch.target_seq == seq
        assert torch.equal(batch.target_ids[mine], ids[prompt:])
        # The predictor of the first response token is the prompt's last token.
        assert flat[batch.target_index[mine][0]] == ids[prompt - 1]
    assert (batch.node_labels == CORRECT).any()
