"""``compile.enabled``: the student's transformer blocks compiled one by one compute what
the eager blocks compute, keep their parameter names, and leave generation eager."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.common import compile_student
from magdi_lightning.data import collate_graphs
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.evaluation.generation import generate
from magdi_lightning.models.blocks import compile_blocks, transformer_blocks
from magdi_lightning.models.student import load_student
from tests.factories import examples, hand_graphs, tiny_module, tiny_student


def test_blocks_are_found_for_causal_and_seq2seq_students() -> None:
    llama = tiny_student().model
    assert [type(b).__name__ for b in transformer_blocks(llama)] == ["LlamaDecoderLayer"] * 2
    t5 = load_student(model_type="t5", architecture={
        "d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 2, "num_heads": 2}).model
    # The encoder's and the decoder's blocks, not the layers nested inside each block.
    assert [type(b).__name__ for b in transformer_blocks(t5)] == ["T5Block"] * 4


def test_a_model_without_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match="no transformer blocks"):
        compile_blocks(torch.nn.Linear(2, 2))


def test_compile_is_off_by_default_and_composes_on() -> None:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        assert not compose("train").compile.enabled
        assert not compose("siked").compile.enabled
        assert compose("train", overrides=["compile.enabled=true"]).compile.dynamic


def test_compiled_blocks_give_the_eager_losses_gradients_and_generation() -> None:
    torch.manual_seed(0)
    eager = tiny_module().train()
    compiled = copy.deepcopy(eager)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        settings = compose("train", overrides=["compile.enabled=true"]).compile
    compile_student(compiled.student, settings)
    assert compiled.state_dict().keys() == eager.state_dict().keys()

    items = examples(eager.student, hand_graphs())
    pad = eager.student.tokenizer.pad_token_id
    # Two packed batches of different lengths: the second runs the same dynamic graph.
    for batch in (collate_graphs(items, pad, packing=True),
                  collate_graphs(items[:2], pad, packing=True)):
        results = []
        for module in (eager, compiled):
            torch.manual_seed(1)  # the graph encoder's dropout draws the same mask
            module.zero_grad()
            losses = module.compute_losses(batch)
            losses["loss"].backward()
            results.append((losses, {n: p.grad for n, p in module.named_parameters()
                                     if p.grad is not None}))
        (losses_e, grads_e), (losses_c, grads_c) = results
        for name in losses_e:
            assert float(losses_c[name]) == pytest.approx(float(losses_e[name]), abs=1e-5)
        assert grads_e.keys() == grads_c.keys()
        for name in grads_e:
            torch.testing.assert_close(grads_c[name], grads_e[name], atol=1e-5, rtol=1e-4)

    formatter = PromptFormatter(eager.student.tokenizer)
    questions = [g.question for g in hand_graphs()]
    assert (generate(compiled.student, formatter, questions, max_new_tokens=5)
            == generate(eager.student, formatter, questions, max_new_tokens=5))


@pytest.mark.slow
def test_magdi_train_runs_with_compiled_blocks(tmp_path: Path) -> None:
    from tests.test_train_cli import _metrics, _run_train

    result = _run_train(["compile.enabled=true", "debug=fast", "logger=csv"], cwd=tmp_path)
    assert "compiled 3 transformer blocks" in result.stdout + result.stderr
    (metrics,) = _metrics(tmp_path / "outputs")
    assert metrics["global_step"] == 5 and metrics["train/loss"] > 0
