"""The suite's `pilah` commands forked from a parent that imported TensorFlow once (tests/forked.py) answer as
fresh ones do: the same output, errors and exit status."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from forked import parent_for, run_pilah


@pytest.mark.parametrize("args", [["config"], ["config", "--no-such-flag"], ["data", "scan", "no-such-folder"]])
def test_a_forked_command_answers_as_a_fresh_one(args: list[str], tmp_path: Path):
    assert parent_for(dict(os.environ)), "this command would not be forked"
    command = [sys.executable, "-m", "pilah.cli", *args]
    fresh = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    forked = run_pilah(args, tmp_path, "", 120)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert fresh.stdout or fresh.stderr


def test_another_keras_backend_starts_afresh(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert parent_for(dict(os.environ)) is None
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")  # the default: forked
    assert parent_for(dict(os.environ))
