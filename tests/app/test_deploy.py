"""Deployment as on Streamlit Community Cloud: requirements.txt alone, then `streamlit run streamlit_app.py`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from browser import launch, launch_on_free_port, require_chromium, stop
from conftest import REPO
from pilah.app import words

pytestmark = pytest.mark.slow  # trains, starts a browser or builds a virtual environment


def requirement_lines() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_requirements_txt_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert requirement_lines() == project["dependencies"]


def test_fresh_environment_from_requirements_serves_the_app(tmp_path: Path):
    """What the Cloud does: a new virtual environment from requirements.txt, then streamlit run. The Cloud installs
    with uv, which puts no pip in the environment and compiles no bytecode ahead; pip from outside the environment
    (`--python`) with `--no-compile` does the same (the test took 17-19 s of processor time instead of 31 s)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-compile"]
    install = subprocess.run([*pip, "-r", REPO / "requirements.txt"], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-2000:]
    command = [venv / "bin" / "streamlit", "run", "streamlit_app.py", "--server.headless", "true"]
    url, server = launch_on_free_port(lambda port: [*command, "--server.port", str(port)], "/_stcore/health", cwd=REPO)
    try:
        require_chromium()
        sync_api = pytest.importorskip("playwright.sync_api")
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page()
            page.goto(url)
            # the title renders only after the script ran in the fresh environment, model loaded
            page.get_by_text(words.texts("id")["title"]).wait_for(timeout=180_000)
            page.get_by_text(words.texts("id")["model_title"]).wait_for(timeout=180_000)
            browser.close()
    finally:
        output = stop(server)
    assert "Traceback" not in output, output[-3000:]
