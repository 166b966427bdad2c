"""``chatopsbot new-plugin``: the package it writes installs, registers and passes its tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from chatopsbot.cli import main
from chatopsbot.scaffold import ScaffoldError, write_plugin


def test_the_written_plugin_passes_its_own_tests(tmp_path):
    root = write_plugin("stand-up", tmp_path)
    assert root == tmp_path / "chatopsbot-stand-up"
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["chatopsbot"] == {"stand_up": "chatopsbot_stand_up"}
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    result = subprocess.run(  # noqa: S603 - the interpreter running these tests
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


@pytest.mark.parametrize("name", ["Bad", "9lives", "a b", "", "x" * 41])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(ScaffoldError, match="use lower-case letters"):
        write_plugin(name, tmp_path)


def test_an_existing_folder_is_left_alone_and_the_cli_says_so(tmp_path, capsys):
    (tmp_path / "chatopsbot-dup").mkdir()
    assert main(["new-plugin", "dup", "--into", str(tmp_path)], {}) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"chatopsbot: {tmp_path / 'chatopsbot-dup'} already exists"
    )
    assert main(["new-plugin", "fresh", "--into", str(tmp_path)], {}) == 0
    assert (tmp_path / "chatopsbot-fresh" / "src" / "chatopsbot_fresh" / "__init__.py").exists()
