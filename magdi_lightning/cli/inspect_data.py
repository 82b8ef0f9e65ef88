"""``magdi-inspect``: N training examples exactly as the student sees them; nothing trains.

A data config is worth checking before paying for GPUs: what a prompt looks like after the
template, what the target is, which tokens carry a next-token label. This command builds
the very data module training builds (``magdi-train``'s config, or ``magdi-siked``'s
iteration 1) from the student's tokenizer alone (no weights are loaded; tokenization comes
from the data module's cache), seeds as training does, takes the first batches of the
train (or val) loader, and decodes each batch's own tensors:

- a :class:`~magdi_lightning.data.batch.GraphBatch` (packed or not): per graph its nodes,
  each node's sequence (prompt, then response) with the tokens that have a target in
  ``target_index``/``target_ids``, its node label (NC) and provenance (agent, round,
  correctness, from ``node_uids``), and the graph's (correct, incorrect) pairs and edges;
- a :class:`~magdi_lightning.data.pair_rows.PairRowBatch` (``method=magdi_reference``):
  per row the positive's sequence with its labelled tokens (the whole sequence, as the
  reference labels it), the negative's text ("NA" for a graph without incorrect nodes),
  the nodes they came from, and the graph the row's node classification sees;
- a :class:`~magdi_lightning.data.task_datamodule.TaskBatch`: per row its task, the
  tokens it reads and the ones its ``labels`` count (as the task module's loss counts
  them), the teacher a rationale task names, the strategy tag a target opens with, and the
  graph (question) it came from.

Every decoded label is checked against the token it labels, so the view is the batch, not
a re-rendering of the data. ``inspect.output`` writes one JSON record per example; the
terminal view (rich) highlights label-carrying tokens. For ``magdi-siked`` only iteration 1
can be shown: later iterations add the student's own samples, which need a trained student.
"""

from __future__ import annotations

import bisect
import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig
from transformers import PreTrainedTokenizerBase

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.common import build_datamodule
from magdi_lightning.cli.siked import iteration_data, training_set
from magdi_lightning.data.batch import GraphBatch
from magdi_lightning.data.datamodule import SourceDataModule
from magdi_lightning.data.pair_rows import PairRow, PairRowBatch
from magdi_lightning.data.task_datamodule import TaskBatch, TaskDataModule
from magdi_lightning.graph import write_graphs
from magdi_lightning.io import write_lines_atomically
from magdi_lightning.losses import IGNORE_INDEX
from magdi_lightning.methods.siked import mix
from magdi_lightning.models.student import is_encoder_decoder, load_tokenizer, student_path
from magdi_lightning.strategies import split_strategy

__all__ = ["inspect_examples", "main"]

log = logging.getLogger(__name__)

#: The primary config of each entry point (``entry=...`` on the command line).
CONFIGS = {"train": "inspect", "siked": "inspect_siked"}
_LOAD_STUDENT = "magdi_lightning.models.student.load_student"


# --------------------------------------------------------------------------- data
def student_tokenizer(spec: DictConfig) -> tuple[PreTrainedTokenizerBase, bool]:
    """The configured student's tokenizer and whether it is an encoder-decoder, without
    its weights when it is built by ``load_student`` (every shipped student is)."""
    if spec.get("_target_") != _LOAD_STUDENT:
        student = instantiate(spec)
        return student.tokenizer, student.is_encoder_decoder
    name_or_path = student_path(spec.get("name_or_path"), spec.get("gguf"))
    return (load_tokenizer(name_or_path, spec.get("tokenizer")),
            is_encoder_decoder(name_or_path, spec.get("model_type", "llama")))


def _siked_iteration_one(cfg: DictConfig, tokenizer: PreTrainedTokenizerBase,
                         encoder_decoder: bool, workdir: Path) -> TaskDataModule:
    """magdi-siked's iteration-1 data module: the mixture of the teacher data alone."""
    source = build_datamodule(cfg, tokenizer, encoder_decoder)
    source.setup()
    questions, teacher = training_set(source, cfg.strategies)
    mixture = mix(questions, teacher, {}, cfg.mixing, cfg.selection)
    mixture_file = workdir / "iteration_1.jsonl"
    write_graphs(mixture_file, mixture.graphs)
    log.info("iteration 1 mixture: %d teacher examples by strategy %s", mixture.teacher_examples,
             mixture.teacher_by_strategy)
    return iteration_data(cfg, mixture_file, tokenizer, encoder_decoder)


