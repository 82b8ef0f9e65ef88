"""The LightningDataModule that turns MAG JSONL into GraphBatches.

Data flows: an importer (optional) writes MAG JSONL once; the JSONL is validated and
split by question; every node is tokenized once and the result cached on disk with
``datasets`` (keyed by the data, the tokenizer and the prompt format); each split then
holds ready-made :class:`GraphExample` objects, so a training step only collates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import Counter
from functools import cached_property
from itertools import islice, product
from pathlib import Path
from typing import Any, ClassVar

import datasets
import lightning as L
import torch
from torch.utils.data import DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import PreTrainedTokenizerBase

from magdi_lightning import _compat
from magdi_lightning.data.batch import CORRECT, INCORRECT, GraphExample, collate_graphs
from magdi_lightning.data.pair_rows import (
    PADDING_NEGATIVE,
    ROW_GRAPHS,
    collate_pair_rows,
    pair_rows,
)
from magdi_lightning.data.responses import ResponseText
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.errors import RecordError
from magdi_lightning.graph import Correctness, ReasoningGraph, read_graphs, write_graphs
from magdi_lightning.losses import IGNORE_INDEX
from magdi_lightning.questions import Question, question_key

__all__ = ["BATCH_UNITS", "GraphDataModule", "SourceDataModule", "graph_example",
           "split_by_question"]

#: What ``GraphDataModule.batch_size`` counts.
BATCH_UNITS = ("graphs", "pair_rows")

log = logging.getLogger(__name__)

_CACHE_VERSION = "1"
_LABELS = {Correctness.CORRECT: CORRECT, Correctness.INCORRECT: INCORRECT,
           Correctness.UNKNOWN: IGNORE_INDEX}


def split_by_question(graphs: list[ReasoningGraph], val_fraction: float, test_fraction: float,
                      seed: int) -> dict[str, list[int]]:
    """Graph indices per split; all graphs of one question land in the same split.

    Splitting by normalised question text (not by graph) keeps repeated debates of a
    question from leaking between training and evaluation. A non-zero fraction gets at
    least one question.
    """
    keys = sorted({question_key(g.question) for g in graphs})
    random.Random(seed).shuffle(keys)
    n_test = max(1, round(test_fraction * len(keys))) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * len(keys))) if val_fraction > 0 else 0
    if n_test + n_val >= len(keys):
        raise ValueError(f"{len(keys)} distinct questions are too few for val_fraction="
                         f"{val_fraction} and test_fraction={test_fraction}")
    split_of = {key: "test" for key in keys[:n_test]}
    split_of.update({key: "val" for key in keys[n_test:n_test + n_val]})
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, graph in enumerate(graphs):
        splits[split_of.get(question_key(graph.question), "train")].append(i)
    return splits


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        identity = backend.to_str()
    else:
        identity = f"{tokenizer.name_or_path}:{len(tokenizer)}"
    return hashlib.sha256(identity.encode()).hexdigest()


class SourceDataModule(L.LightningDataModule):
    """What every data module over MAG JSONL shares: the source (a file, or an importer
    run once), the split by question, the prompt format, loaders and held-out questions.

    Give either ``graphs`` (a MAG JSONL path) or ``importer`` (``{format, path,
    options}`` for :func:`magdi_lightning.sources.import_graphs`, materialised once to
    ``cache_dir``). ``encoder_decoder`` says whether the student is an encoder-decoder
    (``magdi-train`` sets it from the student). ``max_graphs`` keeps only the file's
    first graphs (the papers' "1,000 graphs per data set"). ``answer_sentence``,
    ``always_state_answer`` and ``remove_agreement`` say how a graph node's response text
    is built (:class:`~magdi_lightning.data.responses.ResponseText`, kept as
    ``self.response_text``): graph batches learn that text; task batches build their
    targets with their own task builder (TinyLLM cuts its rationales, SIKeD tags them) and
    leave these keys, which task data configs inherit from graph data configs, unused.
    Subclasses build ``self.examples`` per split in :meth:`build_examples` and say how to
    batch them in :meth:`collate`.
    """

    #: Whether the batches use incorrect nodes (graph batches: MR and NC); task batches
    #: learn correct targets only, so their data is not warned about lacking them.
    uses_incorrect_nodes: ClassVar[bool] = False

    def __init__(
        self,
        graphs: str | None = None,
        importer: dict[str, Any] | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        max_length: int = 512,
        mask_prompt: bool = True,
        template: str = "Question: {question}\nAnswer:",
        use_chat_template: bool | None = None,
        cache_dir: str = "outputs/cache",
        num_workers: int = 0,
        encoder_decoder: bool = False,
        max_graphs: int | None = None,
        answer_sentence: str | None = "So the answer is {answer}",
        always_state_answer: bool = False,
        remove_agreement: bool = False,
    ) -> None:
        super().__init__()
        if (graphs is None) == (importer is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of `graphs` and "
                             "`importer`")
        self.graphs_path = Path(graphs) if graphs else None
        self.importer = dict(importer) if importer else None
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.max_length = max_length
        self.mask_prompt = mask_prompt
        self.template, self.use_chat_template = template, use_chat_template
        self.cache_dir = Path(cache_dir)
        self.num_workers = num_workers
        self.encoder_decoder = encoder_decoder
        self.max_graphs = max_graphs
        self.response_text = ResponseText(answer_sentence, always_state_answer,
                                          remove_agreement)
        self.graph_list: list[ReasoningGraph] = []
        self.splits: dict[str, list[int]] = {}
        self.examples: dict[str, list[GraphExample]] = {}

    # ------------------------------------------------------------------ sources
    @cached_property
    def source_path(self) -> Path:
        """The MAG JSONL the module reads (the importer's cached output if importing).

        Cached: naming the importer's output hashes its input file, once per module.
        """
        if self.graphs_path is not None:
            return self.graphs_path
        assert self.importer is not None
        spec = json.dumps(self.importer, sort_keys=True, default=str)
        source = Path(str(self.importer.get("path", "")))
        if source.is_file():
            spec += _file_digest(source)
        name = f"{self.importer['format']}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
        return self.cache_dir / "imported" / f"{name}.jsonl"

    def prepare_data(self) -> None:
        """Run the importer once; later runs reuse its output."""
        if self.importer is None or self.source_path.exists():
            return
        from magdi_lightning.sources import import_graphs

        spec = dict(self.importer)
        graphs = import_graphs(spec.pop("format"), spec.pop("path", "default"),
                               **dict(spec.pop("options", None) or {}))
        count = write_graphs(self.source_path, graphs)
        log.info("imported %d graphs to %s", count, self.source_path)

    # ------------------------------------------------------------------ setup
    @property
    def formatter(self) -> PromptFormatter:
        if self.tokenizer is None:
            raise RuntimeError(f"{type(self).__name__} needs the student's tokenizer before "
                               "setup")
        return PromptFormatter(self.tokenizer, self.template, self.use_chat_template)

    def setup(self, stage: str | None = None) -> None:
        if self.examples:
            return
        self.prepare_data()
        self.graph_list = list(islice(read_graphs(self.source_path), self.max_graphs))
        _check_labels(self.graph_list, str(self.source_path), self.uses_incorrect_nodes)
        self.splits = split_by_question(self.graph_list, self.val_fraction, self.test_fraction,
                                        self.split_seed)
        self.examples = self.build_examples()
        log.info("examples per split: %s", {k: len(v) for k, v in self.examples.items()})

    def build_examples(self) -> dict[str, list[Any]]:
        """The examples of each split, from ``self.graph_list`` and ``self.splits``."""
        raise NotImplementedError

    def collate(self, examples: list[Any]) -> Any:
        """One batch from a list of examples."""
        raise NotImplementedError

    def cache_key(self, *parts: str) -> str:
        """A key for cached tokenization: the data, tokenizer and prompt format, plus
        ``parts`` (whatever else the subclass's tokenization depends on)."""
        return hashlib.sha256("|".join([
            _CACHE_VERSION, _file_digest(self.source_path), _tokenizer_digest(self.tokenizer),
            self.template, str(self.formatter.chat), str(self.max_length),
            str(self.max_graphs), *parts,
        ]).encode()).hexdigest()[:20]

    # ------------------------------------------------------------------ loaders
    def loader(self, split: str, shuffle: bool = False, batch_size: int | None = None
               ) -> StatefulDataLoader:
        """Batches of one split (default batch size: the eval batch size).

        A :class:`~torchdata.stateful_dataloader.StatefulDataLoader`, so Lightning's
        checkpoints hold the position inside the epoch and a resumed run sees exactly the
        batches it had not yet trained on. Every split goes through a ``DistributedSampler``
        over the trainer's processes (one process: all of it), whose order depends only on
        the seed and the epoch: ``n`` processes with batch size ``b`` see in each step the
        very examples one process with batch size ``n*b`` would.
        """
        if not self.examples:
            self.setup()
        trainer = self.trainer
        sampler = DistributedSampler(
            self.examples[split], num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0, shuffle=shuffle,
            seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))
        return StatefulDataLoader(
            self.examples[split], batch_size=batch_size or self.eval_batch_size,
            sampler=sampler, collate_fn=self.collate,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> StatefulDataLoader:
        return self.loader("train", shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> StatefulDataLoader:
        return self.loader("val")

    def test_dataloader(self) -> StatefulDataLoader:
        return self.loader("test")

    def held_out_questions(self, split: str = "test") -> list[Question]:
        """The distinct questions of a split with their gold answers, as benchmark items."""
        if not self.examples:
            self.setup()
        seen: dict[str, Question] = {}
        for i in self.splits[split]:
            graph = self.graph_list[i]
            seen.setdefault(question_key(graph.question),
                            Question(id=graph.id, question=graph.question,
                                             gold=graph.gold_answer, task=graph.task))
        return list(seen.values())


class GraphDataModule(SourceDataModule):
    """Graph batches of MAG data for any student tokenizer; ``batch_size`` counts graphs,
    not nodes. Every node is tokenized once and cached on disk.

    A node's response is ``self.response_text`` of it: its reasoning, ending in its answer
    sentence when the reasoning does not state the answer (see :class:`SourceDataModule`).
    ``packing`` packs each batch into one row, every prompt and response once (see
    :mod:`magdi_lightning.data.batch`); otherwise each sequence is a padded row.

    ``batch_unit="pair_rows"`` batches the MAGDi reference code's rows instead of graphs
    (:mod:`magdi_lightning.data.pair_rows`; ``batch_size`` then counts rows, and
    ``row_graphs`` says which graph each row carries), the batches
    ``method=magdi_reference`` trains on. The other keywords are :class:`SourceDataModule`'s.
    """

    uses_incorrect_nodes = True

    def __init__(self, *args: Any, packing: bool = False, batch_unit: str = "graphs",
                 row_graphs: str = "cycled", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if batch_unit not in BATCH_UNITS:
            raise ValueError(f"batch_unit must be one of {BATCH_UNITS}, got {batch_unit!r}")
        if row_graphs not in ROW_GRAPHS:
            raise ValueError(f"row_graphs must be one of {ROW_GRAPHS}, got {row_graphs!r}")
        self.packing = packing
        self.batch_unit = batch_unit
        self.row_graphs = row_graphs

    def build_examples(self) -> dict[str, list[GraphExample]]:
        if self.encoder_decoder:
            raise ValueError("graph batches need a causal LM student (the graph losses pool "
                             "its hidden states); use method=tinyllm for seq2seq students")
        tokenized = self._tokenized_nodes()
        input_ids = tokenized["input_ids"]
        prompt_lengths = tokenized["prompt_length"]
        examples: list[GraphExample] = []
        uid = 0
        for graph in self.graph_list:
            n = len(graph.nodes)
            examples.append(graph_example(graph, input_ids[uid:uid + n],
                                          prompt_lengths[uid:uid + n], uid))
            uid += n
        per_split = {name: [examples[i] for i in indices]
                     for name, indices in self.splits.items()}
        if self.batch_unit == "graphs":
            return per_split
        negative = self.padding_negative()
        return {name: pair_rows(graphs, negative, self.row_graphs)
                for name, graphs in per_split.items()}

    def collate(self, examples: list[Any]) -> Any:
        if self.batch_unit == "pair_rows":
            return collate_pair_rows(examples, self.tokenizer.pad_token_id, self.mask_prompt)
        return collate_graphs(examples, pad_token_id=self.tokenizer.pad_token_id,
                              mask_prompt=self.mask_prompt, packing=self.packing)

    def padding_negative(self) -> torch.Tensor:
        """The reference's "NA" negative as its tokenizer call makes it: special tokens
        (BOS) and, as its ``add_eos_token=True`` tokenizer adds, a closing EOS."""
        ids = list(self.tokenizer(PADDING_NEGATIVE)["input_ids"])
        eos = self.tokenizer.eos_token_id
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        return torch.tensor(ids, dtype=torch.long)

    def node_sequences(self) -> list[torch.Tensor]:
        """Every node's token ids (prompt and response), in dataset-wide node order."""
        if not self.graph_list:
            self.setup()
        return self._tokenized_nodes()["input_ids"]

    def _tokenized_nodes(self) -> dict[str, list[Any]]:
        """Token ids and prompt length of every node, from the cache when present."""
        cache = self.cache_dir / "tokenized" / self.cache_key(self.response_text.describe())
        if cache.exists():
            table = datasets.load_from_disk(str(cache))
        else:
            nodes = datasets.Dataset.from_dict({
                "question": [g.question for g in self.graph_list for _ in g.nodes],
                "response": [self.response_text(node, g.task)
                             for g in self.graph_list for node in g.nodes],
            })
            table = nodes.map(self._tokenize, batched=True, batch_size=1000,
                              remove_columns=["question", "response"])
            table.save_to_disk(str(cache))
        return {"input_ids": [torch.tensor(ids, dtype=torch.long) for ids in table["input_ids"]],
                "prompt_length": list(table["prompt_length"])}

    def _tokenize(self, batch: dict[str, list[str]]) -> dict[str, list[Any]]:
        input_ids, prompt_lengths = self.formatter.encode_pairs(
            batch["question"], batch["response"], self.max_length)
        return {"input_ids": input_ids, "prompt_length": prompt_lengths}


def graph_example(graph: ReasoningGraph, input_ids: list[torch.Tensor],
                  prompt_lengths: list[int], first_uid: int) -> GraphExample:
    """Labels, (correct, incorrect) pairs and edges of one tokenized graph."""
    index = graph.node_index
    labels = [_LABELS[node.correctness] for node in graph.nodes]
    correct = [i for i, label in enumerate(labels) if label == CORRECT]
    incorrect = [i for i, label in enumerate(labels) if label == INCORRECT]
    pairs = torch.tensor(list(product(correct, incorrect)), dtype=torch.long).reshape(-1, 2).T
    edges = torch.tensor([[index[e.source], index[e.target]] for e in graph.edges],
                         dtype=torch.long).reshape(-1, 2).T
    return GraphExample(
        graph_id=graph.id, input_ids=input_ids, prompt_lengths=prompt_lengths,
        node_labels=torch.tensor(labels, dtype=torch.long), edge_index=edges.contiguous(),
        pairs=pairs.contiguous(),
        node_uids=torch.arange(first_uid, first_uid + len(graph.nodes), dtype=torch.long),
    )


def _check_labels(graphs: list[ReasoningGraph], source: str,
                  uses_incorrect: bool = True) -> None:
    """No graphs is an error; graphs without both labels train some losses on nothing
    (without incorrect nodes, only for batches that use them)."""
    if not graphs:
        raise RecordError("no graphs to train on (the file is empty)", file=source)
    labels = Counter(node.correctness for graph in graphs for node in graph.nodes)
    correct, incorrect = labels[Correctness.CORRECT], labels[Correctness.INCORRECT]
    if not correct or (uses_incorrect and not incorrect):
        log.warning(
            "%s: %d nodes labelled correct, %d incorrect, %d unknown: the losses that need "
            "both labels (MAGDi's margin ranking and node classification) cannot train%s",
            source, correct, incorrect, labels[Correctness.UNKNOWN],
            "" if correct else ", nor anything that trains on correct responses only")


def __getattr__(name: str) -> Any:
    """Old names of renamed classes, for one release (:mod:`magdi_lightning._compat`)."""
    return _compat.renamed_attribute(__name__, name)
