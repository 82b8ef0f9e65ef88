"""Reports on an evaluation: token efficiency against the teachers, plots, wandb logging.

MAGDi's selling point is not only accuracy but cost: the distilled student answers with
up to 9x fewer tokens than the teachers' multi-agent discussion it learnt from. This
module measures that claim on our own data (:func:`teacher_tokens_per_question`,
:func:`token_efficiency`), draws the accuracy and token figures as PNGs that a README or
a paper can use directly, and sends the same material to Weights & Biases when a run
exists. Everything here is a pure function of predictions, graphs and metrics, so the
CLI decides when to call it and tests need neither Hydra nor a model.

Student and teachers are joined by question text (:func:`question_key`), because
benchmark example ids and graph ids are minted by different importers and never agree.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from magdi_lightning.io import atomic_file
from magdi_lightning.questions import question_key

# Type-only imports: Prediction's module loads torch and transformers (seconds), which
# reporting on saved results never needs.
if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from transformers import PreTrainedTokenizerBase
    from wandb import Table
    from wandb.sdk.wandb_run import Run

    from magdi_lightning.evaluation.generation import Prediction
    from magdi_lightning.evaluation.metrics import Accuracy
    from magdi_lightning.graph import ReasoningGraph

__all__ = [
    "SAMPLE_COLUMNS",
    "WORDS_TO_TOKENS",
    "TeacherTokens",
    "log_to_wandb",
    "teacher_tokens_per_question",
    "token_efficiency",
    "wandb_samples_table",
    "write_accuracy_plot",
    "write_token_plot",
]

#: Tokens per whitespace-separated word when nothing better is known. English prose runs
#: at about 0.75 words per BPE token; numbers and LaTeX tokenise denser, so on math
#: reasoning this estimate errs low, i.e. it understates the teachers' cost.
WORDS_TO_TOKENS = 4 / 3

#: Columns of :func:`wandb_samples_table`, in order.
SAMPLE_COLUMNS = ("id", "question", "output", "extracted", "gold", "correct")

# Above this ratio between the tallest and the shortest bar the short one would be a
# sliver on a linear axis, so the token plot switches to a log scale.
_LOG_SCALE_RATIO = 20.0
_PNG_DPI = 150


class TeacherTokens(dict[str, int]):
    """Teacher tokens per question key, remembering how they were counted.

    It is a plain ``dict`` (indexes, iterates and serialises as one) so callers can treat
    it as the mapping it is; the extra attributes exist because a ratio built on a
    word-count estimate must never be reported as if it had been measured.
    ``nodes_by_method`` counts the nodes counted each way: ``"num_tokens"`` (the length
    the teacher recorded), ``"tokenizer"`` (re-tokenised here, named by
    ``tokenizer_name``) or ``"estimate"`` (words x :data:`WORDS_TO_TOKENS`).
    """

    def __init__(self, counts: Mapping[str, int], nodes_by_method: Mapping[str, int],
                 tokenizer_name: str | None = None) -> None:
        super().__init__(counts)
        self.nodes_by_method = {name: n for name, n in nodes_by_method.items() if n}
        self.tokenizer_name = tokenizer_name

    @property
    def method(self) -> str:
        """The one counting method used, ``"mixed"`` for several, ``"none"`` for no nodes."""
        if not self.nodes_by_method:
            return "none"
        return next(iter(self.nodes_by_method)) if len(self.nodes_by_method) == 1 else "mixed"


def teacher_tokens_per_question(graphs: Iterable[ReasoningGraph],
                                tokenizer: PreTrainedTokenizerBase | None = None,
                                ) -> TeacherTokens:
    """Tokens the teachers' whole discussion of each question produced, by question key.

    Every node counts (all agents, all rounds): that is what it cost to obtain the
    reasoning the student distils. A node's ``num_tokens`` is used when recorded, since
    only the teacher's own tokenizer gives its true length; otherwise ``tokenizer``
    counts it (pass the student's tokenizer for a like-for-like ratio with the student's
    output tokens), and without one it is estimated from its word count. Only generated
    tokens count: each agent also re-reads the others' answers every round, so the
    teachers' real compute is higher and the resulting ratio is a lower bound.

    Several graphs with the same question (e.g. debates from two teacher models) give
    the mean of their totals, rounded to the nearest token.
    """
    totals: dict[str, list[float]] = defaultdict(list)
    nodes_by_method: Counter[str] = Counter()
    for graph in graphs:
        recorded = [node.num_tokens for node in graph.nodes if node.num_tokens is not None]
        pending = [node.reasoning for node in graph.nodes if node.num_tokens is None]
        total: float = sum(recorded)
        nodes_by_method["num_tokens"] += len(recorded)
        if pending and tokenizer is not None:
            ids = tokenizer(pending, add_special_tokens=False).input_ids
            total += sum(len(row) for row in ids)
            nodes_by_method["tokenizer"] += len(pending)
        elif pending:
            total += sum(len(text.split()) for text in pending) * WORDS_TO_TOKENS
            nodes_by_method["estimate"] += len(pending)
        totals[question_key(graph.question)].append(total)
    counts = {key: round(fmean(values)) for key, values in totals.items()}
    name = None
    if tokenizer is not None:
        name = getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
    return TeacherTokens(counts, nodes_by_method, name)


def token_efficiency(predictions: list[Prediction],
                     teacher_tokens: Mapping[str, float]) -> dict[str, Any]:
    """How many times fewer tokens the student writes than the teachers' discussion.

    Only questions both sides answered are compared (``matched_questions``), each once:
    a question asked twice counts with its mean student length. The ratio is of the
    means (total teacher tokens over total student tokens on the matched questions),
    which is what "x times fewer tokens" means for a whole benchmark; it is ``None``
    when nothing matched or the student wrote nothing, so the report stays valid JSON.

    The student side is the greedy answer's ``output_tokens``. Self-consistency sample
    lengths are not recorded in a :class:`Prediction`, so with k samples the report adds
    an estimate (k x the greedy length) and its ratio, labelled as such.
    """
    student: dict[str, list[int]] = defaultdict(list)
    for prediction in predictions:
        student[question_key(prediction.question)].append(prediction.output_tokens)
    matched = [key for key in student if key in teacher_tokens]
    student_mean = fmean(fmean(student[key]) for key in matched) if matched else None
    teacher_mean = fmean(teacher_tokens[key] for key in matched) if matched else None
    report: dict[str, Any] = {
        "matched_questions": len(matched),
        "student_questions": len(student),
        "teacher_questions": len(teacher_tokens),
        "student_tokens_per_question": student_mean,
        "student_counted": "greedy output_tokens (self-consistency samples excluded)",
        "teacher_tokens_per_question": teacher_mean,
        "teacher_to_student_ratio": _ratio(teacher_mean, student_mean),
        "count_method": getattr(teacher_tokens, "method", "unknown"),
        "teacher_nodes_by_method": dict(getattr(teacher_tokens, "nodes_by_method", {})),
        "teacher_tokenizer": getattr(teacher_tokens, "tokenizer_name", None),
    }
    matched_keys = set(matched)
    k = max((len(p.samples) for p in predictions
             if p.samples and question_key(p.question) in matched_keys), default=0)
    if k and student_mean is not None:
        sampled = k * student_mean
        report.update({
            "self_consistency_k": k,
            "student_tokens_per_question_k_samples_estimate": sampled,
            "teacher_to_student_ratio_k_samples_estimate": _ratio(teacher_mean, sampled),
        })
    return report


def strategy_report(predictions: list[Prediction]) -> dict[str, dict[str, Any]]:
    """Per strategy the student chose (its output's opening tag): how often it chose it
    and how accurate it was then; empty when no output carries a tag.

    Outputs without a tag count under ``"none"``, so the shares sum to one.
    """
    from magdi_lightning.evaluation.metrics import accuracy

    chosen: dict[str, list[bool]] = defaultdict(list)
    for prediction in predictions:
        chosen[prediction.strategy or "none"].append(prediction.correct)
    if set(chosen) <= {"none"}:
        return {}
    return {strategy: {"chosen": len(flags), "share": len(flags) / len(predictions),
                       **accuracy(flags).as_dict()}
            for strategy, flags in sorted(chosen.items())}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


# ------------------------------------------------------------------------- plots
def write_accuracy_plot(results: Mapping[str, Accuracy], path: str | os.PathLike[str],
                        title: str = "Student accuracy per benchmark") -> Path:
    """A PNG bar chart of accuracy per benchmark with 95% Wilson intervals; returns it.

    The interval is drawn because benchmarks of a few hundred questions differ by
    several points by chance alone; each bar is labelled with its value and
    correct/total so the figure can be read without the metrics file.
    """
    if not results:
        raise ValueError("no benchmark results to plot")
    names = list(results)
    values, lows, highs = [], [], []
    for name in names:
        result = results[name]
        if result.total:
            low, high = result.interval
            values.append(100 * result.value)
            lows.append(100 * (result.value - low))
            highs.append(100 * (high - result.value))
        else:
            values.append(0.0)
            lows.append(0.0)
            highs.append(0.0)
    figure = _figure(width=max(4.0, 1.1 * len(names) + 2.0))
    axes = figure.add_subplot()
    axes.bar(names, values, yerr=[lows, highs], capsize=5, color="#4C72B0",
             error_kw={"elinewidth": 1.2, "ecolor": "#333333"})
    for x, (name, value, high) in enumerate(zip(names, values, highs)):
        result = results[name]
        label = (f"{result.value:.1%}\n{result.correct}/{result.total}" if result.total
                 else "no questions")
        axes.text(x, value + high + 1.5, label, ha="center", va="bottom", fontsize=8)
    axes.set_ylim(0, 118)
    axes.set_yticks(range(0, 101, 20))
    axes.set_ylabel("Accuracy (%)")
    axes.set_xlabel("Benchmark")
    axes.set_title(f"{title}\n(error bars: 95% Wilson interval)", fontsize=11)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    if len(names) > 4:
        axes.tick_params(axis="x", labelrotation=30)
    return _save(figure, path)


def write_token_plot(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """A PNG bar chart of tokens per question, student against the teachers' discussion.

    Draws a :func:`token_efficiency` report; with self-consistency a third bar shows the
    k-sample estimate. The axis turns logarithmic when the bars differ by more than
    20x, where a linear student bar would be too thin to read. Raises ``ValueError``
    for a report without matched questions, which has nothing to draw.
    """
    student, teacher = report["student_tokens_per_question"], report[
        "teacher_tokens_per_question"]
    if not report["matched_questions"] or student is None or teacher is None:
        raise ValueError("the token report matched no questions; nothing to plot")
    labels = ["Student\n(greedy)", f"Teachers' discussion\n({report['count_method']})"]
    heights = [student, teacher]
    colors = ["#4C72B0", "#DD8452"]
    sampled = report.get("student_tokens_per_question_k_samples_estimate")
    if sampled is not None:
        labels.insert(1, f"Student, {report['self_consistency_k']} samples\n(estimate)")
        heights.insert(1, sampled)
        colors.insert(1, "#8FA9D6")
    figure = _figure(width=2.0 + 1.8 * len(heights))
    axes = figure.add_subplot()
    bars = axes.bar(labels, heights, color=colors)
    axes.bar_label(bars, labels=[f"{h:,.0f}" for h in heights], padding=2, fontsize=9)
    positive = [h for h in heights if h > 0]
    log_scale = len(positive) == len(heights) and max(heights) / min(heights) > _LOG_SCALE_RATIO
    if log_scale:
        # the axis starts a decade below the shortest bar, so no bar is a mere stub
        axes.set_yscale("log")
        axes.set_ylim(10 ** (math.floor(math.log10(min(heights))) - 1), max(heights) * 3)
    else:
        axes.set_ylim(0, max(heights) * 1.15)
    axes.set_ylabel("Tokens per question" + (" (log scale)" if log_scale else ""))
    ratio = report["teacher_to_student_ratio"]
    headline = (f"teachers write {ratio:.1f}x the student's tokens" if ratio is not None
                else "student wrote no tokens")
    axes.set_title(f"Tokens per question: {headline}\n"
                   f"({report['matched_questions']} matched questions)", fontsize=11)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    return _save(figure, path)


def _figure(width: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, so no global backend is chosen or
    changed and plotting works on headless machines and inside other GUIs alike."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` as a PNG atomically (a crash never leaves half an image)."""
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=_PNG_DPI)
    return Path(path)


