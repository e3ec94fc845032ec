"""The metric functions against values worked out by hand, and packaging a run as a model card."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import pilah
from pilah.config import Config
from pilah.evaluation import metrics as ev
from pilah.inference.calibration import apply_temperature
from pilah.inference.predictor import Predictor
from pilah.runs import Run


def test_confusion_and_per_class_scores():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    matrix = ev.confusion_matrix(labels, predicted, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    scores = ev.per_class_scores(matrix)
    assert scores["precision"].tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert scores["recall"].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert scores["f1"].tolist() == pytest.approx([0.5, 0.8, 2 / 3])


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bins of width 0.5: {0.6} right -> |1-0.6|; {0.9, 0.9} one right -> |0.5-0.9|; {0.7} right -> |1-0.7|
    # with 15 bins 0.6, 0.7 and 0.9 fall in different bins; 0.9 twice share one
    expected = (abs(1 - 0.6) + abs(1 - 0.7) + 2 * abs(0.5 - 0.9)) / 4
    assert ev.expected_calibration_error(probs, labels, bins=15) == pytest.approx(expected)
    perfect = np.eye(3)[[0, 1, 2]]
    assert ev.expected_calibration_error(perfect, np.array([0, 1, 2])) == pytest.approx(0.0)


def test_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 5))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=p) for p in truth])
    sharpened = apply_temperature(truth, 0.5)  # twice as confident as the truth
    assert ev.fit_temperature(sharpened, labels) == pytest.approx(2.0, rel=0.1)
    assert ev.expected_calibration_error(apply_temperature(sharpened, 2.0), labels) < ev.expected_calibration_error(
        sharpened, labels
    )


def test_uncertainty_threshold_keeps_the_confident_part_accurate():
    probs = np.array([[0.99, 0.01], [0.95, 0.05], [0.9, 0.1], [0.7, 0.3], [0.6, 0.4]])
    labels = np.array([0, 0, 0, 1, 0])  # the 0.7 one is wrong
    assert ev.uncertainty_threshold(probs, labels, 1.0, confidence=0.5) == pytest.approx(0.9)
    assert ev.uncertainty_threshold(probs, labels, 0.8, confidence=0.5) == pytest.approx(0.6)
    assert ev.uncertainty_threshold(probs[3:4], labels[3:4], 0.99, confidence=0.5) == 1.0


def test_accuracy_lower_bound_is_wilsons():
    # 8 right of 10 at 95 % two-sided (97.5 % one-sided): Wilson's interval is 0.490-0.943.
    assert ev.accuracy_lower_bound(np.array(8), np.array(10), 0.975) == pytest.approx(0.4902, abs=1e-4)
    assert ev.accuracy_lower_bound(np.array(8), np.array(10), 0.5) == pytest.approx(0.8)
    more = ev.accuracy_lower_bound(np.array(800), np.array(1000), 0.975)
    assert 0.76 < more < 0.8  # more answers, a tighter bound


def test_a_threshold_chosen_with_confidence_wants_more_evidence():
    # Ten answers right, then one wrong, then ten right: 20 of 21 (95 %) clears 90 % at face value. With 90 %
    # confidence not even the top ten do (10 of 10: lower bound 0.86); all 21 clear 85 % (lower bound 0.853).
    scores = np.linspace(1.0, 0.5, 21)
    right = np.ones(21, dtype=bool)
    right[10] = False
    assert ev.selective_threshold(scores, right, 0.9, confidence=0.5) == pytest.approx(0.5)
    assert ev.selective_threshold(scores, right, 0.9, confidence=0.9) == 1.0
    assert ev.selective_threshold(scores, right, 0.85, confidence=0.9) == pytest.approx(0.5)


def test_doubt_grades_by_hand():
    probs = np.array(
        [
            [0.95, 0.03, 0.02],  # sure
            [0.80, 0.15, 0.05],  # leads by 0.65, right
            [0.70, 0.20, 0.10],  # leads by 0.50, wrong; the truth is second
            [0.60, 0.35, 0.05],  # leads by 0.25, wrong; the truth is second
            [0.50, 0.45, 0.05],  # leads by 0.05, right
            [0.40, 0.35, 0.25],  # leads by 0.05, wrong; the truth is third
        ]
    )
    labels = np.array([0, 0, 1, 1, 0, 2])
    grades = ev.doubt_grades(probs, labels, sure_from=0.9, likely_accuracy=1.0, pair_coverage=1.0, confidence=0.5)
    assert grades["likely_margin"] == pytest.approx(0.65)  # only the lead of 0.65 is always right
    assert grades["two_from"] == pytest.approx(0.90)  # pairs summing to 0.90 or more always hold the truth


def test_package_writes_model_and_card_that_match_the_run(trained_run: Path, tmp_path: Path):
    pilah("package", trained_run, "--out", tmp_path, "--name", "tiny")
    card = json.loads((tmp_path / "tiny.json").read_text())
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert card["metrics"]["splits"] == metrics["splits"]
    assert card["classes"] == json.loads((trained_run / "labels.json").read_text())
    assert card["temperature"] == metrics["temperature"]
    assert card["training"]["command"].startswith("pilah train --data DATA_DIR --weights none")
    assert "--set data.image_size=96" in card["training"]["command"]
    assert card["architecture"].startswith("Xception base, last 20 layers trainable; GAP, Dense 256 (L2 0.01)")
    markdown = (tmp_path / "tiny.md").read_text()
    assert markdown.startswith("# Model card: tiny\n") and "## Known limits" in markdown
    for split, scores in card["metrics"]["splits"].items():  # the Markdown tables say what the JSON card says
        assert (
            f"| {split} | {scores['images']:,} | {scores['accuracy'] * 100:.2f} % | {scores['loss']:.4f} |" in markdown
        )
    assert f"Test macro-F1: {card['metrics']['macro_f1']:.4f}" in markdown
    for label, scores in card["metrics"]["per_class"].items():
        assert f"| {label} | {scores['precision']:.4f} | {scores['recall']:.4f} | {scores['f1']:.4f} |" in markdown
    assert card["training"]["command"] in markdown
    assert "self_check" not in card and "Self-check" not in markdown  # random weights: sure of no example
    model = keras.saving.load_model(tmp_path / "tiny.keras")
    assert getattr(model, "optimizer", None) is None  # shipped without optimiser state
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)  # evaluate writes its files anew: on a copy, as trained_run is shared
    result = pilah("evaluate", run, "--model", tmp_path / "tiny.keras")
    again = json.loads((run / "metrics.json").read_text())
    assert f"test macro-F1 {again['test']['macro_f1']:.4f}; temperature {again['temperature']:.3f}" in result.stdout
    assert again["splits"] == card["metrics"]["splits"]


def test_evaluate_with_flip_tta_is_recorded_and_followed_by_the_predictor(trained_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    refused = pilah("evaluate", run, "--set", "train.epochs=3", check=False)
    assert refused.returncode == 2 and "eval.KEY=VALUE" in refused.stderr
    plain = json.loads((run / "metrics.json").read_text())
    pilah("evaluate", run, "--set", "eval.flip_tta=true")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["flip_tta"] is True and plain.get("flip_tta", False) is False
    assert metrics["splits"]["test"]["loss"] != plain["splits"]["test"]["loss"]  # other probabilities
    assert not Config.load(run / "config.yaml").eval.flip_tta  # config.yaml keeps saying what trained it...
    assert Run.open(run).config.eval.flip_tta  # ...evaluation.yaml what evaluated it, for later evaluations
    pilah("evaluate", run)
    assert json.loads((run / "metrics.json").read_text()) == metrics | {"model": metrics["model"]}
    assert Predictor(run / "best.keras").engine.flip_tta
    pilah("package", run, "--out", tmp_path / "models", "--name", "tiny")
    card = json.loads((tmp_path / "models" / "tiny.json").read_text())
    assert card["flip_tta"] is True and "left-right mirror" in (tmp_path / "models" / "tiny.md").read_text()
    assert Predictor(tmp_path / "models" / "tiny.keras").engine.flip_tta


def test_training_split_scored_on_a_seeded_sample_and_the_card_says_so(trained_run: Path, tmp_path: Path):
    """`eval.train_sample` caps the training split's scoring (it only feeds the gap analysis)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    everything = json.loads((run / "metrics.json").read_text())["splits"]
    assert everything["train"]["images"] == 60

    def scored_train_paths() -> list[str]:
        pilah("evaluate", run, "--set", "eval.train_sample=20")
        rows = [line.split(",") for line in (run / "predictions.csv").read_text().splitlines()[1:]]
        return [row[0] for row in rows if row[1] == "train"]

    first = scored_train_paths()
    assert len(first) == 20 and set(first) <= {r.path for r in Run.open(run).split_rows("train")}
    assert scored_train_paths() == first  # the same sample each time
    splits = json.loads((run / "metrics.json").read_text())["splits"]
    assert splits["train"]["images"] == 20
    assert {k: v["images"] for k, v in splits.items() if k != "train"} == {"val": 18, "test": 18}
    pilah("package", run, "--out", tmp_path / "models", "--name", "tiny")
    assert "| train | 20 of 60 (a seeded sample) |" in (tmp_path / "models" / "tiny.md").read_text()
