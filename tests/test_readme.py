"""README.md's examples, run as a user runs them: every output the README shows is pinned here,
so a refactor cannot change one silently. Commands and expected outputs are parsed out of
README.md itself; when the README is right, updating it is the whole fix.

The CLI runs as `python -m ltd ...` in a subprocess (whichever module holds the code); the REST
examples are checked in tests/api/routes/test_routes_readme.py with the helpers below.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@dataclass(frozen=True)
class Example:
    """One `$ command` of a README console block and the output lines shown under it."""

    command: str  # continuation lines joined, without the leading "$ "
    output: list[str]

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command, comments=True)


def _complete(command: str) -> bool:
    """Whether a command is whole: no trailing `\\` and no quote left open."""
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # "No closing quotation": a -d '...' body runs on
        return False
    return True


def console_examples(text: str) -> list[Example]:
    """Every `$ ...` example of every ```console block of a markdown text, in order."""
    examples: list[Example] = []
    for block in re.findall(r"^```console\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            command = lines[i][2:].rstrip()
            i += 1
            while not _complete(command):
                assert i < len(lines), f"README command never ends: {command!r}"
                line = lines[i].strip()
                command = (
                    command[:-1].rstrip() + " " + line
                    if command.endswith("\\")
                    else (command + "\n" + line)
                )
                i += 1
            output: list[str] = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            examples.append(Example(command, output))
    return examples


def readme_example(starts_with: str, *, containing: str = "") -> Example:
    """The one README console example whose command starts so (and contains `containing`)."""
    found = [
        example
        for example in console_examples(README.read_text(encoding="utf-8"))
        if example.command.startswith(starts_with) and containing in example.command
    ]
    assert len(found) == 1, f"README: {len(found)} examples start {starts_with!r} ({containing!r})"
    return found[0]


def _rstripped(lines: list[str]) -> list[str]:
    return [line.rstrip() for line in lines]


def run_ltd(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m ltd *argv` as a user runs it: in `cwd`, no terminal, COLUMNS unset."""
    assert argv[0] == "ltd", argv
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    # This checkout's packages, whichever of them the command line lives in now.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "ltd", *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_same_lines(actual: str, expected: list[str]) -> None:
    assert _rstripped(actual.splitlines()) == _rstripped(expected)


# --- the elided JSON of the REST examples -------------------------------------------------


def elided_json(lines: list[str]) -> Any:
    """The README's response sketch (`{"a": 1, ...}`, `"plan": {...}`) as JSON without the
    elisions: a subset of the real response, for `assert_matches`."""
    text = "\n".join(lines)
    text = text.replace("{...}", "{}").replace("[...]", "[]")
    text = re.sub(r",\s*\.\.\.(?=\s*[}\]])", "", text)
    return json.loads(text)


def _decimals(number: float) -> int:
    text = repr(number)
    assert "e" not in text.lower(), number
    return len(text.split(".")[1]) if "." in text else 0


def assert_matches(actual: Any, expected: Any, path: str = "") -> list[str]:
    """Assert `actual` has every value `expected` shows (dicts: a subset of keys; lists: same
    length; floats: equal when rounded to as many decimals as shown). Returns the leaf paths
    compared, so a caller can tell the comparison was not vacuous."""
    where = path or "<root>"
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        compared = [path] if not expected else []
        for key, value in expected.items():
            assert key in actual, f"{where}: no {key!r} in {sorted(actual)}"
            compared += assert_matches(actual[key], value, f"{path}.{key}" if path else key)
        return compared
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list"
        assert len(actual) == len(expected), (
            f"{where}: {len(actual)} items, README shows {expected}"
        )
        compared = []
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            compared += assert_matches(a, e, f"{path}[{index}]")
        return compared if expected else [path]
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert actual is expected or (isinstance(expected, str) and actual == expected), (
            f"{where}: {actual!r} != README's {expected!r}"
        )
        return [path]
    if isinstance(expected, int):
        assert type(actual) is int and actual == expected, f"{where}: {actual!r} != {expected!r}"
        return [path]
    assert isinstance(expected, float), f"{where}: unexpected README value {expected!r}"
    assert isinstance(actual, int | float) and not isinstance(actual, bool), f"{where}: {actual!r}"
    assert round(actual, _decimals(expected)) == expected, (
        f"{where}: {actual!r} does not round to README's {expected!r}"
    )
    return [path]


# --- the CLI examples ---------------------------------------------------------------------


def test_quickstart_plan_table_is_the_readme(tmp_path: Path) -> None:
    example = readme_example("ltd plan --model gpt3-1.3b", containing="--gpu a100")
    assert "--price-per-gpu-hour 1.8" in example.command
    assert example.output[-2].startswith("└"), "the README shows the whole table"
    assert example.output[-1].startswith("wall-clock: "), "and how wall-clock was projected"
    result = run_ltd(example.argv, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_same_lines(result.stdout, example.output)


def test_quickstart_schedule_csv_is_the_readme(tmp_path: Path) -> None:
    example = readme_example("ltd schedule --model gpt3-1.3b", containing="--every 50000")
    assert example.output[0].startswith("step,reserved_length,")
    result = run_ltd(example.argv, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_same_lines(result.stdout, example.output)


def test_inverse_planning_first_line_is_the_readme(tmp_path: Path) -> None:
    example = readme_example("ltd plan --model gpt3-1.3b", containing="--target-saving 0.3")
    first, elided = example.output  # the README shows one line, then "..."
    assert elided == "..."
    result = run_ltd(example.argv, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].rstrip() == first.rstrip()


# --- the helpers themselves: they must be able to fail --------------------------------------


def test_a_changed_output_fails_the_comparison() -> None:
    example = readme_example("ltd schedule --model gpt3-1.3b", containing="--every 50000")
    real = "\n".join(example.output) + "\n"
    assert_same_lines(real, example.output)
    for changed in (
        re.sub(r"\d", lambda m: str((int(m[0]) + 1) % 10), real, count=1),  # one digit
        real + "250000,2048,25165824,0,1048576,0\n",  # one more row
        "\n".join(example.output[:-1]),  # one row fewer
    ):
        with pytest.raises(AssertionError):
            assert_same_lines(changed, example.output)


def test_elided_json_matches_only_what_it_shows() -> None:
    expected = elided_json(['{"id": "p_1", "s": {"a": 0.3333, ...},', ' "n": 7, "p": {...}}'])
    assert expected == {"id": "p_1", "s": {"a": 0.3333}, "n": 7, "p": {}}
    actual = {"id": "p_1", "s": {"a": 0.333333, "b": 2}, "n": 7, "p": {"x": 1}, "more": True}
    assert sorted(assert_matches(actual, expected)) == ["id", "n", "p", "s.a"]
    for wrong in (
        {**actual, "id": "p_2"},
        {**actual, "s": {"a": 0.3334}},
        {**actual, "n": 7.0},
        {**actual, "p": []},
        {k: v for k, v in actual.items() if k != "n"},
    ):
        with pytest.raises(AssertionError):
            assert_matches(wrong, expected)
    with pytest.raises(AssertionError):
        assert_matches({"passed": 0}, {"passed": False})
    with pytest.raises(AssertionError):
        assert_matches({"v": [1, 2]}, {"v": [1]})
