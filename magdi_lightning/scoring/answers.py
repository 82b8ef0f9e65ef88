r"""Final-answer extraction and comparison, one rule set per task family.

Teachers state answers in many styles (``\boxed{52}``, ``#### 52``, ``The answer is (c)``,
``the correct answer is answer3``, a bare last number). Every importer labels node
correctness with these functions, so a node's correctness means the same thing whatever
the data source, and the student is later scored by the same rules. Each family tries its
patterns from the most explicit to the loosest and returns ``None`` rather than guess when
nothing fits.

Answers come back in a canonical form (``"1000"`` for ``"$1,000.00"``, ``"0.75"`` for
``"3/4"``, ``"C"`` for ``"(c)"`` or ``"answer3"``, ``"yes"`` for ``"True"``), so two
canonical answers of a closed family match when they are equal strings. LaTeX answers
(``math``) have too many equal spellings for that: they match when
:func:`~magdi_lightning.scoring.math_equivalence.math_equivalent` (``math-verify``)
finds them equal. No function here raises on any string; an unknown task family is a
programming error and raises ``ValueError``.

To support a new answer style, add a pattern to the family's ``_extract_*`` function; to
support a new family, add it to ``graph.TASK_FAMILIES`` and to ``_EXTRACTORS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from fractions import Fraction

from magdi_lightning.graph import TASK_FAMILIES
from magdi_lightning.scoring.math_equivalence import math_equivalent

__all__ = ["CHOICE_LETTERS", "answers_match", "extract_answer", "infer_task", "normalize_number"]

#: Option letters a multiple-choice answer may use (MMLU-Pro has ten options).
CHOICE_LETTERS = "ABCDEFGHIJ"
#: Lower-case letters count only up to "e": "(i)" is far more often a roman numeral or
#: the imaginary unit than a ninth option.
_LOWER_LETTERS = "abcde"

_YES_NO = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
#: How far after "the answer is" or "####" a stated answer may reach.
_MAX_ANSWER_CHARS = 300
#: Longer fractions are not numbers to us: reducing one costs time quadratic in its length.
_MAX_FRACTION_DIGITS = 60

# A number as people write it: optional sign, digits with optional thousands commas,
# optional decimals. No exponents: "1e999999" must not become a million-digit string.
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])(?:" + _NUMBER + r")")
# A number in a stated answer, a fraction included ("The answer is 29/3 liters").
_STATED_NUMBER = re.compile(
    r"(?<![\w.])(?P<number>" + _NUMBER + r")(?:\s*/\s*(?P<denominator>" + _NUMBER + r"))?"
)
# A whole short answer: sign, currency, the number or fraction, a percent sign, a unit.
_NUMBER_ANSWER = re.compile(
    r"(?P<sign>-)?\s*[$€£]?\s*(?P<number>" + _NUMBER + r")"
    r"(?:\s*/\s*(?P<denominator>" + _NUMBER + r"))?"
    r"\s*%?\s*(?:[^\W\d_][^\W\d_ ./]*(?:[ ./][^\W\d_]+)*)?"
)
_LATEX_FRACTION = re.compile(
    r"\\[dt]?frac\s*\{\s*(" + _NUMBER + r")\s*\}\s*\{\s*(" + _NUMBER + r")\s*\}"
)
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[,!;: ]|\\left|\\right|\\\$|\\%|\$|~|\^\s*\{?\\circ\}?")
# A math answer that is a plain decimal number is stored canonically ("12.0" -> "12");
# commas stay, since "1,2" may be a list.
_PLAIN_DECIMAL = re.compile(r"[-+]?\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
# A reason given after the answer: "The answer is 5 because she had 2 and got 3".
_REASON = re.compile(r"\b(?:because|since)\b", re.I)
# "$9 500": thousands grouped by spaces, recognised only after a currency sign, where a
# space cannot separate two numbers.
_SPACED_THOUSANDS = re.compile(r"[$€£]\s?\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d,])")
_SPACE = re.compile(r"[ \u00a0\u202f]")
# A math answer stated inline: "The final answer is $\frac{1}{2}$. I hope it is correct."
_INLINE_MATH = re.compile(r"[\s*]*\$+([^$]+)\$")

# "the answer is", "Answer:", "**Final answer:**" (group "stated"), and GSM8K's closing
# "A: 18" line (group "label"), which in few-shot formats also opens the whole response.
_ANSWER_MARKER = re.compile(r"(?P<stated>(?i:\banswer\b\s*(?:\bis\b|:))[\s:*]*)"
                            r"|(?P<label>^[ \t]*A[ \t]*:[ \t]*)", re.M)
_HASH_MARKER = re.compile(r"####[ \t]*")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")

_LETTER = "[" + CHOICE_LETTERS + "]"
_ANY_LETTER = "[" + CHOICE_LETTERS + _LOWER_LETTERS + "]"
# "answer3" and "option 3" (LLM-Adapters' ARC and OpenBookQA answers) name the 3rd option.
_OPTION_NUMBER = r"(?P<number>10|[1-9])(?!\d)"
_CHOICE_AFTER_MARKER = re.compile(
    r"(?i:answer|option)\s*" + _OPTION_NUMBER
    + r"|(?i:option\s*)?(?:\(\s*(?P<paren>" + _ANY_LETTER + r")\s*\)"
    r"|(?P<upper>" + _LETTER + r")(?!\w)"
    r"|(?P<lower>[" + _LOWER_LETTERS + r"])(?=\s*(?:[.,;!]|$)))"
)
# "answer3" anywhere, but not an option list's "Answer3: ...".
_NUMBERED_CHOICE = re.compile(r"(?i:\banswer\s*)" + _OPTION_NUMBER + r"(?!\s*:)")
_PAREN_CHOICE = re.compile(r"\((" + _ANY_LETTER + r")\)")
_LEADING_CHOICE = re.compile(r"(?:^|(?<=\s))(" + _LETTER + r")\)", re.M)
_BARE_CHOICE = re.compile(r"\s*[({]?\s*(" + _ANY_LETTER + r")\s*[)}]?\s*[.:]?\s*")
# ASCII-only case folding: under Unicode rules "yeſ" (long s) would match "yes".
_YES_NO_WORD = re.compile(r"\b(yes|no|true|false)\b", re.I | re.A)
_LEADING_YES_NO = re.compile(r"^\W*(yes|no|true|false)\b", re.I | re.A)


# --------------------------------------------------------------------- public API
def extract_answer(text: str, task: str, choices: Sequence[str] | None = None) -> str | None:
    """The canonical final answer stated in ``text`` for ``task``, or ``None``.

    numeric: a short answer as a whole ("$1,000", "3/4"), else the last ``\\boxed{}``, else
    ``#### N``, else the last number of the "the answer is" sentence before any "because"
    ("4 + 16 = 20"; "5 arms and 3 legs, or 8 limbs") or an "A: N" line, a fraction such
    as "29/3" kept exact, else the last number in the text.
    math: the last ``\\boxed{}``, ``####`` or "the answer is" content, or a one-line text
    as a whole, lightly tidied (compare them with :func:`answers_match`). multiple_choice:
    an option letter from ``\\boxed{B}``, "the answer is (c)", "Answer: D", "answer3", the
    last ``(a)`` or ``A)``, or a bare letter; failing those, when the options' texts are
    given as ``choices``, the option whose text is stated as the answer. A text that is
    exactly one option's text (up to spacing) is that option before any of these, so an
    answer given as the option's text, as TinyLLM students give it, is read right even
    when the option is itself "C", "a" or "fluorine (F)". yes_no: "yes" or
    "no". text: the stated answer, else the whole text, lower-cased.

    Text after a reasoning model's closing ``</think>`` is searched alone; a ``<think>``
    that never closes means the model ran out of tokens before answering: ``None``.
    """
    extract = _extractor(task)
    _, closed, final = text.rpartition("</think>")
    if not closed:
        if "<think>" in text:
            return None
        final = text
    if choices and task == "multiple_choice":
        exact = _exact_choice(final, choices)
        if exact is not None:
            return exact
    answer = extract(final)
    if answer is None and choices and task == "multiple_choice":
        answer = _choice_by_text(final, choices)
    return answer


def answers_match(predicted: str | None, gold: str, task: str,
                  choices: Sequence[str] | None = None) -> bool:
    """Whether ``predicted`` gives the gold answer under ``task``'s rules.

    Both sides go through :func:`extract_answer`, so raw text ("#### 52"), short answers
    ("52.0") and canonical answers ("52") all compare alike; ``math`` answers are then
    compared by ``math-verify`` (``\\frac{1}{2}`` matches ``0.5``, ``[1,2)`` does not match
    ``(1,2]``). A missing prediction or a gold answer with nothing extractable never
    matches.
    """
    if predicted is None:
        return False
    expected = extract_answer(gold, task, choices)
    answer = extract_answer(predicted, task, choices)
    if expected is None or answer is None:
        return False
    return math_equivalent(expected, answer) if task == "math" else answer == expected


def normalize_number(s: str) -> str | None:
    """``s`` as a canonical decimal string if it is a number, else ``None``.

    Accepts a sign before a currency sign, thousands commas, a percent sign, a trailing
    unit word and a trailing period ("-$1,000.50", "52 WPM", "16 hours.") and drops
    insignificant zeros, so numerically equal answers give equal strings ("52.0" -> "52",
    "-0" -> "0"). A fraction ("3/4", ``\\frac{3}{4}``) becomes its decimal when that ends
    ("0.75") and its reduced form otherwise ("2/6" -> "1/3"), never a rounded float.
    """
    cleaned = _LATEX_FRACTION.sub(r"\1/\2", _strip_latex(s)).strip().rstrip(".").strip()
    match = _NUMBER_ANSWER.fullmatch(cleaned)
    return _canonical_match(match) if match else None


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
    whole = normalize_number(text)  # a short answer ("3/4", "$1,000") is all answer
    if whole is not None:
        return whole
    text = _SPACED_THOUSANDS.sub(lambda match: _SPACE.sub("", match[0]), text)
    for content in reversed(_boxed_contents(text)):
        # "\boxed{6 + 4 = 10 boxes}" states 10; "\boxed{11 inches after 3 weeks}" states 11.
        number = normalize_number(content) or _first(_numbers_in(content.rsplit("=", 1)[-1]))
        if number is not None:
            return number
    for rest, _ in _after_markers(text, _HASH_MARKER):
        number = normalize_number(rest) or _first(_numbers_in(rest))
        if number is not None:
            return number
    for rest, kind in _after_markers(text, _ANSWER_MARKER):
        sentence = _REASON.split(_first_sentence(rest), maxsplit=1)[0]
        number = normalize_number(sentence)
        # An "A:" label that opens prose ("A: Janet's ducks lay 16 eggs") states nothing.
        if number is None and kind == "stated":
            # "the answer is 4 + 16 = 20" and "5 arms and 3 legs, or 8 limbs" end on it.
            numbers = _numbers_in(sentence)
            number = numbers[-1] if numbers else None
        if number is not None:
            return number
    numbers = _NUMBER_IN_TEXT.findall(text)
    return _canonical_number(numbers[-1]) if numbers else None


def _extract_math(text: str) -> str | None:
    candidates = [*reversed(_boxed_contents(text)),
                  *(rest for rest, _ in _after_markers(text, _HASH_MARKER)),
                  *(_math_statement(rest) for rest, _ in _after_markers(text, _ANSWER_MARKER))]
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
    for rest, _ in _after_markers(text, _ANSWER_MARKER):
        match = _CHOICE_AFTER_MARKER.match(rest)
        if match:
            return _matched_letter(match)
    for pattern in (_NUMBERED_CHOICE, _PAREN_CHOICE, _LEADING_CHOICE):
        matches = list(pattern.finditer(text))
        if matches:
            return _matched_letter(matches[-1])
    return _bare_choice(text)


def _extract_yes_no(text: str) -> str | None:
    for content in reversed(_boxed_contents(text)):
        word = _yes_no_word(_strip_latex(content))
        if word:
            return word
    for rest, _ in _after_markers(text, _ANSWER_MARKER):
        match = _LEADING_YES_NO.match(rest)
        if match:
            return _YES_NO[match[1].lower()]
    match = _LEADING_YES_NO.match(text)
    return _YES_NO[match[1].lower()] if match else None


def _extract_text(text: str) -> str | None:
    candidates = [*reversed(_boxed_contents(text)),
                  *(rest for rest, _ in _after_markers(text, _ANSWER_MARKER)), text]
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


def _exact_choice(text: str, choices: Sequence[str]) -> str | None:
    """The letter of the first option whose text ``text`` is, up to spacing (case kept:
    some of ARC's genetics options, such as "WW or Ww", differ from another only in case)."""
    said = " ".join(text.split())
    for letter, choice in zip(CHOICE_LETTERS, choices):
        if said and said == " ".join(choice.split()):
            return letter
    return None


def _choice_by_text(text: str, choices: Sequence[str]) -> str | None:
    """The letter of the option whose text is stated as the answer ("The answer is Insulin.")."""
    options = [_normalize_text(_strip_latex(choice)) for choice in choices[:len(CHOICE_LETTERS)]]
    candidates = [*reversed(_boxed_contents(text)),
                  *(_first_sentence(rest) for rest, _ in _after_markers(text, _ANSWER_MARKER)),
                  text]
    for candidate in candidates:
        stated = _normalize_text(_strip_latex(candidate))
        if stated and stated in options:
            return CHOICE_LETTERS[options.index(stated)]
    return None


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


def _after_markers(text: str, marker: re.Pattern[str]) -> list[tuple[str, str | None]]:
    """The rest of the line after each ``marker`` match, last match first, with the name of
    the marker's group that matched (``None`` for a marker without groups).

    Each rest is capped at ``_MAX_ANSWER_CHARS`` so that a huge one-line text costs
    linear, not quadratic, time.
    """
    rests = []
    for match in marker.finditer(text):
        rest = text[match.end():match.end() + _MAX_ANSWER_CHARS]
        rests.append((rest.split("\n", 1)[0], match.lastgroup))
    return rests[::-1]


def _first_sentence(text: str) -> str:
    """``text`` up to the first full stop ("18. Then" -> "18"; "18.5" stays whole)."""
    return _SENTENCE_END.split(text, maxsplit=1)[0]


def _numbers_in(text: str) -> list[str]:
    """The numbers and fractions in ``text``, canonical, in order."""
    numbers = (_canonical_match(match) for match in _STATED_NUMBER.finditer(text))
    return [number for number in numbers if number is not None]


def _first(numbers: list[str]) -> str | None:
    return numbers[0] if numbers else None


def _canonical_match(match: re.Match[str]) -> str | None:
    """The canonical number of a ``_NUMBER_ANSWER`` or ``_STATED_NUMBER`` match."""
    number: str | None = _canonical_number(match["number"])
    if match["denominator"]:
        number = _canonical_fraction(number, _canonical_number(match["denominator"]))
    if number is None or number == "0" or not match.groupdict().get("sign"):
        return number
    return number[1:] if number.startswith("-") else "-" + number


def _canonical_number(number: str) -> str:
    """Canonical spelling of a ``_NUMBER`` match, exact at any length (no float rounding)."""
    digits = number.replace(",", "")
    sign = "-" if digits.startswith("-") else ""
    whole, _, fraction = digits.lstrip("+-").partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    if whole == "0" and not fraction:
        sign = ""
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def _canonical_fraction(numerator: str, denominator: str) -> str | None:
    """``numerator / denominator`` (canonical decimals) exactly: a terminating decimal when
    there is one, else the reduced ``p/q``; ``None`` for a zero or over-long denominator."""
    if len(numerator) + len(denominator) > _MAX_FRACTION_DIGITS or denominator == "0":
        return None
    value = Fraction(numerator) / Fraction(denominator)
    rest, twos, fives = value.denominator, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    sign, point = "-" if value < 0 else "", len(digits) - places
    return _canonical_number(f"{sign}{digits[:point]}.{digits[point:]}")


def _strip_latex(text: str) -> str:
    """Drop LaTeX that wraps an answer without changing it (``\\text{}``, ``$``, ``\\,``)."""
    return _LATEX_NOISE.sub("", _LATEX_WRAPPER.sub(r"\1", text))


def _math_statement(rest: str) -> str:
    """What follows "the answer is" in a math text: an inline ``$...$`` if it opens with
    one, else the sentence (a full stop there may be a decimal point, but not a final one)."""
    inline = _INLINE_MATH.match(rest)
    return inline[1] if inline else _first_sentence(rest)


def _normalize_math(answer: str) -> str | None:
    """A LaTeX answer tidied only in ways that cannot change its meaning.

    Whitespace runs become one space (removing them all would glue ``\\pi x`` into
    ``\\pix``), ``\\dfrac``/``\\tfrac`` become ``\\frac``, surrounding ``$`` and a final
    full stop go, and a plain decimal is canonical ("12.0" -> "12"). Units, ``\\text{}`` and
    ``\\left`` stay: ``math-verify`` understands them, and unwrapping ``\\mbox{ inches}``
    would turn it into a product of variables.
    """
    cleaned = " ".join(answer.split()).strip("$ ").rstrip(".").strip()
    cleaned = cleaned.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    if _PLAIN_DECIMAL.fullmatch(cleaned):
        return _canonical_number(cleaned)
    return cleaned or None


def _matched_letter(match: re.Match[str]) -> str:
    """The option letter of a choice-pattern match: a letter group, or an option number."""
    groups = match.groupdict()
    if groups.get("number"):
        return CHOICE_LETTERS[int(groups["number"]) - 1]
    letter = groups.get("paren") or groups.get("upper") or groups.get("lower") or match[1]
    return letter.upper()


def _bare_choice(text: str) -> str | None:
    match = _BARE_CHOICE.fullmatch(text)
    return match[1].upper() if match else None


def _yes_no_word(text: str) -> str | None:
    words = _YES_NO_WORD.findall(text)
    return _YES_NO[words[0].lower()] if len(words) == 1 else None


def _normalize_text(text: str) -> str | None:
    return " ".join(text.split()).strip("\"'`*").rstrip(".").strip().lower() or None
