"""The model that ships in models/: it loads, its card agrees with it, and it classifies the examples."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, pilah

MODEL = REPO / "models" / "pilah-xception.keras"
CARD = MODEL.with_suffix(".json")
EXAMPLES = REPO / "examples"


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


@pytest.mark.parametrize("top_k", [3])
def test_predict_uses_the_bundled_model_and_gets_the_examples_right(top_k: int):
    result = pilah("predict", EXAMPLES, "--json", "--top-k", str(top_k), cwd=Path("/"))
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 12
    for record in records:
        assert record["label"] == Path(record["source"]).stem, record  # file name = true class
        assert len(record["top_k"]) == top_k
