"""How well each way of choosing the grades keeps its promises on photos it did not choose on.

    python benchmarks/grade_rules.py RUN [--model OTHER.keras] [--halves 200] [--confidence 0.5 0.8 0.9 0.95]

Predicts the run's validation split once, as `pilah evaluate` does (kept in RUN/grade-probs-<model>.npz). Then,
many times over, splits those answers in two random halves: on one it fits the temperature and chooses the sure
threshold and the grades (`evaluation.metrics.choose_grades`, at each `eval.grade_confidence`), on the other it
checks them. Per grade it prints the share of photos, how often the grade's promise held (pooled over all halves)
against its aim, and in how many halves it held. Confidence 0.5 takes validation's rates at face value (the rule
before `grade_confidence`) and is the baseline. Uses validation only: the test split plays no part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from pilah.evaluation.evaluate import predict_split
from pilah.evaluation.metrics import choose_grades, fit_temperature
from pilah.hardware import describe
from pilah.inference.calibration import GRADES, apply_temperature, grade_answers
from pilah.runs import Run


def validation_answers(run: Run, model_path: Path) -> tuple[np.ndarray, np.ndarray]:
    kept = run.paths.root / f"grade-probs-{model_path.stem}.npz"
    if not kept.is_file():
        probs, labels = predict_split(keras.saving.load_model(model_path, safe_mode=True), run, "val")
        np.savez(kept, probs=probs, labels=labels)
    answers = np.load(kept)
    return answers["probs"], answers["labels"]


def check_half(probs: np.ndarray, labels: np.ndarray, choose: np.ndarray, check: np.ndarray, eval_cfg) -> dict:
    """Per grade on the checking half: photos, and how many kept the grade's promise."""
    temperature = fit_temperature(probs[choose], labels[choose])
    calibrated = apply_temperature(probs, temperature)
    sure_from, grades = choose_grades(calibrated[choose], labels[choose], eval_cfg)
    ranked = np.argsort(-calibrated[check], axis=1)
    top = np.take_along_axis(calibrated[check], ranked[:, :2], axis=1)
    grade = grade_answers(top[:, 0], top[:, 1], sure_from, grades["likely_margin"], grades["two_from"])
    truth = labels[check]
    kept_promise = {
        "sure": ranked[:, 0] == truth,
        "likely": ranked[:, 0] == truth,
        "two": (ranked[:, :2] == truth[:, None]).any(axis=1),
        "none": np.zeros(len(truth), dtype=bool),
    }
    return {g: (int((grade == g).sum()), int(kept_promise[g][grade == g].sum())) for g in GRADES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--model", type=Path, help="a .keras model instead of the run's best")
    parser.add_argument("--halves", type=int, default=200, help="random halvings of validation")
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.5, 0.8, 0.9, 0.95])
    args = parser.parse_args()
    run = Run.open(args.run)
    model_path = args.model or run.paths.best_model
    probs, labels = validation_answers(run, model_path)
    aims = {"sure": run.config.eval.confident_accuracy, "likely": run.config.eval.likely_accuracy}
    aims["two"] = run.config.eval.pair_coverage
    rng = np.random.default_rng(run.config.data.seed)
    halvings = [rng.permutation(len(labels)) for _ in range(args.halves)]
    print(f"machine: {describe()}")
    print(f"{model_path} on {args.run}'s validation: {len(labels):,} photos, {args.halves} random halvings\n")
    print("| confidence | grade | share of photos | promise kept (pooled) | aim | halves keeping it |")
    print("|---|---|---|---|---|---|")
    for confidence in args.confidence:
        eval_cfg = run.config.eval.model_copy(update={"grade_confidence": confidence})
        halves = [check_half(probs, labels, o[: len(o) // 2], o[len(o) // 2 :], eval_cfg) for o in halvings]
        checked = sum(h[g][0] for h in halves for g in GRADES)
        for grade in GRADES:
            photos = sum(h[grade][0] for h in halves)
            kept = sum(h[grade][1] for h in halves)
            aim = aims.get(grade)
            rate = f"{kept / photos * 100:.1f} %" if photos and aim else "—"  # "none" promises nothing
            held = [h[grade][1] >= aim * h[grade][0] for h in halves if h[grade][0]] if aim else []
            share_held = f"{np.mean(held) * 100:.0f} % of {len(held)}" if held else "—"
            aim_text = f"{aim * 100:.0f} %" if aim else "—"
            print(f"| {confidence} | {grade} | {photos / checked * 100:.1f} % | {rate} | {aim_text} | {share_held} |")


if __name__ == "__main__":
    main()
