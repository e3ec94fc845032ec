"""Package a finished run as a shippable model: the `.keras` file plus its model card (JSON and Markdown)."""

from __future__ import annotations

import hashlib
import os
import platform
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pilah import __version__
from pilah.config import Config
from pilah.data.split import SPLITS
from pilah.errors import RunError
from pilah.evaluation import open_set
from pilah.evaluation.evaluate import scored_rows
from pilah.files import read_json, write_bytes, write_json, write_text
from pilah.images import load_rgb
from pilah.inference import selfcheck
from pilah.inference.export import card_path
from pilah.inference.open_set import bank_path, copy_bank
from pilah.inference.predictor import Predictor
from pilah.modeling.anatomy import EMBEDDING, add_onnx_embedding
from pilah.resources import examples_dir
from pilah.runs import Run

DATA_CREDIT = (
    'Kaggle "Garbage Classification" (12 classes) by Mostafa Mohamed, '
    "https://www.kaggle.com/datasets/mostafaabla/garbage-classification (see that page for its licence)"
)
LIMITS = [
    "Trained on web photos of single objects, mostly on plain backgrounds; cluttered scenes, several "
    "objects in one photo, or close-ups of materials are outside what it has seen.",
    "Knows 12 classes only: anything else (e.g. electronics, medicine, hazardous liquids, the wrappers and "
    "sachets the data set never shows) gets the most probable of them; the open-set score grades photos unlike "
    "the training data 'unfamiliar' and less typical ones at most 'one of two', but residual waste that looks "
    "like a recyclable class can still be called that class (the guidance packs' look-alikes ask about it).",
    "The clothes class holds a third of the data; the rarer glass classes are confused most (see the "
    "confusion matrix).",
    "Disposal advice depends on local rules: the app's guidance is general.",
]


def config_command(config: Config, data: str = "DATA_DIR") -> str:
    """The `pilah train` command that reproduces this config: every value that differs from the defaults."""
    defaults, actual = _flatten(Config().to_dict()), _flatten(config.to_dict())
    weights = actual.pop("model.weights")
    for key in ("data.root", "data.extra_roots", "train.cache_dir"):
        defaults.pop(key, None)
        actual.pop(key, None)
    sets = [f"--set {key}={_literal(value)}" for key, value in actual.items() if defaults.get(key) != value]
    if Path(weights).is_file():
        weights = "PATH/TO/xception_imagenet_notop.weights.h5"
    more = [f"--data {Path(root).name.upper()}_DIR" for root in config.data.extra_roots]
    return " ".join(["pilah train", f"--data {data}", *more, f"--weights {weights}", *sets])


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def training_wall_clock(log: Path) -> float | None:
    """Seconds from the run's first log line to its last (scan, cache, training; resumes included)."""
    stamps = []
    for line in log.read_text().splitlines():
        try:
            stamps.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f"))
        except ValueError:
            continue
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


def architecture(config: Config) -> str:
    """One line describing the model that this config builds (not a fixed string: configs differ)."""
    model = config.model
    head = ", ".join(
        f"Dense {units} (L2 {model.l2:g}), BN, Dropout {rate:g}"
        for units, rate in zip(model.head_units, model.head_dropout, strict=True)
    )
    return (
        f"{model.backbone.capitalize()} base, last {-model.fine_tune_at} layers trainable; GAP, {head}, Dense softmax"
    )


def portable_config(config: Config) -> dict[str, Any]:
    """The run's settings without this machine's paths (data folders, feature cache): a card travels."""
    values = config.to_dict()
    values["data"] = values["data"] | {"root": None, "extra_roots": []}
    values["train"] = values["train"] | {"cache_dir": None}
    return values


