r"""Final-answer extraction and comparison, one rule set per task family.

Teachers state answers in many styles (``\boxed{52}``, ``#### 52``, ``The answer is (c)``,
a bare last number). Every importer labels node correctness with these functions, so a
node's correctness means the same thing whatever the data source, and the student is
later scored by the same rules. Each family tries its patterns from the most explicit to
the loosest and returns ``None`` rather than guess when nothing fits.

Answers come back in a canonical form (``"1000"`` for ``"$1,000.00"``, ``"C"`` for
``"(c)"``, ``"yes"`` for ``"True"``), so two canonical answers match when they are equal
strings. No function here raises on any string; an unknown task family is a programming
error and raises ``ValueError``.

To support a new answer style, add a pattern to the family's ``_extract_*`` function; to
support a new family, add it to ``graph.TASK_FAMILIES`` and to ``_EXTRACTORS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from magdi_lightning.graph import TASK_FAMILIES

__all__ = ["CHOICE_LETTERS", "answers_match", "extract_answer", "infer_task", "normalize_number"]

#: Option letters a multiple-choice answer may use (MMLU-Pro has ten options).
CHOICE_LETTERS = "ABCDEFGHIJ"
#: Lower-case letters count only up to "e": "(i)" is far more often a roman numeral or
#: the imaginary unit than a ninth option.
_LOWER_LETTERS = "abcde"

_YES_NO = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
#: How far after "the answer is" or "####" a stated answer may reach.
_MAX_ANSWER_CHARS = 300

# A number as people write it: optional sign, digits with optional thousands commas,
# optional decimals. No exponents: "1e999999" must not become a million-digit string.
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])(?:" + _NUMBER + r")")
# A whole short answer: currency, the number, then at most a percent sign and a unit.
_NUMBER_ANSWER = re.compile(
    r"[$€£]?\s*(?P<number>" + _NUMBER + r")\s*%?\s*(?:[^\W\d_][^\W\d_ ./]*(?:[ ./][^\W\d_]+)*)?"
)
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[,!;: ]|\\left|\\right|\\\$|\\%|\$|~|\^\s*\{?\\circ\}?")

# "the answer is", "Answer:", "**Final answer:**" and GSM8K's closing "A: 18" line.
_ANSWER_MARKER = re.compile(r"(?i:\banswer\b\s*(?:\bis\b|:))[\s:*]*|^[ \t]*A[ \t]*:[ \t]*", re.M)
_HASH_MARKER = re.compile(r"####[ \t]*")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")

_LETTER = "[" + CHOICE_LETTERS + "]"
_ANY_LETTER = "[" + CHOICE_LETTERS + _LOWER_LETTERS + "]"
_CHOICE_AFTER_MARKER = re.compile(
    r"(?i:option\s*)?(?:\(\s*(?P<paren>" + _ANY_LETTER + r")\s*\)"
    r"|(?P<upper>" + _LETTER + r")(?!\w)"
    r"|(?P<lower>[" + _LOWER_LETTERS + r"])(?=\s*(?:[.,;!]|$)))"
)
_PAREN_CHOICE = re.compile(r"\((" + _ANY_LETTER + r")\)")
_LEADING_CHOICE = re.compile(r"(?:^|(?<=\s))(" + _LETTER + r")\)", re.M)
_BARE_CHOICE = re.compile(r"\s*[({]?\s*(" + _ANY_LETTER + r")\s*[)}]?\s*[.:]?\s*")
# ASCII-only case folding: under Unicode rules "yeſ" (long s) would match "yes".
_YES_NO_WORD = re.compile(r"\b(yes|no|true|false)\b", re.I | re.A)
_LEADING_YES_NO = re.compile(r"^\W*(yes|no|true|false)\b", re.I | re.A)


# --------------------------------------------------------------------- public API
def extract_answer(text: str, task: str) -> str | None:
    """The canonical final answer stated in ``text`` for ``task``, or ``None``.

    numeric: the last ``\\boxed{}``, else ``#### N``, else "the answer is N", else the last
    number. math: the last ``\\boxed{}``, ``####`` or "the answer is" content, or a
    one-line text as a whole. multiple_choice: an option letter from ``\\boxed{B}``,
    "the answer is (c)", "Answer: D", the last ``(a)`` or ``A)``, or a bare letter.
    yes_no: "yes" or "no". text: the stated answer, else the whole text, lower-cased.

    Text after a reasoning model's closing ``</think>`` is searched alone; a ``<think>``
    that never closes means the model ran out of tokens before answering: ``None``.
    """
    extract = _extractor(task)
    _, closed, final = text.rpartition("</think>")
    if closed:
        return extract(final)
    return None if "<think>" in text else extract(text)


def answers_match(predicted: str | None, gold: str, task: str) -> bool:
    """Whether ``predicted`` gives the gold answer under ``task``'s rules.

    Both sides go through :func:`extract_answer`, so raw text ("#### 52"), short answers
    ("52.0") and canonical answers ("52") all compare alike. A missing prediction or a
    gold answer with nothing extractable never matches.
    """
    if predicted is None:
        return False
    expected = extract_answer(gold, task)
    return expected is not None and extract_answer(predicted, task) == expected


def normalize_number(s: str) -> str | None:
    """``s`` as a canonical decimal string if it is a number, else ``None``.

    Accepts currency signs, thousands commas, a percent sign, a trailing unit word and
    a trailing period ("$1,000.50", "52 WPM", "16 hours.") and drops insignificant zeros,
    so numerically equal answers give equal strings ("52.0" -> "52", "-0" -> "0").
    """
    cleaned = _strip_latex(s).strip().rstrip(".").strip()
    match = _NUMBER_ANSWER.fullmatch(cleaned)
    return _canonical_number(match["number"]) if match else None


def infer_task(gold: str) -> str:
    """Guess the task family from a gold answer when the data does not say.

    A letter A-J (or "(a)" to "(e)") is multiple_choice, yes/no/true/false is yes_no, a
    number or a GSM8K solution ending in ``#### N`` is numeric, anything else is text.
    ``math`` is never guessed: a LaTeX answer cannot be told from free text reliably.
    """
    stripped = gold.strip()
    if re.fullmatch(r"\(?" + _LETTER + r"\)?|\([" + _LOWER_LETTERS + r"]\)", stripped):
        return "multiple_choice"
    if stripped.lower() in _YES_NO:
        return "yes_no"
    if normalize_number(stripped) is not None or _HASH_MARKER.search(stripped):
        return "numeric"
    return "text"


# --------------------------------------------------------------------- families
def _extract_numeric(text: str) -> str | None:
    for content in reversed(_boxed_contents(text)):
        # "\boxed{6 + 4 = 10 boxes}" states 10; "\boxed{11 inches after 3 weeks}" states 11.
        number = normalize_number(content) or _first_number(content.rsplit("=", 1)[-1])
        if number is not None:
            return number
    for rest in _after_markers(text, _HASH_MARKER):
        number = normalize_number(rest) or _first_number(rest)
        if number is not None:
            return number
    for rest in _after_markers(text, _ANSWER_MARKER):
        number = _first_number(rest)
        if number is not None:
            return number
    numbers = _NUMBER_IN_TEXT.findall(text)
    return _canonical_number(numbers[-1]) if numbers else None


def _extract_math(text: str) -> str | None:
    candidates = [*reversed(_boxed_contents(text)), *_after_markers(text, _HASH_MARKER),
                  *_after_markers(text, _ANSWER_MARKER)]
    if "\n" not in text.strip():
        candidates.append(text)
    for candidate in candidates:
        answer = _normalize_math(candidate)
        if answer:
            return answer
    return None


def _extract_choice(text: str) -> str | None:
    for content in reversed(_boxed_contents(text)):
        letter = _bare_choice(_strip_latex(content))
        if letter:
            return letter
    for rest in _after_markers(text, _ANSWER_MARKER):
        match = _CHOICE_AFTER_MARKER.match(rest)
        if match:
            return (match["paren"] or match["upper"] or match["lower"]).upper()
    for pattern in (_PAREN_CHOICE, _LEADING_CHOICE):
        letters = pattern.findall(text)
        if letters:
            return letters[-1].upper()
    return _bare_choice(text)


def _extract_yes_no(text: str) -> str | None:
    for content in reversed(_boxed_contents(text)):
        word = _yes_no_word(_strip_latex(content))
        if word:
            return word
    for rest in _after_markers(text, _ANSWER_MARKER):
        match = _LEADING_YES_NO.match(rest)
        if match:
            return _YES_NO[match[1].lower()]
    match = _LEADING_YES_NO.match(text)
    return _YES_NO[match[1].lower()] if match else None


def _extract_text(text: str) -> str | None:
    candidates = [*reversed(_boxed_contents(text)), *_after_markers(text, _ANSWER_MARKER),
                  text]
    for candidate in candidates:
        answer = _normalize_text(_strip_latex(candidate))
        if answer:
            return answer
    return None


_EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "numeric": _extract_numeric,
    "math": _extract_math,
    "multiple_choice": _extract_choice,
    "yes_no": _extract_yes_no,
    "text": _extract_text,
}


def _extractor(task: str) -> Callable[[str], str | None]:
    try:
        return _EXTRACTORS[task]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task family {task!r}; known: {list(TASK_FAMILIES)}") from None


# --------------------------------------------------------------------- helpers
def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces, outermost first.

    One pass over the braces with a stack, so even a long text full of unclosed boxes
    costs linear time.
    """
    openings = {match.end() - 1 for match in _BOXED.finditer(text)}
    if not openings:
        return []
    found: list[tuple[int, str]] = []
    stack: list[int] = []
    for brace in _BRACE.finditer(text, min(openings)):
        if brace[0] == "{":
            stack.append(brace.start())
        elif stack:
            start = stack.pop()
            if start in openings:
                found.append((start, text[start + 1:brace.start()]))
    return [content for _, content in sorted(found)]


