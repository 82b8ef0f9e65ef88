"""The PoT authors' reading of a program's ``ans``, one result type at a time.

Each expected value is derived by hand from the definitions in the authors' ``tool.py``
(github.com/TIGER-AI-Lab/Program-of-Thoughts): ``safe_execute`` (``exec`` with the tool's
globals and a separate locals dict, the local ``ans``), ``floatify_ans``, ``simplify_ans``,
and each ``run_*.py`` script's sequence of them (``READINGS``).
"""

from __future__ import annotations

import json

import pytest

from magdi_lightning.scoring.pot import (
    READINGS,
    PotReading,
    agrees,
    as_pot_answer,
    pot_program,
    read_records,
    vote,
)
from magdi_lightning.scoring.sandbox import run_programs

FEW_SHOT = READINGS["gsm8k"]        # floatify
ZERO_SHOT = READINGS["gsm8k_zs"]    # simplify, then floatify
SVAMP = READINGS["svamp"]           # floatify, then abs
AQUA = READINGS["aqua"]             # str(simplify), recorded as text


def _zero_shot(body: str) -> str:
    """A program in the shape the zero-shot scripts write: their prompt, the completion,
    then ``ans = solver()``."""
    return ("\nimport math\nimport numpy as np\n\n# Question: how many?\n"
            "# Answer this question by implementing a solver() function.\ndef solver():\n"
            "    # Let's write a Python program step by step, and then return the answer\n"
            "    # Firstly, we need define the following variable:\n"
            + body + "ans = solver()")


def _read(programs: list[str], reading: PotReading) -> list[object]:
    results = run_programs([pot_program(program, reading) for program in programs])
    return [as_pot_answer(result) for result in results]


CASES = [
    # (program, few-shot floatify, zero-shot simplify+floatify)
    ("ans = (3, 4)", 3.0, 3.0),                      # tuple: first item (simplify keeps it)
    ("ans = [5]", 5.0, 5.0),                         # one-item list
    ("ans = []", None, None),                        # empty list
    ("ans = {'a': 3, 'b': 4}", 3, 3),                # dict: first value, as it is (an int)
    ("ans = {'a': 'x'}", "x", "x"),
    ("ans = True", True, True),                      # bool stays a bool
    ("ans = False", False, None),                    # simplify: a falsy value is None
    ("ans = 0", 0.0, None),                          # ... 0 included
    ("ans = None", None, None),
    ("x = 1", None, None),                           # no ans at all
    ("ans = 'shortage'", "shortage", "shortage"),    # text that is not a number
    ("ans = '12'", 12.0, 12.0),                      # text that is one
    ("import numpy as np\nans = np.float64(7) / 3", 7 / 3, 2.33),   # numpy: rounded by simplify
    ("import numpy as np\nans = np.int64(7)", 7.0, 7.0),
    ("import numpy as np\nans = np.bool_(True)", 1.0, 1.0),          # numpy bool: a number
    ("import numpy as np\nans = np.array([1.5, 2.0])", "[1.5 2. ]", 1.5),  # array: str / item 0
    ("from sympy import Rational\nans = Rational(7, 3)", 7 / 3, 2.33),     # sympy number
    ("from sympy import Rational\nans = (Rational(7, 3), 1)", 7 / 3, 2.33),
    ("x = Symbol('x')\nans = Eq(x, 2)", "Eq(x, 2)", "Eq(x, 2)"),   # tool globals; relation
    ("x = Symbol('x')\nans = solve_it(x - 2, x)", 2.0, 2.0),  # dict {x: 2}; sympy 2 as float
    ("x = Symbol('x')\nans = solve_it(x**2 + 1 - x**2, x)", None, None),  # {x: None}
    ("ans = math.floor(2.5)", 2.0, 2.0),             # math without an import (tool globals)
    ("ans = 6 * 7\nprint('the answer is', ans)", 42.0, 42.0),  # printed output is ignored
    ("print(42)", None, None),                       # ... and is no answer
    ("42", None, None),                              # nor is a last expression
    ("def solution():\n    return 42", None, None),  # nor a PAL-style solution()
    ("ans = 1 / 0", None, None),                     # the program raises
    ("ans = float('inf')", float("inf"), float("inf")),  # json writes Infinity
]


@pytest.mark.parametrize(("program", "few_shot", "zero_shot"), CASES,
                         ids=[case[0][:40] for case in CASES])