def _recorded_batches(data: SourceDataModule, split: str) -> Iterator[tuple[Any, list[Any]]]:
    """The split's batches as its loader yields them (training's: shuffled as epoch 0 of a
    run with this seed), each with the examples it was collated from."""
    if split not in ("train", "val"):
        raise ValueError(f"inspect.split must be 'train' or 'val', got {split!r}")
    if not data.examples.get(split):
        raise ValueError(f"the {split} split has no examples (data.val_fraction is 0, or this "
                         "is magdi-siked's iteration data, which is all training data): use "
                         "inspect.split=train")
    received: list[list[Any]] = []
    collate = data.collate

    def recording(examples: list[Any]) -> Any:
        received.append(list(data.pairs_of(examples) if isinstance(data, TaskDataModule)
                             else examples))
        return collate(examples)

    data.num_workers = 0  # collate in this process, where the recording is seen
    data.collate = recording  # type: ignore[method-assign]
    loader = data.train_dataloader() if split == "train" else data.val_dataloader()
    for batch in loader:
        yield batch, received.pop()


# --------------------------------------------------------------------------- decoding
class _Decoder:
    """Token pieces and text of id sequences; a labelled run's text is the difference of
    prefix decodings, so pieces decode with the spaces they carry in context."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def tokens(self, ids: list[int], labelled: list[bool]) -> list[dict[str, Any]]:
        pieces = self.tokenizer.convert_ids_to_tokens(ids)
        return [{"id": i, "piece": p, "label": flag} for i, p, flag in zip(ids, pieces, labelled)]

    def spans(self, ids: list[int], labelled: list[bool], prompt_length: int
              ) -> list[dict[str, Any]]:
        """The whole sequence as maximal runs of tokens equally labelled and on the same
        side of the prompt's end: ``{text, label, part}`` (part: prompt or response)."""
        bounds = sorted({0, prompt_length, len(ids),
                         *(j for j in range(1, len(ids)) if labelled[j] != labelled[j - 1])})
        texts = [self.text(ids[:b]) for b in bounds]
        return [{"text": (texts[k + 1][len(texts[k]):] if texts[k + 1].startswith(texts[k])
                          else self.text(ids[bounds[k]:bounds[k + 1]])),
                 "label": labelled[bounds[k]],
                 "part": "prompt" if bounds[k] < prompt_length else "response"}
                for k in range(len(bounds) - 1)]


def _sequence(decoder: _Decoder, ids: list[int], labelled: list[bool],
              prompt_length: int) -> dict[str, Any]:
    return {"prompt": decoder.text(ids[:prompt_length]),
            "target": decoder.text([i for i, flag in zip(ids, labelled) if flag]),
            "label_count": sum(labelled), "prompt_length": prompt_length,
            "spans": decoder.spans(ids, labelled, prompt_length),
            "tokens": decoder.tokens(ids, labelled)}


class _NodeIndex:
    """Dataset-wide node index (``node_uids``) -> (graph, node), as the module numbers them:
    nodes counted graph by graph over ``graph_list``."""

    def __init__(self, data: SourceDataModule) -> None:
        self.graphs = data.graph_list
        self.starts, total = [], 0
        for graph in self.graphs:
            self.starts.append(total)
            total += len(graph.nodes)

    def __call__(self, uid: int) -> tuple[Any, Any]:
        g = bisect.bisect_right(self.starts, uid) - 1
        return self.graphs[g], self.graphs[g].nodes[uid - self.starts[g]]


def _graph_sequences(batch: GraphBatch) -> list[tuple[list[int], list[bool], int]]:
    """Each sequence's (token ids, labelled flags, prompt length), from the batch's flat
    indices: sequence u is prompt ``seq_prompt[u]`` then response u, and each target entry
    labels the token after the hidden state at ``target_index`` in its sequence."""
    flat = batch.input_ids.reshape(-1).tolist()
    prompts = [row[row >= 0].tolist() for row in batch.prompt_tokens]
    out = []
    for u in range(batch.num_seqs):
        response = batch.response_tokens[u]
        index = prompts[int(batch.seq_prompt[u])] + response[response >= 0].tolist()
        position = {flat_index: j for j, flat_index in enumerate(index)}
        labelled = [False] * len(index)
        for k in (batch.target_seq == u).nonzero().flatten().tolist():
            j = position[int(batch.target_index[k])] + 1
            if j >= len(index) or flat[index[j]] != int(batch.target_ids[k]):
                raise RuntimeError(f"target {k} of sequence {u} does not label the token "
                                     "after its predictor: the batch is inconsistent")
            labelled[j] = True
        out.append(([flat[i] for i in index], labelled,
                    len(prompts[int(batch.seq_prompt[u])])))
    return out