def data_folders(run: Run) -> list[dict[str, Any]]:
    """Each data folder the run trained on (by name, not by path: a card travels) with its images per split."""
    if not run.paths.folders.is_file():  # runs from before several folders
        counts = {split: len(run.split_rows(split)) for split in SPLITS}
        return [{"folder": Path(run.data_roots[0]).name, **counts, "all": len(run.manifest)}]
    return [{**entry, "folder": Path(entry["folder"]).name} for entry in read_json(run.paths.folders)]


def build_card(run: Run, name: str) -> dict[str, Any]:
    paths = run.paths
    if not paths.metrics.is_file():
        raise RunError(f"{paths.root} has no metrics.json: run `pilah evaluate {paths.root}` first")
    metrics = read_json(paths.metrics)
    state = read_json(paths.state) if paths.state.is_file() else {}
    counts = {split: len(run.split_rows(split)) for split in SPLITS}
    cfg = run.config
    return {
        "name": name,
        "pilah_version": __version__,
        "architecture": architecture(cfg),
        "classes": run.classes,
        "input": {
            "size": [cfg.data.image_size, cfg.data.image_size, 3],
            "preprocessing": "RGB pixels 0-255 (EXIF orientation applied, alpha on white), bilinear resize to "
            f"{cfg.data.image_size}x{cfg.data.image_size} without keeping the aspect ratio; scaling to [-1, 1] "
            "is inside the model",
        },
        "temperature": metrics["temperature"],
        "uncertain_below": metrics["uncertain_below"],
        "grades": metrics["grades"],
        "flip_tta": metrics.get("flip_tta", False),
        "open_set": metrics.get("open_set"),
        "data": {
            "source": DATA_CREDIT,
            "images": len(run.manifest),
            "split": counts,
            "folders": data_folders(run),
            "split_seed": cfg.data.seed,
            "manifest_sha256": hashlib.sha256(paths.manifest.read_bytes()).hexdigest(),
            "duplicates": "exact (SHA-1) and near copies (pHash distance <= "
            f"{cfg.data.near_duplicate_distance} and colour difference <= "
            f"{cfg.data.near_duplicate_color_difference:g}) kept inside one split",
        },
        "training": {
            "command": config_command(cfg),
            "config": portable_config(cfg),
            "epochs": state.get("epochs_done"),
            "fit_seconds": round(state.get("seconds", 0.0), 1),
            "wall_clock_seconds": training_wall_clock(paths.log) if paths.log.is_file() else None,
            "feature_cache_reused": state.get("cache_views_reused", 0) > 0,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        },
        "metrics": {
            "splits": metrics["splits"],
            "macro_f1": metrics["test"]["macro_f1"],
            "per_class": metrics["test"]["per_class"],
            "gaps": metrics["gaps"],
        },
        "limits": LIMITS,
    }


def grade_aims(eval_config: dict[str, Any]) -> str:
    """What the grades promise, and how sure validation made that promise (cards from before said nothing)."""
    aims = (
        f"sure answers right {eval_config['confident_accuracy'] * 100:.0f} % of the time, likely ones "
        f"{eval_config['likely_accuracy'] * 100:.0f} %, "
        f"the top two holding the true class {eval_config['pair_coverage'] * 100:.0f} %"
    )
    confidence = eval_config.get("grade_confidence", 0.5)
    if confidence == 0.5:
        return f"Each threshold was chosen where validation's answers met its aim ({aims})."
    return f"Each threshold was chosen so that its aim ({aims}) holds with {confidence * 100:.0f} % confidence."


