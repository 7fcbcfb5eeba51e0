"""The exercise files, loaded by path: ``exercises/`` is a folder of scripts, not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXERCISES = Path(__file__).resolve().parents[2] / "exercises"


def load_exercise(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"exercises_{name}", EXERCISES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the defining module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Session scope: hypothesis rejects function-scoped fixtures in @given tests, and the modules
# hold no state.
@pytest.fixture(scope="session")
def exercise_1_1() -> ModuleType:
    return load_exercise("exercise_1_1")


@pytest.fixture(scope="session")
def exercise_1_2() -> ModuleType:
    return load_exercise("exercise_1_2")