def _graph_records(batch: GraphBatch, decoder: _Decoder, nodes: _NodeIndex,
                   limit: int) -> list[dict[str, Any]]:
    sequences = _graph_sequences(batch)
    graph_of_node = batch.node_graph.tolist()
    records = []
    for g, graph_id in enumerate(batch.graph_ids[:limit]):
        members = [n for n, owner in enumerate(graph_of_node) if owner == g]
        first = members[0]
        graph, _ = nodes(int(batch.node_uids[first]))
        if graph.id != graph_id:
            raise RuntimeError(f"node_uids of graph {graph_id} point into graph {graph.id}")
        node_records = []
        for n in members:
            _, node = nodes(int(batch.node_uids[n]))
            u = int(batch.node_to_seq[n])
            node_records.append({
                "node": n - first, "id": node.id, "agent": node.agent, "model": node.model,
                "round": node.round, "correctness": node.correctness.value,
                "answer": node.answer, "strategy": node.strategy,
                "node_label": int(batch.node_labels[n]), "sequence": u,
                **_sequence(decoder, *sequences[u])})
        in_graph = batch.pair_graph == g
        edges = batch.graph.edge_index[:, batch.node_graph[batch.graph.edge_index[0]] == g]
        records.append({
            "kind": "graph", "graph_id": graph_id, "task": graph.task,
            "question": graph.question, "gold_answer": graph.gold_answer,
            "packed": batch.packed, "node_labels": [r["node_label"] for r in node_records],
            "pairs": (batch.pairs[:, in_graph] - first).T.tolist(),
            "edges": (edges - first).T.tolist(), "nodes": node_records})
    return records


def _node_source(nodes: _NodeIndex, uid: int) -> dict[str, Any]:
    graph, node = nodes(uid)
    return {"graph_id": graph.id, "id": node.id, "agent": node.agent, "round": node.round,
            "correctness": node.correctness.value, "answer": node.answer}


def _pair_row_records(batch: PairRowBatch, rows: list[PairRow], decoder: _Decoder,
                      nodes: _NodeIndex, limit: int) -> list[dict[str, Any]]:
    records = []
    for r, row in enumerate(rows[:limit]):
        keep = batch.positive_mask[r] == 1
        ids, labels = batch.positive_ids[r][keep].tolist(), batch.positive_labels[r][keep]
        # The loss reads labels[1:] (hidden state t predicts token t + 1).
        labelled = [j >= 1 and int(label) != IGNORE_INDEX for j, label in enumerate(labels)]
        if any(flag and int(labels[j]) != ids[j] for j, flag in enumerate(labelled)):
            raise RuntimeError(f"row {r}: a label differs from the token it labels")
        negative = batch.negative_ids[r][batch.negative_mask[r] == 1].tolist()
        graph, _ = nodes(int(row.graph.node_uids[0]))
        records.append({
            "kind": "pair_row", "row": r, "task": graph.task,
            "question": graph.question, "gold_answer": graph.gold_answer,
            "positive_node": _node_source(nodes, row.positive_uid),
            "negative_node": (None if row.negative_uid is None
                              else _node_source(nodes, row.negative_uid)),
            "negative": decoder.text(negative),
            "nc_graph_id": row.graph.graph_id,
            "nc_node_labels": row.graph.node_labels.tolist(),
            **_sequence(decoder, ids, labelled, row.positive_prompt_length)})
    return records


class _TaskSources:
    """Each task example's graph and untokenized pair: the module's builder rerun over the
    split's graphs, in the order ``build_examples`` lists them (checked by task name; on
    a mismatch the source is left unknown rather than guessed)."""

    def __init__(self, data: TaskDataModule, split: str) -> None:
        pairs = [(data.graph_list[i], t) for i in data.splits[split]
                 for t in data.tasks.tasks(data.graph_list[i])]
        examples = data.pairs_of(data.examples[split])
        names = data.task_names
        self.by_example: dict[int, tuple[Any, Any]] = {}
        if len(pairs) == len(examples) and all(
                names[e.task] == t.task for e, (_, t) in zip(examples, pairs)):
            self.by_example = {id(e): p for e, p in zip(examples, pairs)}
        else:
            log.warning("task examples are not listed graph by graph; their source graphs "
                        "are not shown")

    def __call__(self, example: Any) -> tuple[Any, Any] | tuple[None, None]:
        return self.by_example.get(id(example), (None, None))