def card_markdown(card: dict[str, Any]) -> str:
    splits = card["metrics"]["splits"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        card["architecture"] + ".",
        "",
        f"- Classes ({len(card['classes'])}, in output order): {', '.join(card['classes'])}",
        f"- Input: {card['input']['preprocessing']}.",
        f"- Calibration: temperature {card['temperature']:.3f} (fitted on validation); results with calibrated "
        f"confidence below {card['uncertain_below']:.3f} are flagged uncertain"
        + (
            f" and graded: likely when the first class leads the second by {card['grades']['likely_margin']:.3f} "
            f"or more, else one of the top two when those two sum to {card['grades']['two_from']:.3f} or more, "
            "else none of the classes. " + grade_aims(card["training"]["config"]["eval"])
            if card.get("grades")
            else "."
        ),
        "- Prediction: "
        + (
            "the mean of the probabilities of the image and of its left-right mirror (flip test-time "
            "augmentation); every number below is measured that way."
            if card.get("flip_tta")
            else "one pass per image."
        ),
        f"- Data: {card['data']['source']}; {card['data']['images']:,} images, split "
        + ", ".join(f"{k} {v:,}" for k, v in card["data"]["split"].items())
        + f" (seed {card['data']['split_seed']}, manifest sha256 `{card['data']['manifest_sha256'][:16]}…`); "
        f"{card['data']['duplicates']}.",
        f"- Trained with: `{card['training']['command']}`",
        f"- Training: {card['training']['epochs']} epochs on {card['training']['machine']}; "
        + _minutes(card["training"]["wall_clock_seconds"])
        + " wall clock from the first to the last line of `train.log` (scan, "
        + ("feature cache reused from an earlier run" if card["training"].get("feature_cache_reused") else "cache")
        + ", training; evaluation not included).",
        "",
        "## Metrics",
        "",
        "| split | images | accuracy | loss | ECE | ECE (temperature-scaled) |",
        "|---|---|---|---|---|---|",
    ]
    for split, s in splits.items():
        whole = card["data"]["split"].get(split, s["images"])
        images = f"{s['images']:,}" + (f" of {whole:,} (a seeded sample)" if s["images"] < whole else "")
        lines.append(
            f"| {split} | {images} | {s['accuracy'] * 100:.2f} % | {s['loss']:.4f} | "
            f"{s['ece'] * 100:.2f} % | {s['ece_calibrated'] * 100:.2f} % |"
        )
    lines += ["", f"Test macro-F1: {card['metrics']['macro_f1']:.4f}", ""]
    lines += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, s in card["metrics"]["per_class"].items():
        lines.append(f"| {label} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {int(s['support'])} |")
    if card.get("open_set"):
        block = card["open_set"]
        lines += _section(
            "Photos it was never taught",
            f'A photo is graded *unfamiliar* ("not household waste Pilah knows") when its novelty is above '
            f"{block['threshold']:.4f}: one minus the cosine similarity of its features at layer `{block['layer']}` "
            f"(averaged over the image) to the k-th nearest (k = {block['k']}) of {block['bank_photos']:,} training "
            f"photos' ({block['reference']}). The threshold refuses at most {block['false_refusal_aim'] * 100:g} % "
            f"of household-waste photos with {block['confidence'] * 100:.0f} % confidence; on the "
            f"{block['validation']['photos']:,} validation photos it was chosen on, "
            f"{block['validation']['refused'] * 100:.2f} % were refused. Above {block['typical_up_to']:.4f} (at most "
            f"{block['atypical_aim'] * 100:g} % of validation photos; {block['validation']['atypical'] * 100:.2f} % "
            "there) a photo is less typical than most, and its answer is at most one of two, never sure or likely.",
        )
    if card.get("self_check"):
        check = card["self_check"]
        lines += _section(
            "Self-check",
            f"Every runtime that loads this model must give its answers on {len(check['photos'])} reference photos "
            f"(the bundled examples it is sure of): the same top class, each probability within "
            f"{check['tolerance']:g}. Reference: {check['reference']}.",
        )
    lines += ["", "## Known limits", "", *[f"- {limit}" for limit in card["limits"]], ""]
    return "\n".join(lines)


def _section(title: str, text: str) -> list[str]:
    """A second-level section of the Markdown card: its heading and one paragraph."""
    return ["", f"## {title}", "", text]


def _minutes(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds / 60:.0f} min"


