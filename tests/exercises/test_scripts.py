"""Each exercise runs on its own as a script: standard library only, silent, its asserts pass."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXERCISES = Path(__file__).resolve().parents[2] / "exercises"
SCRIPTS = sorted(EXERCISES.glob("exercise_*.py"))


def test_both_exercises_are_found() -> None:
    assert [script.name for script in SCRIPTS] == ["exercise_1_1.py", "exercise_1_2.py"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_runs_standalone_and_prints_nothing(script: Path, tmp_path: Path) -> None:
    # -I -S: no site-packages, no PYTHONPATH, no current folder, so only the standard library
    # can be imported.
    completed = subprocess.run(
        [sys.executable, "-I", "-S", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "", "")


@pytest.mark.parametrize(("script", "examples"), [("exercise_1_1.py", 3), ("exercise_1_2.py", 2)])
def test_script_mode_asserts_the_examples(script: str, examples: int) -> None:
    tree = ast.parse((EXERCISES / script).read_text(encoding="utf-8"))
    main_blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
    ]
    assert len(main_blocks) == 1
    asserts = [node for node in ast.walk(main_blocks[0]) if isinstance(node, ast.Assert)]
    assert len(asserts) == examples