def _task_records(batch: TaskBatch, examples: list[Any], decoder: _Decoder,
                  sources: _TaskSources, encoder_decoder: bool,
                  limit: int) -> list[dict[str, Any]]:
    records = []
    for r in range(min(batch.size, limit)):
        ids = batch.input_ids[r][batch.attention_mask[r] == 1].tolist()
        labels = batch.labels[r]
        if encoder_decoder:
            # The encoder reads the prompt; every decoder label is a target.
            target = labels[labels != IGNORE_INDEX].tolist()
            sequence = _sequence(decoder, ids + target,
                                 [False] * len(ids) + [True] * len(target), len(ids))
        else:
            # The loss reads labels[1:] (hidden state t predicts token t + 1).
            row = labels[: len(ids)].tolist()
            labelled = [j >= 1 and label != IGNORE_INDEX for j, label in enumerate(row)]
            if any(flag and row[j] != ids[j] for j, flag in enumerate(labelled)):
                raise RuntimeError(f"row {r}: a label differs from the token it labels")
            prompt_length = next((j for j, flag in enumerate(labelled) if flag), len(ids))
            sequence = _sequence(decoder, ids, labelled, prompt_length)
        task = batch.task_names[int(batch.task_index[r])]
        graph, pair = sources(examples[r])
        records.append({
            "kind": "task", "row": r, "task": task,
            "teacher": task.split("/", 1)[1] if task.startswith("rationale/") else None,
            "strategy": split_strategy(sequence["target"])[0],
            "prefix": pair.prefix if pair else None,
            "graph_id": graph.id if graph else None,
            "question": graph.question if graph else None,
            "gold_answer": graph.gold_answer if graph else None,
            "encoder_decoder": encoder_decoder, **sequence})
    return records


def inspect_examples(cfg: DictConfig) -> list[dict[str, Any]]:
    """The first ``cfg.inspect.n`` examples of the configured training data, one record
    each (a graph of a graph batch, a row of a task batch), with the batch they are in."""
    settings = cfg.inspect
    L.seed_everything(cfg.seed, workers=True)  # the order training's loader shuffles in
    tokenizer, encoder_decoder = student_tokenizer(cfg.student)
    decoder = _Decoder(tokenizer)
    with tempfile.TemporaryDirectory(prefix="magdi-inspect-") as workdir:
        data = (_siked_iteration_one(cfg, tokenizer, encoder_decoder, Path(workdir))
                if settings.entry == "siked"
                else build_datamodule(cfg, tokenizer, encoder_decoder))
        data.setup("fit")
        nodes = _NodeIndex(data)
        sources = _TaskSources(data, settings.split) if isinstance(data, TaskDataModule) else None
        records: list[dict[str, Any]] = []
        for b, (batch, examples) in enumerate(_recorded_batches(data, settings.split)):
            left = settings.n - len(records)
            if left <= 0:
                break
            if isinstance(batch, GraphBatch):
                found = _graph_records(batch, decoder, nodes, left)
            elif isinstance(batch, PairRowBatch):
                found = _pair_row_records(batch, examples, decoder, nodes, left)
            elif isinstance(batch, TaskBatch):
                assert sources is not None
                found = _task_records(batch, examples, decoder, sources, encoder_decoder,
                                      left)
            else:
                raise TypeError(f"magdi-inspect cannot read a {type(batch).__name__} batch")
            records.extend({"entry": settings.entry, "split": settings.split, "batch": b,
                            **record} for record in found)
    return records


# --------------------------------------------------------------------------- output
#: Around label-carrying text where the console shows no colour (a pipe, a log file).
MARKS = ("⟦", "⟧")


def _highlighted(spans: list[dict[str, Any]], marks: bool) -> Any:
    from rich.text import Text

    text = Text()
    for span in spans:
        if not span["label"]:
            text.append(span["text"], style="dim")
        else:
            part = f"{MARKS[0]}{span['text']}{MARKS[1]}" if marks else span["text"]
            text.append(part, style="bold green underline")
    return text


def _graph_lines(record: dict[str, Any], marks: bool) -> list[Any]:
    """A graph's pairs and node labels, its prompt once when no node learns prompt tokens,
    and each node's sequence (a sequence shared by several nodes is shown once)."""
    from rich.text import Text

    nodes = record["nodes"]
    shared = len({n["prompt"] for n in nodes}) == 1 and not any(
        s["label"] for n in nodes for s in n["spans"] if s["part"] == "prompt")
    lines: list[Any] = [Text(f"node labels (NC): {record['node_labels']}   pairs (correct, "
                             f"incorrect): {[tuple(p) for p in record['pairs']]}",
                             style="cyan")]
    if shared:
        lines.append(Text(f"prompt (no labels): {nodes[0]['prompt']}", style="dim"))
    shown: dict[int, int] = {}
    for node in nodes:
        lines.append(Text(
            f"node {node['node']} · {node['agent']} · round {node['round']} · "
            f"{node['correctness']} (NC label {node['node_label']}) · answer {node['answer']!r}"
            f" · {node['label_count']} labelled tokens", style="bold"))
        if node["sequence"] in shown:
            lines.append(Text(f"  same sequence as node {shown[node['sequence']]}",
                              style="italic"))
            continue
        shown[node["sequence"]] = node["node"]
        lines.append(_highlighted([s for s in node["spans"]
                                   if not (shared and s["part"] == "prompt")], marks))
    return lines