def package(run: Run, out: Path, name: str) -> Path:
    """Write `out/<name>.keras` (no optimiser state), `<name>.json` and `<name>.md`."""
    import keras

    out.mkdir(parents=True, exist_ok=True)
    card = build_card(run, name)
    model = keras.saving.load_model(run.paths.best_model, compile=False)
    target = out / f"{name}.keras"
    model.save(target)
    if card["open_set"]:
        card["open_set"] = copy_bank(card["open_set"], run.paths.best_model, target)
    write_json(out / f"{name}.json", card)
    reference = selfcheck.reference(Predictor(target))  # the answers every runtime must give
    if reference["photos"]:  # a model sure of no example photo has nothing to check against
        card["self_check"] = reference
        write_json(out / f"{name}.json", card)
    write_text(out / f"{name}.md", card_markdown(card))
    return target


def card_of(model: Path) -> Path:
    """A packaged model's card (`<stem>.json`), or an export's (`<file>.json`)."""
    return card_path(model) if model.suffix != ".keras" else model.with_suffix(".json")


def outputs_of(predictor: Predictor, paths: list[Path], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's calibrated probabilities and pooled open-set features, as the predictor's runtime computes them
    (flip-averaged when its card says so)."""
    probs, features = [], []
    for start in range(0, len(paths), batch_size):
        batch = np.stack([load_rgb(path, predictor.image_size) for path in paths[start : start + batch_size]])
        p, f = predictor.outputs(batch)
        probs.append(p)
        features.append(f)
    return np.concatenate(probs), np.concatenate(features)


def add_to_models(run: Run, models: list[Path]) -> dict[str, Any]:
    """Fit the open-set score for models that were packaged without one (same weights, e.g. a `.keras` file and
    its exports): on the first model's features of the run's training sample and validation split. Each model
    gets the bank beside it, the block in its card, and each self-check reference photo its novelty, measured
    with the `.keras` model when one is given (the reference, as for the probabilities). Nothing else changes:
    neither the weights nor an export's quantization (an ONNX file gets its `embedding` output added)."""
    import onnx

    cfg = run.config.eval
    layer = cfg.open_set_layer
    for model in models:
        if model.suffix == ".onnx":
            graph = onnx.load(str(model))
            if EMBEDDING not in [output.name for output in graph.graph.output]:
                add_onnx_embedding(graph, layer)
                write_bytes(model, graph.SerializeToString())
    fitting = Predictor(models[0], self_check=False, embedding=layer)
    train_rows = scored_rows(run, "train")
    labels = np.array([run.classes.index(row.label) for row in train_rows])
    _, train = outputs_of(fitting, run.image_paths(train_rows), cfg.batch_size)
    _, val = outputs_of(fitting, run.image_paths(run.split_rows("val")), cfg.batch_size)
    block, bank = open_set.fit(train, labels, val, layer, cfg, run.config.data.seed)
    block["fitted_with"] = fitting.runtime
    reference = next((model for model in models if model.suffix == ".keras"), models[0])
    reference_check = None
    for model in [reference, *[m for m in models if m != reference]]:
        card_file = card_of(model)
        card = read_json(card_file) | {"open_set": open_set.save_bank(bank, bank_path(model), block)}
        write_json(card_file, card)
        if model == reference and card.get("self_check"):
            photos = card["self_check"]["photos"]
            scoring = Predictor(model, self_check=False)
            images = [load_rgb(examples_dir() / photo["name"], scoring.image_size) for photo in photos]
            _, novelty = scoring.answers(np.stack(images))
            for photo, value in zip(photos, novelty, strict=True):
                photo["novelty"] = round(float(value), 6)
            reference_check = card["self_check"]
        elif card.get("self_check") and reference_check:
            card["self_check"] = reference_check
        write_json(card_file, card)
        if model.suffix == ".keras":
            write_text(model.with_suffix(".md"), card_markdown(card))
    return block
