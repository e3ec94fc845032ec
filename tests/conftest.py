"""Shared fixtures: the shipped image sample, the full data set when present, one trained run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock
from forked import run_pilah

from pilah.inference.open_set import bank_path
from pilah.inference.predictor import BUNDLED_FAST_MODEL_NAME, BUNDLED_MODEL_NAME
from pilah.resources import examples_dir, models_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TESTS = Path(__file__).parent
REPO = TESTS.parent
SAMPLE = TESTS / "samples" / "garbage12-sample"  # 8 images per class from Kaggle's garbage12 (see its README)
SHARED = REPO.parent / "shared"
GARBAGE12 = SHARED / "data" / "garbage12"
IMAGENET_WEIGHTS = SHARED / "weights" / "xception_imagenet_notop_fp16.weights.h5"
KERAS_MODEL = REPO / "models" / BUNDLED_MODEL_NAME  # the trained model (too large for the package)
INT8_MODEL = models_dir() / BUNDLED_FAST_MODEL_NAME  # its int8 export, package data: what runs by default
EXAMPLES = examples_dir()  # one photo per class, named after its class
INT8_CARD = INT8_MODEL.with_name(INT8_MODEL.name + ".json")
FAST = ["--set", "train.workers=1", "--image-size", "96", "--batch-size", "8", "--weights", "none"]


def reference_photos() -> int:
    """How many example photos the bundled model's self-check compares: those its card is sure of."""
    return len(json.loads(INT8_CARD.read_text())["self_check"]["photos"])


def model_with_grades(folder: Path, sure: float, likely: float = 1.0, two: float = 0.0) -> Path:
    """The bundled model under another card whose thresholds force a grade: `sure` 0.0 makes every answer sure;
    with `sure` 1.0, a `likely` lead of 0.0 makes it likely, `two` 0.0 one of two and `two` 2.0 none."""
    card = json.loads(INT8_CARD.read_text())
    card["uncertain_below"], card["grades"] = sure, {"likely_margin": likely, "two_from": two}
    return model_with_card(folder, card)


def model_with_card(folder: Path, card: dict) -> Path:
    """The bundled int8 model (with its open-set bank and the `.keras` file it came from) under another card."""
    folder.mkdir(exist_ok=True)
    for model in (INT8_MODEL, KERAS_MODEL, bank_path(INT8_MODEL), bank_path(KERAS_MODEL)):
        (folder / model.name).symlink_to(model)
    (folder / INT8_CARD.name).write_text(json.dumps(card))
    return folder / INT8_MODEL.name


def needs_shared(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is absent (only on the developers' machines)")


def pilah(*args: str | Path, cwd: Path | None = None, check: bool = True, timeout: float = 600, input: str = ""):
    """Run the real `pilah` command in a new process (`input` on its standard input): see `forked.py`."""
    result = run_pilah([str(a) for a in args], cwd, input, timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"pilah {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture()
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the sample, for tests that add bad files or duplicates."""
    target = tmp_path / "data"
    shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("README.md"))
    return target


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test session that every test process (xdist worker) of one `pytest -n` run sees."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
    base = tmp_path_factory.getbasetemp()
    shared = base.parent / f"shared-{run_id}" if run_id else base / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    return shared


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """`build(path)` once per test session, by whichever test process asks first; the others wait for it and share
    it. What is built here is read, never changed: a test that writes copies it first."""
    shared = shared_folder(tmp_path_factory)
    target, done = shared / name, shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-epoch run of the seed's model (random weights, 96 px) on the sample, with evaluation; built once
    for all test processes (read-only: copy it to change it)."""
    return built_once(
        tmp_path_factory, "fit", lambda out: pilah("train", "--data", SAMPLE, "--out", out, "--epochs", "2", *FAST)
    )


@pytest.fixture(scope="session")
def web_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline browser app's site (`pilah web build`: the real onnxruntime-web from npm, the bundled model),
    built once for all test processes (read-only: copy it to change it)."""
    from browser import require_tool
    from pilah.web.build import build_site

    require_tool("npm")
    return built_once(tmp_path_factory, "web-site", build_site)


@pytest.fixture(scope="session")
def web_url(web_site: Path):
    """The site served on loopback by `pilah web serve`, for this test process."""
    from browser import serve_site, stop

    url, process = serve_site(web_site)
    yield url
    output = stop(process)
    assert "Traceback" not in output, output[-3000:]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that train a model through the shared `trained_run` fixture are slow too (`pytest -m "not slow"`).
    Slow tests run first: with several test processes, a long test left for last would keep one busy while the
    others wait (the longest-first rule of scheduling)."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: otherwise as collected