# ------------------------------------------------------------------------- wandb
def wandb_samples_table(predictions: list[Prediction], limit: int | None = 50) -> Table:
    """The first ``limit`` predictions (all for ``None``) as a ``wandb.Table``.

    Reading a few outputs next to their extracted and gold answers is the fastest way to
    see why a score is what it is (a wrong answer or a failed extraction); the limit
    keeps the upload and the web view small on benchmarks of thousands of questions.
    """
    import wandb

    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    shown = predictions if limit is None else predictions[:limit]
    return wandb.Table(columns=list(SAMPLE_COLUMNS),
                       data=[[p.id, p.question, p.output, p.extracted, p.gold, p.correct]
                             for p in shown])


def log_to_wandb(run: Run | None, metrics: Mapping[str, Any], predictions: list[Prediction],
                 plots: Mapping[str, str | os.PathLike[str]], prefix: str = "eval",
                 limit: int | None = 50) -> None:
    """Send metrics, a samples table and the plots to ``run``; nothing without a run.

    Metrics go to the run summary (one evaluation gives one value per metric, not a
    curve); the table goes under ``<prefix>/samples`` and each plot, keyed by its name,
    under ``<prefix>/<name>``. wandb is imported only when there is a run, so evaluation
    without wandb installed or configured costs nothing.
    """
    if run is None:
        return
    import wandb

    run.summary.update({f"{prefix}/{key}": value for key, value in metrics.items()})
    media: dict[str, Any] = {f"{prefix}/samples": wandb_samples_table(predictions, limit)}
    media.update({f"{prefix}/{name}": wandb.Image(str(path)) for name, path in plots.items()})
    run.log(media)
