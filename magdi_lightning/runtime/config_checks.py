"""Config values checked as a run starts, before any model or data is loaded.

A wrong value must fail in the first second, naming its key, and not at the first
training step (a method fed batches it cannot read), deep inside a library
(transformers' "Repo id must be in the form ..." for a student directory that is not
there) or never (a negative learning rate trains uphill; an unknown loss-weight key is
silently ignored). :func:`check_config` runs first in ``magdi-train``, ``magdi-siked``
and ``magdi-eval`` and reports every problem at once as one
:class:`~magdi_lightning.errors.UserError`. A check applies only where its key is
in the config, so the one function serves every command's config.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from magdi_lightning.errors import UserError

__all__ = ["check_config", "looks_like_a_path"]

#: Returned by :func:`_get` for a key the config does not have (or leaves ``???``).
_ABSENT = object()
#: A reason a value is wrong, or None when it is fine.
Rule = Callable[[Any], str | None]


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not math.isfinite(value):
        return "must be a finite number"
    return None


def _non_negative(value: Any) -> str | None:
    return _number(value) or ("must be >= 0" if value < 0 else None)


def _positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number"
    return "must be >= 1" if value < 1 else None


def _non_negative_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number"
    return "must be >= 0" if value < 0 else None


def _optional(rule: Rule) -> Rule:
    return lambda value: None if value is None else rule(value)


def _fraction(value: Any) -> str | None:
    return _number(value) or (None if 0 <= value < 1 else
                              "must be in [0, 1) (the share of questions held out; 0: none)")


#: Values with a rule of their own, by key; a key absent from a command's config is skipped.
_RULES: tuple[tuple[str, Rule], ...] = (
    ("optimizer.lr", _non_negative),
    ("optimizer.weight_decay", _non_negative),
    ("scheduler.warmup_steps", _non_negative_int),
    ("method.default_weight", _non_negative),
    ("method.margin", _non_negative),
    ("data.batch_size", _positive_int),
    ("data.eval_batch_size", _optional(_positive_int)),
    ("data.max_length", _positive_int),
    ("data.max_graphs", _optional(_positive_int)),
    ("data.val_fraction", _fraction),
    ("data.test_fraction", _fraction),
    ("trainer.accumulate_grad_batches", _positive_int),
    ("evaluate.batch_size", _positive_int),
    ("evaluate.max_new_tokens", _positive_int),
    ("evaluate.max_questions", _optional(_positive_int)),
    ("iterations", _positive_int),
    ("patience", _positive_int),
    ("checkpoint_every", _positive_int),
    ("sampling.batch_size", _positive_int),
    ("sampling.samples_per_strategy", _positive_int),
    ("generation.batch_size", _positive_int),
    ("generation.max_new_tokens", _positive_int),
    ("self_consistency.k", _positive_int),
    ("limit", _optional(_positive_int)),
)
#: Keys naming a student or tokenizer: a Hub name, or a local path that must exist.
_MODEL_KEYS = ("student.name_or_path", "student.tokenizer", "student.gguf", "model",
               "tokenizer")
#: Keys naming an input file that must exist.
_FILE_KEYS = ("data.graphs", "teacher_graphs")


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`UserError` listing every bad value of ``cfg``, each by its key."""
    problems = [*_missing(cfg), *_values(cfg), *_fractions(cfg), *_steps(cfg),
                *_weights(cfg), *_targets(cfg), *_method_fits_data(cfg), *_data_options(cfg),
                *_sources(cfg), *_paths(cfg)]
    if problems:
        raise UserError("invalid config (set these on the command line or in conf/):\n"
                        + "\n".join(f"  {problem}" for problem in problems))


def looks_like_a_path(name: str) -> bool:
    """Whether a model name is meant as a local path rather than a Hub name
    (``org/model``): absolute, ``./``, ``../`` or ``~``, more than one ``/``, in a
    directory that exists, or a Lightning checkpoint (``.ckpt``)."""
    path = Path(name)
    return (path.is_absolute() or name.startswith(("./", "../", "~")) or name.count("/") > 1
            or (path.parent != Path(".") and path.parent.is_dir()) or name.endswith(".ckpt"))


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_ABSENT)


