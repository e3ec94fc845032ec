"""`pilah export` to ONNX and TFLite; the exported files load in Predictor and agree with the Keras model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, built_once, pilah
from pilah.data.split import read_manifest
from pilah.inference.export import QUANTIZATIONS, calibration_images, card_path, export_targets
from pilah.inference.predictor import Predictor
from pilah.web.graph import page_graph

pytest.importorskip("tf2onnx", reason="pip install -e '.[export]'")
onnx = pytest.importorskip("onnx")
from onnx_models import int8_weights  # noqa: E402

PHOTOS = sorted(SAMPLE.glob("*/*.jpg"))[::4]  # 24 real photos, two per class


def probabilities(model: Path) -> np.ndarray:
    predictor = Predictor(model)
    results = predictor.predict_batch(PHOTOS)
    assert all(r.error is None for r in results)
    return np.array([[r.probabilities[c] for c in predictor.classes] for r in results])


@pytest.fixture(scope="module")
def keras_probs(trained_run: Path) -> np.ndarray:
    return probabilities(trained_run / "best.keras")


@pytest.fixture(scope="session")
def export(trained_run: Path, tmp_path_factory):
    """`pilah export` of the trained run, each format once in all three quantizations (one conversion for the
    three), for every test that reads them."""
    model = trained_run / "best.keras"

    def name(fmt: str, quantize: str) -> str:
        return export_targets(model, fmt, [quantize], None)[quantize].name  # e.g. best-int8.onnx

    def build(fmt: str, folder: Path) -> None:
        result = pilah("export", "--model", model, "--format", fmt, "--quantize", *QUANTIZATIONS, "--out", folder,
                       "--calibration", trained_run)  # fmt: skip
        assert all(f"wrote {folder / name(fmt, quantize)}" in result.stdout for quantize in QUANTIZATIONS)

    def make(fmt: str, quantize: str) -> Path:
        return built_once(tmp_path_factory, f"export-{fmt}", lambda folder: build(fmt, folder)) / name(fmt, quantize)

    return make


@pytest.mark.parametrize(
    ("fmt", "quantize", "tolerance"),
    [("onnx", "fp32", 1e-4), ("onnx", "fp16", 2e-2), ("tflite", "fp32", 1e-4), ("tflite", "fp16", 2e-2)],
)
def test_export_agrees_with_keras(export, keras_probs, fmt, quantize, tolerance):
    out = export(fmt, quantize)
    assert card_path(out).is_file()  # the card travels with the file: classes, temperature
    exported = probabilities(out)
    assert np.abs(exported - keras_probs).max() < tolerance
    assert (exported.argmax(1) == keras_probs.argmax(1)).mean() == 1.0


@pytest.mark.parametrize(
    ("fmt", "quantize", "tolerance"), [("onnx", "fp32", 1e-4), ("tflite", "fp32", 1e-4), ("onnx", "int8", 0.1)]
)
def test_exports_carry_the_open_set_score(trained_run: Path, export, fmt, quantize, tolerance):
    """The run's evaluation fitted the score; each export puts out the same features (its `embedding`), takes
    the bank with it, and grades the same photos unfamiliar."""
    keras = Predictor(trained_run / "best.keras")
    assert keras.open_set is not None and keras.open_set.layer == "avg_pool"
    out = export(fmt, quantize)
    card = json.loads(card_path(out).read_text())
    assert card["open_set"]["bank"] == f"{out.name}.bank.npy" and (out.parent / card["open_set"]["bank"]).is_file()
    exported = Predictor(out)
    assert exported.open_set is not None
    want = np.array([r.novelty for r in keras.predict_batch(PHOTOS)])
    got = np.array([r.novelty for r in exported.predict_batch(PHOTOS)])
    assert np.abs(got - want).max() < tolerance


def test_int8_onnx_is_calibrated_on_the_runs_training_images_and_runs(trained_run: Path, export, keras_probs):
    out = export("onnx", "int8")
    model = trained_run / "best.keras"
    training_images = calibration_images([trained_run])
    split = {row.path: row.split for row in read_manifest(trained_run / "manifest.csv")}
    assert training_images and {split[str(p.relative_to(SAMPLE))] for p in training_images} == {"train"}
    card = json.loads(card_path(out).read_text())["export"]
    assert card["calibration_images"] == min(200, len(training_images))
    assert card["source_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert card["int8"].startswith("weights int8 with reduce_range (7 bits)")
    weights = int8_weights(out)  # 7-bit weights: no int16 saturation on x86 without VNNI (test_selfcheck.py)
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    graph = onnx.load(str(out)).graph
    producer = next(node for node in graph.node if graph.output[0].name in node.output)
    assert producer.op_type == "Softmax"  # the head stays float: probabilities are not rounded to 1/255
    (first,) = [node for node in graph.node if graph.input[0].name in node.input]
    scaled = next(node for node in graph.node if first.output[0] in node.input)
    # the pixel scaling stays float: a quantized add rounds differently in each runtime (tests/web/test_site.py)
    assert (first.op_type, scaled.op_type) == ("Mul", "Add"), (first.op_type, scaled.op_type)
    assert page_graph(out) == out.read_bytes()  # so the browser app runs it as it is
    exported = probabilities(out)
    assert np.allclose(exported.sum(1), 1, atol=1e-5)
    assert np.abs(exported - keras_probs).mean() < 0.05  # a random-weight model: close, not equal
    result = pilah("predict", "--model", out, "--json", PHOTOS[0])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["label"] in json.loads((trained_run / "labels.json").read_text()) and record["error"] is None
    assert record["probabilities"][record["label"]] == pytest.approx(exported[0].max(), abs=1e-6)


def test_int8_tflite_runs_and_stays_close(export, keras_probs):
    out = export("tflite", "int8")
    assert json.loads(card_path(out).read_text())["export"]["quantize"] == "int8"
    float_card = json.loads(card_path(export("tflite", "fp32")).read_text())["export"]  # exported in the same call
    assert float_card["quantize"] == "fp32" and "calibration_images" not in float_card
    exported = probabilities(out)
    assert np.allclose(exported.sum(1), 1, atol=1e-3)
    assert np.abs(exported - keras_probs).mean() < 0.05


def test_int8_without_calibration_images_is_a_usage_error(trained_run: Path, tmp_path: Path):
    result = pilah(
        "export", "--model", trained_run / "best.keras", "--format", "onnx", "--quantize", "int8", check=False
    )
    assert result.returncode == 2 and "--calibration" in result.stderr


def test_one_quantization_goes_to_the_file_named_several_to_the_folder_named(tmp_path: Path):
    model = tmp_path / "pilah-xception.keras"
    assert export_targets(model, "onnx", ["int8"], None) == {"int8": tmp_path / "pilah-xception-int8.onnx"}
    assert export_targets(model, "onnx", ["int8"], tmp_path / "x.onnx") == {"int8": tmp_path / "x.onnx"}
    assert export_targets(model, "tflite", ["fp16", "fp32", "fp16"], tmp_path / "out") == {
        "fp16": tmp_path / "out" / "pilah-xception-fp16.tflite",
        "fp32": tmp_path / "out" / "pilah-xception.tflite",
    }
    result = pilah("export", "--model", model, "--format", "onnx", "--quantize", "int4", check=False)
    assert result.returncode == 2 and "invalid choice: 'int4'" in result.stderr
