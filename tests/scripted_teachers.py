"""Scripted teacher replies for the fake OpenAI server: answers to known questions.

The reply to a request is a pure function of its contents: which question it is about
(the known question that occurs last in the messages, since in-context examples and
convincing samples come first), which agent asks (its system prompt) and the round, so
runs are reproducible. Each agent is right with its own probability; a few replies are
deliberately unparseable, to exercise the protocols' flagging.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from magdi_lightning.questions import Question


def _draw(*parts: object) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ScriptedTeachers:
    """Responder and tagger over ``questions`` for :class:`fake_openai.FakeOpenAIServer`."""

    def __init__(self, questions: Sequence[Question], accuracy: float = 0.7,
                 unparseable: float = 0.03) -> None:
        self.questions = list(questions)
        self.accuracy = accuracy
        self.unparseable = unparseable

    def question_of(self, body: dict[str, Any]) -> Question | None:
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        found = [(text.rfind(q.question), q) for q in self.questions]
        position, question = max(found, key=lambda item: item[0], default=(-1, None))
        return question if position >= 0 else None

    def tag_of(self, body: dict[str, Any]) -> str | None:
        question = self.question_of(body)
        return question.id if question else None

    def __call__(self, body: dict[str, Any]) -> str:
        question = self.question_of(body)
        messages = body.get("messages", [])
        prompt = str(messages[-1].get("content", "")) if messages else ""
        if question is None:
            return "I do not know."
        persona = next((m["content"] for m in messages if m.get("role") == "system"), "")
        turn = sum(m.get("role") == "user" for m in messages) + prompt.count("other agents")
        right = _draw(question.id, persona, turn, prompt[:40]) < self.accuracy
        answer = int(question.gold) if right else int(question.gold) + 1
        if _draw("garble", question.id, persona, turn) < self.unparseable:
            return "Hmm, let me think about this differently."
        if "Python program" in prompt:
            return f"```python\nvalue = {answer}\nans = value\n```"
        if "JSON object" in prompt:
            return json.dumps({"reasoning": f"Working it through, I get {answer}.",
                               "answer": str(answer),
                               "confidence": round(0.7 + 0.3 * _draw(question.id, persona), 2)})
        if "Sub-question" in prompt or "sub-questions" in prompt:
            return f"Sub-question 1: What is the total? It is {answer}.\nThe answer is {answer}."
        return f"Step by step, the result is {answer}. The answer is {answer}."