def _task_lines(record: dict[str, Any], marks: bool) -> list[Any]:
    """A row's source and its sequence; an encoder-decoder's input and target apart."""
    from rich.text import Text

    source = "  ".join(f"{key} {record[key]}" for key in ("teacher", "strategy", "graph_id")
                       if record[key] is not None)
    lines = [Text(f"{source}  {record['label_count']} labelled tokens".strip(), style="bold")]
    if not record["encoder_decoder"]:
        return [*lines, _highlighted(record["spans"], marks)]
    for part, name in (("prompt", "encoder"), ("response", "decoder")):
        lines.append(Text.assemble((f"{name}: ", "italic"), _highlighted(
            [s for s in record["spans"] if s["part"] == part], marks)))
    return lines


def _pair_row_lines(record: dict[str, Any], marks: bool) -> list[Any]:
    """A row's positive (its labelled tokens highlighted), its negative and NC graph."""
    from rich.text import Text

    positive, negative = record["positive_node"], record["negative_node"]
    source = (f"negative: {negative['agent']} · round {negative['round']}" if negative
              else "negative: the padding negative (graph without incorrect nodes)")
    return [
        Text(f"positive: {positive['agent']} · round {positive['round']} · graph "
             f"{positive['graph_id']} · {record['label_count']} labelled tokens", style="bold"),
        _highlighted(record["spans"], marks),
        Text(source, style="bold"),
        Text(record["negative"], style="dim"),
        Text(f"NC graph {record['nc_graph_id']}: node labels {record['nc_node_labels']}",
             style="cyan")]


def render(records: list[dict[str, Any]], console: Any) -> None:
    """The terminal view: a panel per example, label-carrying tokens in bold green
    (underlined; between ⟦ ⟧ where the console has no colour), the rest dim."""
    from rich.panel import Panel
    from rich.text import Text

    marks = console.color_system is None
    for record in records:
        if record["kind"] == "graph":
            layout = "packed" if record["packed"] else "unpacked"
            title = (f"batch {record['batch']} · graph {record['graph_id']} · "
                     f"{len(record['nodes'])} nodes · {layout}")
            lines = _graph_lines(record, marks)
        elif record["kind"] == "pair_row":
            title = f"batch {record['batch']} · pair row {record['row']}"
            lines = _pair_row_lines(record, marks)
        else:
            title = f"batch {record['batch']} · row {record['row']} · task {record['task']}"
            lines = _task_lines(record, marks)
        console.print(Panel(Text("\n").join(lines), title=title, title_align="left"))


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    """Inspect, write ``inspect.output`` if given, and print the terminal view."""
    from rich.console import Console

    records = inspect_examples(cfg)
    if cfg.inspect.output:
        path = Path(cfg.inspect.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_lines_atomically(path, (json.dumps(r, ensure_ascii=False) for r in records))
        log.info("wrote %d examples to %s", len(records), path)
    if cfg.inspect.show:
        render(records, Console(soft_wrap=False))
    return records


def _entry(args: list[str]) -> tuple[str, list[str]]:
    """The entry point whose config to compose (``entry=train|siked``, else siked for an
    ``experiment=siked/...``) and the remaining Hydra arguments."""
    chosen = [a.split("=", 1)[1] for a in args if a.startswith("entry=")]
    rest = [a for a in args if not a.startswith("entry=")]
    if chosen:
        if chosen[-1] not in CONFIGS:
            raise SystemExit(f"magdi-inspect: entry must be one of {sorted(CONFIGS)}, "
                             f"got {chosen[-1]!r}")
        return chosen[-1], rest
    siked = any(a.startswith("experiment=siked/") for a in rest)
    return ("siked" if siked else "train"), rest


def main() -> None:
    """Console entry point: picks the config (``entry=``), then Hydra parses the rest."""
    entry, rest = _entry(sys.argv[1:])
    sys.argv = [sys.argv[0], *rest]
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR),
               config_name=CONFIGS[entry])(run)()


if __name__ == "__main__":
    main()
