"""`.ci/floors.py`: the pins of tox's `lowest` env, read off setup.cfg's ranges."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_floors():
    spec = importlib.util.spec_from_file_location("floors", ROOT / ".ci" / "floors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.floors


def setup_cfg(tmp_path, install_requires):
    path = tmp_path / "setup.cfg"
    path.write_text(f"[options]\ninstall_requires =\n{install_requires}", encoding="utf-8")
    return path


def test_each_range_is_pinned_at_its_floor_with_its_extras_and_marker(tmp_path):
    path = setup_cfg(
        tmp_path,
        "    flask>=3.1,<4\n"
        "    # a comment between requirements\n"
        "    redis[hiredis]>=7.0,<9\n"
        '    gevent>=24.10.1; python_version < "3.14"\n'
        "    exact==1.2\n",
    )
    assert load_floors()(path) == [
        "flask==3.1",
        "redis[hiredis]==7.0",
        'gevent==24.10.1; python_version < "3.14"',
        "exact==1.2",
    ]


def test_a_requirement_without_a_floor_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="'requests<3' has no floor"):
        load_floors()(setup_cfg(tmp_path, "    flask>=3.1\n    requests<3\n"))


def test_every_runtime_dependency_of_the_project_has_a_floor():
    pins = load_floors()()
    assert {"flask==3.1", "flask-smorest==0.46"} <= set(pins)