def _show(key: str, value: Any) -> str:
    return f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"


def _missing(cfg: DictConfig) -> Iterator[str]:
    """The ``???`` values, found without resolving interpolations (``OmegaConf.missing_keys``
    resolves them, and some only resolve inside a Hydra run)."""
    def walk(node: Any, key: str) -> Iterator[str]:
        if node == "???":
            yield f"{key}: required, but not set (pass {key}=...)"
        elif isinstance(node, dict):
            for name, child in node.items():
                if key or name != "hydra":
                    yield from walk(child, f"{key}.{name}" if key else str(name))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                yield from walk(child, f"{key}[{index}]")

    yield from walk(OmegaConf.to_container(cfg, resolve=False), "")


def _values(cfg: DictConfig) -> Iterator[str]:
    for key, rule in _RULES:
        value = _get(cfg, key)
        reason = None if value is _ABSENT else rule(value)
        if reason:
            yield f"{_show(key, value)}: {reason}"


def _fractions(cfg: DictConfig) -> Iterator[str]:
    val, test = _get(cfg, "data.val_fraction"), _get(cfg, "data.test_fraction")
    if not (_fraction(val) or _fraction(test)) and val + test >= 1:
        yield (f"data.val_fraction={val} + data.test_fraction={test}: hold out everything; "
               "their sum must be < 1")


def _steps(cfg: DictConfig) -> Iterator[str]:
    """Optimizer steps (of a run, of a SIKeD iteration): >= 1, or -1 to let
    ``trainer.max_epochs`` decide."""
    by_epochs = not _positive_int(_get(cfg, "trainer.max_epochs"))
    for key in ("trainer.max_steps", "steps.first", "steps.later"):
        steps = _get(cfg, key)
        if steps is _ABSENT or (steps == -1 and by_epochs):
            continue
        reason = _positive_int(steps)
        if reason:
            yield f"{_show(key, steps)}: {reason} (or -1 with trainer.max_epochs >= 1)"


def _weights(cfg: DictConfig) -> Iterator[str]:
    """Loss and task weights: each >= 0, and each naming a loss of the method or a task
    of the data (a misspelt key would be ignored silently)."""
    method, tasks = _class_at(cfg, "method"), _class_at(cfg, "data.tasks")
    for group, known in (("loss_weights", getattr(method, "LOSSES", None)),
                         ("task_weights", getattr(tasks, "task_patterns", None))):
        weights = _get(cfg, f"method.{group}")
        if not isinstance(weights, DictConfig):
            continue
        for name, weight in weights.items():
            key = f"method.{group}.{name}"
            reason = _non_negative(weight)
            if reason:
                yield f"{_show(key, weight)}: {reason}"
            if known is not None and not any(fnmatch.fnmatchcase(str(name), pattern)
                                             for pattern in known):
                owner = method if group == "loss_weights" else tasks
                yield (f"{key}: unknown {group.split('_')[0]} for {owner.__name__} "
                       f"(known: {', '.join(known)})")


def _method_fits_data(cfg: DictConfig) -> Iterator[str]:
    """The data module makes the batches the method trains on (the method config sets
    ``data._target_``; an override can break that), in the mode those batches are cut for
    (``method.mode=reference`` needs ``data.batch_unit=pair_rows``)."""
    method = _class_at(cfg, "method")
    needed = getattr(method, "datamodule_class", None)
    if needed is None:
        return
    data = _class_at(cfg, "data")
    if data is None:
        if _get(cfg, "data._target_") in (_ABSENT, None):
            yield (f"data._target_: not set; method._target_={cfg.method._target_} trains on "
                   f"{needed.__name__} batches (a method config sets data._target_ to the "
                   "module that makes them)")
        return
    if not issubclass(data, needed):
        yield (f"method._target_={cfg.method._target_} trains on {needed.__name__} batches, "
               f"but data._target_={cfg.data._target_} makes {data.__name__} batches: leave "
               "data._target_ to the method's config (conf/method)")
        return
    units, mode = getattr(method, "MODE_BATCH_UNITS", None), _get(cfg, "method.mode")
    if units is None or mode is _ABSENT:
        return
    if mode not in units:
        yield f"{_show('method.mode', mode)}: must be one of {', '.join(units)}"
        return
    unit = _get(cfg, "data.batch_unit")
    if unit is _ABSENT:
        unit = inspect.signature(data).parameters["batch_unit"].default
    if unit != units[mode]:
        yield (f"method.mode={mode} trains on data.batch_unit={units[mode]}, but "
               f"data.batch_unit={unit}"
               + (" (method=magdi_reference sets both)" if mode == "reference" else ""))


