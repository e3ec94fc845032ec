"""Score a run on train, validation and test: the seed's table plus per-class and calibration figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from pilah.data.split import SPLITS, ManifestRow
from pilah.evaluation import open_set, plots
from pilah.evaluation.metrics import (
    calibration_bins,
    choose_grades,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    generalization_gaps,
    per_class_scores,
    split_scores,
)
from pilah.files import read_json, write_csv, write_json
from pilah.inference.calibration import apply_temperature
from pilah.inference.predictor import flip_averaged
from pilah.modeling.anatomy import inference_model
from pilah.runs import Run
from pilah.training.fit import batches_for, read_history


def scored_rows(run: Run, split: str) -> list[ManifestRow]:
    """The images a split is scored on: all of them, or for training a seeded sample (`eval.train_sample`)."""
    rows = run.split_rows(split)
    sample = run.config.eval.train_sample
    if split != "train" or not sample or len(rows) <= sample:
        return rows
    keep = np.random.default_rng(run.config.data.seed).choice(len(rows), sample, replace=False)
    return [rows[i] for i in sorted(keep)]


def predict_split(model: keras.Model, run: Run, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Probabilities, labels and (when `model` has a second output) the pooled features of the open-set layer."""
    batches = batches_for(run, split, rows=scored_rows(run, split))
    two = len(model.outputs) > 1

    def run_batch(images: np.ndarray):
        outputs = model.predict_on_batch(images)
        return tuple(outputs) if two else (outputs, None)

    answers = [
        flip_averaged(run_batch, batches[i][0]) if run.config.eval.flip_tta else run_batch(batches[i][0])
        for i in range(len(batches))
    ]
    probs = np.concatenate([np.asarray(a[0], dtype=np.float64) for a in answers])
    features = np.concatenate([np.asarray(a[1], dtype=np.float32) for a in answers]) if two else None
    return probs, batches.labels, features


def evaluate(run: Run, model_path: Path | None = None) -> dict[str, Any]:
    """Predict every split once, compute the metrics, write `metrics.json`, predictions and figures."""
    cfg, paths = run.config, run.paths
    model_path = model_path or paths.best_model
    layer = cfg.eval.open_set_layer or None
    model = inference_model(keras.saving.load_model(model_path), embedding=layer)
    bins = cfg.eval.ece_bins
    answers = {split: predict_split(model, run, split) for split in SPLITS if run.split_rows(split)}
    outputs = {split: (probs, labels) for split, (probs, labels, _) in answers.items()}
    val_probs, val_labels = outputs["val"]
    temperature = fit_temperature(val_probs, val_labels)
    calibrated_val = apply_temperature(val_probs, temperature)
    uncertain_below, grades = choose_grades(calibrated_val, val_labels, cfg.eval)
    splits = {}
    for split, (probs, labels) in outputs.items():
        scores = split_scores(probs, labels, bins)
        scores["ece_calibrated"] = expected_calibration_error(apply_temperature(probs, temperature), labels, bins)
        splits[split] = scores
    test_probs, test_labels = outputs["test"]
    matrix = confusion_matrix(test_labels, test_probs.argmax(axis=1), len(run.classes))
    scores = per_class_scores(matrix)
    per_class = {
        label: {name: float(values[i]) for name, values in scores.items()} for i, label in enumerate(run.classes)
    }
    metrics: dict[str, Any] = {
        "model": str(model_path),
        "classes": run.classes,
        "splits": splits,
        "temperature": temperature,
        "uncertain_below": uncertain_below,
        "grades": grades,
        "flip_tta": cfg.eval.flip_tta,
        "test": {
            "macro_f1": float(scores["f1"].mean()),
            "per_class": per_class,
            "confusion_matrix": matrix.tolist(),
            "calibration_bins": calibration_bins(apply_temperature(test_probs, temperature), test_labels, bins),
        },
        "gaps": generalization_gaps(splits),
    }
    if layer:
        (_, train_labels, train_features), val_features = answers["train"], answers["val"][2]
        block, bank = open_set.fit(train_features, train_labels, val_features, layer, cfg.eval, cfg.data.seed)
        metrics["open_set"] = open_set.save_bank(bank, paths.root / open_set.RUN_BANK, block)
    if paths.state.is_file():
        state = read_json(paths.state)
        metrics["training"] = {"epochs": state["epochs_done"], "seconds": round(state["seconds"], 1)}
    write_json(paths.metrics, metrics)
    write_predictions(run, outputs, temperature, paths.root / "predictions.csv")
    history = read_history(paths.history) if paths.history.is_file() else []
    plots.evaluation_figures(metrics, history, cfg.eval, paths.plots)
    return metrics


def write_predictions(
    run: Run, outputs: dict[str, tuple[np.ndarray, np.ndarray]], temperature: float, path: Path
) -> None:
    """One row per image: where it was, what it is, what the model said (calibrated confidence)."""

    def rows():
        for split, (probs, _) in outputs.items():
            calibrated = apply_temperature(probs, temperature)
            for row, p in zip(scored_rows(run, split), calibrated, strict=True):
                yield row.path, split, row.label, run.classes[int(p.argmax())], f"{p.max():.6f}"

    write_csv(path, ("path", "split", "class", "predicted", "confidence"), rows())
