"""The worked example of docs/add-a-method.md (``tests/example_method``): its loss, a run
of it through ``magdi-train`` from outside the package, and the page itself, so the page
cannot go stale.

The page's file blocks (info string ``title="<path>"``) must equal those files; its
``magdi-train`` commands are run as the page gives them: the training one as a subprocess,
the one with the wrong data module in-process, its message compared with the page's.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from example_method.unlikelihood import MIN_COMPLEMENT, UnlikelihoodModule
from factories import examples, hand_graphs, tiny_student
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.errors import USAGE_ERROR, user_errors
from magdi_lightning.data import collate_graphs
from magdi_lightning.errors import UserError
from magdi_lightning.graph import Correctness
from magdi_lightning.models.student import load_student, load_student_from_checkpoint
from magdi_lightning.runtime.config_checks import check_config

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "add-a-method.md"
EXAMPLE_FILES = {"tests/example_method/unlikelihood.py",
                 "tests/example_method/conf/method/unlikelihood.yaml"}
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


# ------------------------------------------------------------------- the loss
@functools.cache
def _trained_state() -> dict[str, torch.Tensor]:
    """A tiny student after 30 NT steps on the hand graphs: it finds the correct responses
    likely, and so the tokens the incorrect ones share with them (p far from 0, where
    -log(1 - p) and p differ)."""
    torch.manual_seed(0)
    module = UnlikelihoodModule(tiny_student(), unlikelihood_weight=0.0)
    batch = collate_graphs(examples(module.student, hand_graphs()),
                           module.student.tokenizer.pad_token_id)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        module.compute_losses(batch)["loss"].backward()
        optimizer.step()
    return copy.deepcopy(module.student.state_dict())


def _student():
    torch.manual_seed(0)
    student = tiny_student()
    student.load_state_dict(_trained_state())
    return student.eval()


def _batch(student, packing: bool):
    return collate_graphs(examples(student, hand_graphs()), student.tokenizer.pad_token_id,
                          packing=packing)


@pytest.mark.parametrize("packing", [False, True])
def test_without_the_unlikelihood_term_the_loss_is_method_sfts(packing: bool) -> None:
    student = _student()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        method = compose(config_name="train", overrides=["method=sft"]).method
    sft = instantiate(method, student=copy.deepcopy(student), _convert_="all")
    ours = UnlikelihoodModule(student, unlikelihood_weight=0.0)
    batch = _batch(student, packing)
    expected, got = sft.compute_losses(batch), ours.compute_losses(batch)
    assert got["loss"].item() == pytest.approx(expected["loss"].item(), abs=1e-6)
    assert got["nt"].item() == pytest.approx(expected["nt"].item(), abs=1e-6)
    assert got["ul"].item() > 0.1  # computed and logged, weighted 0


def _unlikelihood_by_hand(student) -> float:
    """Each graph's mean of -log(1 - p) over its incorrect nodes' response tokens, p from
    the full logits of the node's own sequence alone; the mean over graphs having any."""
    per_graph = []
    for graph, example in zip(hand_graphs(), examples(student, hand_graphs())):
        terms = []
        for node, ids, prompt in zip(graph.nodes, example.input_ids, example.prompt_lengths):
            if node.correctness != Correctness.INCORRECT:
                continue
            with torch.no_grad():
                probs = student.model(input_ids=ids[None]).logits[0].float().softmax(-1)
            for j in range(prompt, len(ids)):  # token j is predicted at position j - 1
                p = probs[j - 1, ids[j]]
                terms.append(-torch.log((1 - p).clamp(min=MIN_COMPLEMENT)).item())
        if terms:
            per_graph.append(sum(terms) / len(terms))
    return sum(per_graph) / len(per_graph)


