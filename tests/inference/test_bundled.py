"""The model that ships in models/: it loads, its card agrees with it, and it classifies the examples."""

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import EXAMPLES, INT8_MODEL, KERAS_MODEL, pilah, reference_photos
from pilah.inference.export import card_path

MODEL = KERAS_MODEL
CARD = MODEL.with_suffix(".json")
FAST_MODEL = INT8_MODEL
FAST_CARD = card_path(FAST_MODEL)


def test_card_describes_the_model():
    card = json.loads(CARD.read_text())
    assert card["classes"] == sorted(card["classes"]) and len(card["classes"]) == 12
    assert card["input"]["size"] == [224, 224, 3]
    assert sum(card["data"]["split"].values()) == card["data"]["images"] == 15_191
    assert 0 < card["uncertain_below"] < 1 and card["temperature"] > 0
    assert "mostafaabla/garbage-classification" in card["data"]["source"]
    assert MODEL.stat().st_size < 100 * 1024 * 1024  # GitHub's per-file limit


def test_loads_with_plain_keras_in_a_fresh_process():
    script = textwrap.dedent(
        f"""
        import keras
        model = keras.saving.load_model({str(MODEL)!r}, safe_mode=True)
        print(model.input_shape, model.output_shape)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert "(None, 224, 224, 3) (None, 12)" in result.stdout


def test_fast_model_is_the_export_of_the_bundled_model():
    """The int8 ONNX file that predict, app and serve run must come from the committed `.keras` weights:
    retraining without exporting again fails here."""
    card, fast = json.loads(CARD.read_text()), json.loads(FAST_CARD.read_text())
    assert fast["export"]["source"] == MODEL.name
    assert fast["export"]["source_sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert (fast["export"]["format"], fast["export"]["quantize"]) == ("onnx", "int8")
    shared = ("classes", "temperature", "uncertain_below", "grades", "flip_tta", "metrics", "self_check")
    assert {k: fast[k] for k in shared} == {k: card[k] for k in shared}  # one model, one set of reference answers
    assert FAST_MODEL.stat().st_size < 100 * 1024 * 1024


@pytest.mark.parametrize(("flags", "model"), [([], FAST_MODEL), (["--model", str(MODEL)], MODEL)])
def test_predict_gets_the_examples_right_with_either_bundled_model(flags: list[str], model: Path):
    result = pilah("predict", EXAMPLES, "--json", "--top-k", "3", *flags, cwd=Path("/"))
    assert f"model {model}" in result.stderr  # the default is the int8 ONNX export
    runtime = "onnxruntime" if model.suffix == ".onnx" else "keras"
    assert (
        f"runtime {runtime}" in result.stderr
        and f"self-check passed on {reference_photos()} reference photos" in result.stderr
    )
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 12
    for record in records:
        assert record["label"] == Path(record["source"]).stem, record  # file name = true class
        assert len(record["top_k"]) == 3


TRAINING_STACK = ("keras", "tensorflow", "tf2onnx", "jax", "torch")


def test_the_default_install_predicts_serves_and_runs_the_app_without_keras(tmp_path):
    """What `pip install pilah` gets (no extras) names no training library, and the default verbs work with every
    one of them made unimportable in a fresh process."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith(TRAINING_STACK)]
    script = textwrap.dedent(
        f"""
        import sys
        for name in {TRAINING_STACK!r}:
            sys.modules[name] = None  # `import keras` now raises ImportError
        import pilah.serving.api, pilah.app.history
        from pilah.cli import main
        status = main(["predict", {str(EXAMPLES)!r}, "--out", {str(tmp_path / "out.csv")!r}])
        assert not [m for m in sys.modules if m.split(".")[0] in {TRAINING_STACK!r} and sys.modules[m]]
        sys.exit(status)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert len(rows) == 1 + len(list(EXAMPLES.glob("*.jpg"))) and "onnxruntime" in result.stderr + result.stdout
