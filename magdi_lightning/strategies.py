"""Reasoning strategies and the tags that mark them in a model's output.

SIKeD trains a student whose output opens with a strategy tag (``[cot]``, ``[l2m]``,
``[pot]``) followed by a solution in that strategy, so at inference the student picks its
own strategy by the tag it writes. One module holds the tags so the teacher side, the
training data and the evaluator all agree on them.
"""

from __future__ import annotations

import re
import string

__all__ = ["LEAST_TO_MOST", "PROGRAM", "STRATEGIES", "is_least_to_most", "split_strategy",
           "tag"]

#: Tag name -> what it stands for.
STRATEGIES: dict[str, str] = {
    "cot": "chain of thought",
    "l2m": "least-to-most (sub-questions answered in turn)",
    "pot": "program of thought (a Python program whose `ans` is the answer)",
}
#: The strategy whose solution is a program, run in the sandbox to get its answer.
PROGRAM = "pot"
#: The strategy whose solutions must show their sub-questions (:func:`is_least_to_most`).
LEAST_TO_MOST = "l2m"

_LEADING_TAG = re.compile(r"\s*\[(" + "|".join(STRATEGIES) + r")\]\s*")
_CODE_FENCE = re.compile(r"^```(?:python|py)?\s*\n(.*?)(?:\n```.*)?$", re.DOTALL)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def tag(strategy: str) -> str:
    """The tag that opens a solution in ``strategy``, e.g. ``[pot]``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}")
    return f"[{strategy}]"


def split_strategy(text: str) -> tuple[str | None, str]:
    """``(strategy, solution)`` of an output that opens with a tag, else ``(None, text)``.

    A program-of-thought solution is returned without a surrounding Markdown code fence,
    ready for the sandbox.
    """
    match = _LEADING_TAG.match(text)
    if not match:
        return None, text
    strategy, body = match.group(1), text[match.end():]
    if strategy == PROGRAM:
        fenced = _CODE_FENCE.match(body.strip())
        body = fenced.group(1) if fenced else body
    return strategy, body


def is_least_to_most(solution: str) -> bool:
    """Whether a least-to-most solution decomposes the problem: lower-cased and with ASCII
    punctuation removed, it contains ``subquestion`` ("Sub-question 1:", "SUBQUESTION").

    SIKeD's reference keeps a sampled ``[l2m]`` solution only if it passes this test, so a
    student that writes a chain of thought under the least-to-most tag does not learn that
    as least-to-most (shivam0109/SIKeD, create-data-from-individual-strategies.py,
    ``check_l2m_validity``).
    """
    return "subquestion" in solution.lower().translate(_PUNCTUATION)
