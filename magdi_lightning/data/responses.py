"""What a graph node is trained to say: its reasoning, optionally cleaned, ending in its answer.

MAGDi's code trains every node on ``{reasoning} So the answer is {answer}`` after dropping
the reasoning's sentences that open with "I agree" or "I disagree" (dinobby/MAGDi
``utils.py``: ``generate_ordered_list`` and ``remove_agreement``). ReConcile and MAGDi
records keep the answer in a field of its own, so a student trained on the reasoning
alone never learns to end with an answer. :class:`ResponseText` builds a node's response
text in one place for every graph batch (and for ``magdi-inspect``, which renders those
batches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from magdi_lightning.graph import Node
from magdi_lightning.scoring.answers import answers_match

__all__ = ["AGREEMENT_OPENINGS", "ResponseText", "remove_agreement", "states_answer"]

#: Sentence openings MAGDi's ``remove_agreement`` drops.
AGREEMENT_OPENINGS = ("I disagree", "I agree")
#: MAGDi's sentence separator (``text.split('. ')``).
_SENTENCE_SEPARATOR = ". "
# An explicit statement of a final answer: "the answer is", "Answer:", "####", "\boxed{",
# GSM8K's closing "A: 26" line. A bare last number is not one: "3 + 5 = 8." does not teach
# a student to state 8.
_STATEMENT = re.compile(r"(?i:\banswer\b\s*(?:is\b|:))|####|\\(?:boxed|fbox)\s*\{"
                        r"|^[ \t]*A[ \t]*:", re.M)


def remove_agreement(text: str) -> str:
    """``text`` without its sentences that open with "I agree" or "I disagree".

    MAGDi's definition: sentences are the pieces of ``text`` between ``". "`` separators,
    an opening is matched case-sensitively at a piece's very start, and the kept pieces
    are joined with ``". "`` again. So a dropped last sentence takes the full stop of the
    one before it ("A. I agree." -> "A"), and an agreement after a newline rather than
    after ". " stays.
    """
    pieces = text.split(_SENTENCE_SEPARATOR)
    return _SENTENCE_SEPARATOR.join(p for p in pieces if not p.startswith(AGREEMENT_OPENINGS))


def states_answer(reasoning: str, answer: str, task: str) -> bool:
    """Whether ``reasoning`` explicitly states ``answer`` as its final answer.

    From its last explicit answer statement ("the answer is", "Answer:", ``####``,
    ``\\boxed{}``, an "A:" line) on, the evaluation's extractor for ``task`` must read ``answer``.
    """
    statements = list(_STATEMENT.finditer(reasoning))
    if not statements:
        return False
    return answers_match(reasoning[statements[-1].start():], answer, task)


@dataclass(frozen=True)
class ResponseText:
    """How a node becomes the response text a student learns.

    ``answer_sentence`` (``{answer}`` is the node's answer; ``None``: never added) follows
    the reasoning after a space when the node has an answer the reasoning does not
    already state (see :func:`states_answer`), or always with ``always_state_answer``
    (MAGDi's code appends it to every node). A node without an answer, or with empty
    reasoning, gets no space: the sentence alone, or nothing. ``remove_agreement``
    first drops "I agree"/"I disagree" sentences as MAGDi's code does.
    """

    answer_sentence: str | None = "So the answer is {answer}"
    always_state_answer: bool = False
    remove_agreement: bool = False

    def __post_init__(self) -> None:
        if self.answer_sentence is None:
            return
        try:
            filled = self.answer_sentence.format(answer="")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(f"answer_sentence {self.answer_sentence!r} must be a format string "
                             f"whose only field is {{answer}}: {err!r}") from None
        if filled == self.answer_sentence:
            raise ValueError(f"answer_sentence {self.answer_sentence!r} has no {{answer}} field")

    def __call__(self, node: Node, task: str) -> str:
        """The response text of ``node`` of a graph of task family ``task``."""
        text = remove_agreement(node.reasoning) if self.remove_agreement else node.reasoning
        if self.answer_sentence is None or node.answer is None:
            return text
        if not self.always_state_answer and states_answer(text, node.answer, task):
            return text
        sentence = self.answer_sentence.format(answer=node.answer)
        return f"{text} {sentence}" if text else sentence

    def describe(self) -> str:
        """Everything the text depends on, for the tokenization cache key."""
        return repr(self)