@pytest.mark.parametrize("packing", [False, True])
def test_the_unlikelihood_term_is_minus_log_one_minus_p_of_the_full_logits(
        packing: bool) -> None:
    student = _student()
    weight = 0.3
    with torch.no_grad():
        got = UnlikelihoodModule(student, unlikelihood_weight=weight).compute_losses(
            _batch(student, packing))
    expected = _unlikelihood_by_hand(student)
    assert expected > 0.1
    assert got["ul"].item() == pytest.approx(expected, abs=1e-5)
    assert got["loss"].item() == pytest.approx(got["nt"].item() + weight * expected, abs=1e-5)


def test_it_refuses_a_negative_weight_and_labelled_prompts() -> None:
    with pytest.raises(UserError, match="unlikelihood_weight=-1"):
        UnlikelihoodModule(tiny_student(), unlikelihood_weight=-1)
    module = UnlikelihoodModule(tiny_student())
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(mask_prompt=False))
    with pytest.raises(UserError, match=r"data\.mask_prompt=true"):
        module.on_fit_start()


# ------------------------------------------------------------------- the page
def _blocks() -> list[tuple[str, str]]:
    """The page's fenced blocks: (info string, body)."""
    return [(m["info"].strip(), m["body"]) for m in FENCE.finditer(PAGE.read_text())]


def _commands() -> list[tuple[dict[str, str], list[str], str | None]]:
    """Each ``magdi-train`` command of the page's bash blocks: its environment
    assignments, its arguments, and the text block right after it (its output), if any."""
    blocks = _blocks()
    found = []
    for k, (info, body) in enumerate(blocks):
        if info != "bash" or "magdi-train" not in body:
            continue
        words = shlex.split(body.replace("\\\n", " "), comments=True)
        program = words.index("magdi-train")
        env = dict(word.split("=", 1) for word in words[:program])
        output = blocks[k + 1][1] if k + 1 < len(blocks) and blocks[k + 1][0] == "text" \
            else None
        found.append((env, words[program + 1:], output))
    return found


def test_the_pages_file_blocks_are_the_example_files() -> None:
    shown = {}
    for info, body in _blocks():
        title = re.search(r'title="([^"]+)"', info)
        if title:
            shown[title[1]] = body
    assert set(shown) == EXAMPLE_FILES
    for path, body in shown.items():
        assert body == (REPO / path).read_text(), f"docs/add-a-method.md shows a stale {path}"


def _wrong_data(args: list[str]) -> bool:
    return any(arg.startswith("data._target_=") for arg in args)


def test_the_pages_wrong_data_command_fails_with_the_message_it_shows(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (env, args, output), = [c for c in _commands() if _wrong_data(c[1])]
    assert env == {"PYTHONPATH": "tests"}  # the test process has tests/ on sys.path too
    monkeypatch.chdir(REPO)  # the page's commands run from the repository root
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=args, return_hydra_config=True)
    with pytest.raises(SystemExit) as stopped, user_errors("magdi-train"):
        check_config(cfg)  # what magdi-train runs first
    assert stopped.value.code == USAGE_ERROR
    assert output is not None and capsys.readouterr().err.strip() == output.strip()


# ------------------------------------------------------------- magdi-train
def test_the_pages_command_trains_the_example_and_its_checkpoint_loads(
        tmp_path: Path) -> None:
    (env, args, _), = [c for c in _commands() if not _wrong_data(c[1])]
    environment = {**os.environ, **env, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    # As the page runs it (from the repository root), its run directory under tmp_path.
    result = subprocess.run(
        [sys.executable, "-m", "magdi_lightning.cli.train", *args,
         f"paths.log_dir={tmp_path / 'outputs'}"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (metrics_file,) = (tmp_path / "outputs").glob("train_*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["global_step"] == 5
    assert {"train/nt", "train/ul", "val/nt", "val/ul"} <= set(metrics)
    checkpoint = metrics_file.parent / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    yaml = OmegaConf.load(REPO / "tests/example_method/conf/method/unlikelihood.yaml")
    assert hparams["unlikelihood_weight"] == yaml.method.unlikelihood_weight
    loaded = load_student_from_checkpoint(checkpoint).state_dict()
    saved = load_student(name_or_path=str(metrics_file.parent / "student")).state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[name], saved[name]) for name in saved)