def test_each_result_type_reads_as_the_pot_scripts_read_it(program, few_shot,
                                                           zero_shot) -> None:
    got_few, got_zero = _read([program, program], FEW_SHOT)[0], _read([program], ZERO_SHOT)[0]
    assert agrees(got_few, few_shot), (got_few, few_shot)
    assert agrees(got_zero, zero_shot), (got_zero, zero_shot)
    assert type(got_few) is type(few_shot) or isinstance(few_shot, float)


def test_zero_shot_solver_returning_a_tuple() -> None:
    """A zero-shot completion returning several values: solver()'s tuple, its first item."""
    program = _zero_shot("    apples = 3\n    pears = apples * 2\n    return apples, pears\n")
    assert _read([program], ZERO_SHOT) == [3.0]
    numpy_pair = _zero_shot("    a = np.float64(10) / 4\n    return (a, a * 2)\n")
    assert _read([numpy_pair], ZERO_SHOT) == [2.5]   # numpy items: not rounded inside a tuple


def test_program_names_are_locals_as_in_the_authors_exec() -> None:
    """``exec(code)`` inside their ``safe_execute``: the program's top-level names are locals,
    which neither its functions nor (Python < 3.12) its comprehensions can see."""
    uses_top_level = _zero_shot("    return rate * 2\n").replace("def solver",
                                                                 "rate = 4\ndef solver")
    comprehension = "factor = 3\nans = sum([factor * n for n in range(3)])"
    loop = "factor = 3\nans = 0\nfor n in range(3):\n    ans += factor * n"
    assert _read([uses_top_level, comprehension, loop], FEW_SHOT) == [None, None, 9.0]


def test_executor_names_are_out_of_the_programs_reach() -> None:
    assert _read(["ans = _STEP", "ans = _json.dumps(1)"], FEW_SHOT) == [None, None]


def test_sandbox_guards_still_apply() -> None:
    results = run_programs([pot_program("import os\nans = os.listdir('/')", FEW_SHOT)])
    assert results[0].error_type == "forbidden" and as_pot_answer(results[0]) is None


def test_svamp_and_multiarith_record_the_absolute_value() -> None:
    assert _read(["ans = 3 - 5"], SVAMP) == [2.0]
    assert _read(["ans = 3 - 5"], READINGS["multiarith_zs"]) == [2.0]
    assert _read(["ans = 3 - 5"], READINGS["svamp_zs"]) == [-2.0]


def test_aqua_records_the_text_of_the_simplified_answer() -> None:
    programs = ["ans = 0.5", "import numpy as np\nans = (np.float64(1.5), 2)",
                "x = Symbol('x')\nans = solve_it(2 * x - 3, x)[x]", "ans = 1 / 0"]
    readings = _read(programs, AQUA)
    # numpy prints as numpy 1 did (the authors' str()); a sympy Rational rounds to 2 places
    assert readings == ["0.5", "(1.5, 2)", "1.5", None]
    assert [vote([value], AQUA) for value in readings] == ["0.5", "(1.5, 2)", "1.5", "None"]
    zero_shot = READINGS["aqua_zs"]    # str(simplify), floatify, then str of that
    assert [vote([value], zero_shot) for value in _read(programs, zero_shot)] == [
        "0.5", "(1.5, 2)", "1.5", "None"]


def test_self_consistency_takes_the_most_frequent_reading_first_among_ties() -> None:
    records = [{"generated": ["ans = 2", "ans = 3", "ans = 1 / 0", "ans = 3.0"]},
               {"generated": ["ans = 2", "ans = 3"]},
               {"generated": ["ans = 1 / 0", "print(1)"]},
               {"generated": "ans = 7"}]
    answers, results = read_records(records, FEW_SHOT, run_programs)
    assert answers == [3.0, 2.0, None, 7.0]
    assert [len(mine) for mine in results] == [4, 2, 2, 1]
    assert vote([True, 1.0, 2.0], FEW_SHOT) is True   # True == 1.0, counted together


def test_reading_rejects_unknown_steps_and_bad_records() -> None:
    with pytest.raises(ValueError, match="unknown PoT reading steps"):
        PotReading(("round",))
    with pytest.raises(ValueError, match="'generated'"):
        read_records([{"generated": None}], FEW_SHOT, run_programs)


def test_answers_longer_than_the_output_limit_read_as_none() -> None:
    (result,) = run_programs([pot_program("ans = 'x' * 100_000", FEW_SHOT)])
    assert result.ok and as_pot_answer(result) is None
    assert json.loads(run_programs([pot_program("ans = 'xy'", FEW_SHOT)])[0].value) == "xy"
