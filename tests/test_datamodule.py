"""GraphDataModule: splits without leakage, tokenize-once caching, masking, batching."""

from __future__ import annotations

import datasets
import pytest
import torch
from factories import debate, hand_graphs, tiny_student

from magdi_lightning.data import GraphDataModule, collate_graphs
from magdi_lightning.data.datamodule import split_by_question
from magdi_lightning.graph import read_graphs, write_graphs
from magdi_lightning.sources.toy import ToyWorldConfig, generate_toy_graphs

C = hand_graphs()[0].nodes[0].correctness


@pytest.fixture(scope="module")
def student():
    return tiny_student()


def _toy_file(tmp_path, n=60):
    path = tmp_path / "toy.jsonl"
    write_graphs(path, generate_toy_graphs(ToyWorldConfig(num_questions=n)))
    return path


def test_split_keeps_every_graph_of_a_question_in_one_split() -> None:
    graphs = []
    for i in range(40):
        for repeat in range(3):  # three debates of the same question, spelled differently
            question = f"Q{i}: how many pens?" if repeat else f"  q{i}:  HOW many pens? "
            graphs.append(debate(f"g{i}-{repeat}", question, [[("5", C)]]))
    splits = split_by_question(graphs, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert sorted(i for s in splits.values() for i in s) == list(range(len(graphs)))
    owner = {}
    for name, indices in splits.items():
        for i in indices:
            owner.setdefault(i // 3, set()).add(name)
    assert all(len(names) == 1 for names in owner.values())
    assert len(splits["test"]) == 8 * 3 and len(splits["val"]) == 4 * 3
    assert splits == split_by_question(graphs, 0.1, 0.2, seed=3)


def test_too_few_questions_for_the_split_is_a_clear_error() -> None:
    graphs = [debate("g", "q?", [[("5", C)]])]
    with pytest.raises(ValueError, match="too few"):
        split_by_question(graphs, 0.5, 0.5, seed=0)


def test_nodes_are_tokenized_once_and_cached(tmp_path, student, monkeypatch) -> None:
    path = _toy_file(tmp_path)
    first = GraphDataModule(graphs=str(path), tokenizer=student.tokenizer,
                            cache_dir=str(tmp_path / "cache"), test_fraction=0.2)
    first.setup()
    assert len(list((tmp_path / "cache" / "tokenized").iterdir())) == 1

    def no_map(*args, **kwargs):
        raise AssertionError("tokenized again although cached")

    monkeypatch.setattr(datasets.Dataset, "map", no_map)
    second = GraphDataModule(graphs=str(path), tokenizer=student.tokenizer,
                             cache_dir=str(tmp_path / "cache"), test_fraction=0.2)
    second.setup()
    a, b = first.examples["train"][0], second.examples["train"][0]
    assert all(torch.equal(x, y) for x, y in zip(a.input_ids, b.input_ids))


def test_prompt_masking_is_configurable(tmp_path, student) -> None:
    module = GraphDataModule(graphs=str(_toy_file(tmp_path, n=20)), tokenizer=student.tokenizer,
                             cache_dir=str(tmp_path / "cache"))
    module.setup()
    examples = module.examples["train"][:2]
    pad = student.tokenizer.pad_token_id
    masked = collate_graphs(examples, pad, mask_prompt=True)
    unmasked = collate_graphs(examples, pad, mask_prompt=False)
    nodes = [(ids, p) for e in examples for ids, p in zip(e.input_ids, e.prompt_lengths)]
    for node, (ids, prompt) in enumerate(nodes):
        row = masked.node_to_seq[node]
        assert (masked.labels[row, :prompt] == -100).all()
        assert torch.equal(masked.labels[row, prompt:len(ids)], ids[prompt:])
        row = unmasked.node_to_seq[node]
        # The first token has nothing before it to predict it from.
        assert unmasked.labels[row, 0] == -100
        assert torch.equal(unmasked.labels[row, 1:len(ids)], ids[1:])
        assert (unmasked.labels[row, len(ids):] == -100).all()


def test_batches_pad_dynamically_and_cover_the_split(tmp_path, student) -> None:
    module = GraphDataModule(graphs=str(_toy_file(tmp_path)), tokenizer=student.tokenizer,
                             batch_size=4, cache_dir=str(tmp_path / "cache"))
    module.setup()
    seen = []
    for batch in module.val_dataloader():
        longest = max(len(ids) for gid in batch.graph_ids for ids in
                      next(e for e in module.examples["val"] if e.graph_id == gid).input_ids)
        assert batch.input_ids.shape[1] == longest
        seen += batch.graph_ids
    assert seen == [e.graph_id for e in module.examples["val"]]


def test_importer_output_is_materialised_once(tmp_path, student) -> None:
    spec = {"format": "toy", "path": "default", "options": {"num_questions": 30}}
    module = GraphDataModule(importer=spec, tokenizer=student.tokenizer,
                             cache_dir=str(tmp_path / "cache"), test_fraction=0.2)
    module.prepare_data()
    stamp = module.source_path.stat().st_mtime_ns
    module.setup()
    assert module.source_path.stat().st_mtime_ns == stamp
    assert len(module.graph_list) == 30
    questions = module.held_out_questions("test")
    assert len(questions) == 6 and all(q.task == "numeric" for q in questions)


def test_chat_template_frames_the_prompt_when_the_tokenizer_has_one(tmp_path) -> None:
    student = tiny_student()
    student.tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    module = GraphDataModule(graphs=str(_toy_file(tmp_path, 20)), tokenizer=student.tokenizer,
                             cache_dir=str(tmp_path / "cache"))
    assert module.formatter.chat
    text = module.formatter.prompt_text("How many?")
    assert text == "<|user|>How many?\n<|assistant|>"


def test_exactly_one_source_is_required(student) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GraphDataModule(tokenizer=student.tokenizer)


def test_max_graphs_keeps_the_files_first_graphs(tmp_path, student) -> None:
    path = _toy_file(tmp_path, n=60)
    kept = GraphDataModule(graphs=str(path), tokenizer=student.tokenizer, max_graphs=25,
                           cache_dir=str(tmp_path / "cache"))
    kept.setup()
    assert [g.id for g in kept.graph_list] == [g.id for g in read_graphs(path)][:25]
    assert sum(len(v) for v in kept.examples.values()) == 25
    everything = GraphDataModule(graphs=str(path), tokenizer=student.tokenizer,
                                 cache_dir=str(tmp_path / "cache"))
    everything.setup()  # a cache made for the first 25 graphs is not reused for all 60
    assert sum(len(v) for v in everything.examples.values()) == 60


def test_train_loader_order_depends_only_on_seed_and_epoch(tmp_path, student,
                                                          monkeypatch) -> None:
    module = GraphDataModule(graphs=str(_toy_file(tmp_path)), tokenizer=student.tokenizer,
                             batch_size=4, cache_dir=str(tmp_path / "cache"))
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")

    def order(epoch: int) -> list[str]:
        loader = module.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [gid for batch in loader for gid in batch.graph_ids]

    first = order(0)
    assert order(0) == first and order(1) != first
    assert sorted(first) == sorted(e.graph_id for e in module.examples["train"])