def _data_options(cfg: DictConfig) -> Iterator[str]:
    """Every ``data.`` key is an option of the data module the method picked (a graph
    option such as ``packing`` given to task batches would otherwise be a TypeError from
    deep inside instantiation)."""
    data = _class_at(cfg, "data")
    if data is None:
        return
    accepted: set[str] = set()
    for owner in data.__mro__:
        if "__init__" not in vars(owner):
            continue
        parameters = inspect.signature(owner.__init__).parameters.values()
        accepted |= {p.name for p in parameters if p.kind is not p.VAR_KEYWORD}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    for key in cfg.data:
        if key != "_target_" and key not in accepted:
            yield (f"data.{key}: not an option of {data.__name__}, the data module of "
                   f"method._target_={_get(cfg, 'method._target_')}")


def _paths(cfg: DictConfig) -> Iterator[str]:
    for key in _MODEL_KEYS:
        name = _get(cfg, key)
        if (isinstance(name, str) and looks_like_a_path(name)
                and not Path(name).expanduser().exists()):
            yield (f"{_show(key, name)}: no such file or directory (it looks like a local "
                   "path, so it is not looked up on the Hugging Face Hub)")
    for key in _FILE_KEYS:
        path = _get(cfg, key)
        if isinstance(path, str) and not Path(path).is_file():
            yield f"{_show(key, path)}: no such file"
    resume_dir = _get(cfg, "resume_dir")
    if isinstance(resume_dir, str) and not Path(resume_dir).is_dir():
        yield f"{_show('resume_dir', resume_dir)}: no such run directory"


def _sources(cfg: DictConfig) -> Iterator[str]:
    """A graph data config reads a file or runs an importer: exactly one of the two
    (``data=graphs`` leaves ``data.graphs`` to the user)."""
    graphs, importer = _get(cfg, "data.graphs"), _get(cfg, "data.importer")
    if _ABSENT in (graphs, importer):
        return
    if graphs is None and importer is None:
        yield "data.graphs: required, but not set (pass data.graphs=<MAG JSONL file>)"
    elif graphs is not None and importer is not None:
        yield (f"{_show('data.graphs', graphs)} and data.importer are both set: keep one "
               "(data.importer=null reads the file)")


def _targets(cfg: DictConfig) -> Iterator[str]:
    """The method's and data module's ``_target_`` import (a method of the user's own
    must be on ``PYTHONPATH``), said now rather than after the student is loaded."""
    for key in ("method", "data"):
        target = _get(cfg, f"{key}._target_")
        if not isinstance(target, str):
            continue
        try:
            get_class(target)
        except (ImportError, ValueError) as err:
            yield (f"{_show(key + '._target_', target)}: cannot be imported ({err}); a module "
                   "of your own must be importable, e.g. on PYTHONPATH")


def _class_at(cfg: DictConfig, key: str) -> type | None:
    """The class a config node's ``_target_`` names, or None (no such node, not
    importable (:func:`_targets` says so), or not a class: some targets are factories)."""
    target = _get(cfg, f"{key}._target_")
    if not isinstance(target, str):
        return None
    try:
        found = get_class(target)
    except (ImportError, ValueError):
        return None
    return found if isinstance(found, type) else None