def _after_markers(text: str, marker: re.Pattern[str]) -> list[str]:
    """The rest of the line after each ``marker`` match, last match first.

    Each rest is capped at ``_MAX_ANSWER_CHARS`` so that a huge one-line text costs
    linear, not quadratic, time.
    """
    rests = []
    for match in marker.finditer(text):
        rest = text[match.end():match.end() + _MAX_ANSWER_CHARS]
        rests.append(rest.split("\n", 1)[0])
    return rests[::-1]


def _first_number(text: str) -> str | None:
    match = _NUMBER_IN_TEXT.search(text)
    return _canonical_number(match[0]) if match else None


def _canonical_number(number: str) -> str:
    """Canonical spelling of a ``_NUMBER`` match, exact at any length (no float rounding)."""
    digits = number.replace(",", "")
    sign = "-" if digits.startswith("-") else ""
    whole, _, fraction = digits.lstrip("+-").partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    if whole == "0" and not fraction:
        sign = ""
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def _strip_latex(text: str) -> str:
    """Drop LaTeX that wraps an answer without changing it (``\\text{}``, ``$``, ``\\,``)."""
    return _LATEX_NOISE.sub("", _LATEX_WRAPPER.sub(r"\1", text))


def _normalize_math(answer: str) -> str | None:
    cleaned = _strip_latex(answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    cleaned = "".join(cleaned.split()).rstrip(".")
    return normalize_number(cleaned) or cleaned or None


def _bare_choice(text: str) -> str | None:
    match = _BARE_CHOICE.fullmatch(text)
    return match[1].upper() if match else None


def _yes_no_word(text: str) -> str | None:
    words = _YES_NO_WORD.findall(text)
    return _YES_NO[words[0].lower()] if len(words) == 1 else None


def _normalize_text(text: str) -> str | None:
    return " ".join(text.split()).strip("\"'`*").rstrip(".").strip().lower() or None
