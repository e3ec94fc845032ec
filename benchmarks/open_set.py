"""Photos Pilah was never taught: how the shipped model grades them, which open-set score separates them best, and
how well a class it never saw is refused (leave-one-class-out).

    python benchmarks/open_set.py runs/cpu-refit50 [--model M] [--nonwaste DIR] [--skip-methods] [--skip-loco]

The data set has no photos that are not waste, so the non-waste set is built from photos that ship inside packages
on the registries (`--collect DIR` downloads and unpacks them; nothing of them is committed):
- scikit-image 0.26 (PyPI, BSD-3-Clause): its bundled sample photos (astronaut, cat, coffee, horse, rocket,
  motorcycle, moon, ...; each image's source and licence in `skimage.data`'s docstrings), not its charts and
  synthetic test patterns;
- scikit-learn (PyPI): china.jpg and flower.jpg (CC BY 2.0, danielbuechele and vultilion on Flickr);
- matplotlib (installed with pilah[train]): grace_hopper.jpg (a U.S. Navy portrait, public domain);
- Debian 12's wallpaper packages: plasma-workspace-wallpapers (GPL-2+; one image per wallpaper: landscapes,
  water, plants, abstract art), gnome-backgrounds (CC BY-SA 3.0 / CC BY 2.0; the light variants) and
  ukui-wallpapers (CC BY-SA 3.0).
72 photos in all: landscapes, people, animals, vehicles, a building, art; few of them are everyday photos.

Tables:
1. The shipped card's grades on the test split and on the non-waste photos, and how often a "sure" answer for a
   recyclable class is wrong on each.
2. Open-set scores compared (features of the shipped model, thresholds on validation only, at most 1 % of
   validation refused): AUROC of non-waste against test photos, and the shares refused. The maximum softmax
   probability (Hendrycks & Gimpel 2017), Mahalanobis distance to the class means (Lee et al. 2018) and the k-th
   nearest-neighbour distance (Sun et al. 2022) at several layers.
3. Leave-one-class-out: for each class, the bank and thresholds without it; AUROC of its test photos against the
   other classes' and the share of them refused. Features of the shipped head were learned with every class (so
   the held-out class forms a cluster of its own there: an optimistic reading); those of `add_9`, the backbone's
   last layer that fine-tuning left at its ImageNet weights, were not (a fair reading of the method).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from pilah.config import EvalConfig
from pilah.evaluation.card import outputs_of
from pilah.evaluation.evaluate import scored_rows
from pilah.evaluation.open_set import choose_bank, refusal_threshold
from pilah.hardware import describe
from pilah.inference.calibration import GRADES, grade_answers
from pilah.inference.export import card_path
from pilah.inference.open_set import knn_novelty
from pilah.inference.predictor import Predictor, expand_inputs
from pilah.modeling.anatomy import EMBEDDING, add_onnx_embedding
from pilah.runs import Run

RECYCLABLE = ("brown-glass", "cardboard", "green-glass", "metal", "paper", "plastic", "white-glass")
LAYERS = ("avg_pool", "add_11", "add_9")  # the head's pooled features, block 13's output, block 11's (ImageNet-only)
SKIMAGE_SKIP = {"chessboard_GRAY", "chessboard_RGB", "phantom", "logo", "text", "page", "clock_motion"}
WALLPAPERS = ("plasma-workspace-wallpapers", "gnome-backgrounds", "ukui-wallpapers")


def collect(folder: Path) -> Path:
    """Download the packages named in the module's docstring and copy their photos into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work)]
        subprocess.run([*pip, "scikit-image==0.26.0", "scikit-learn"], check=True)
        subprocess.run(["apt-get", "download", *WALLPAPERS], cwd=work, check=True)
        for wheel in work.glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                for name in archive.namelist():
                    stem = Path(name).stem
                    if ("skimage/data/" in name and name.endswith((".png", ".jpg")) and stem not in SKIMAGE_SKIP) or (
                        "sklearn/datasets/images/" in name and name.endswith(".jpg")
                    ):
                        (folder / f"{name.split('/')[0]}-{Path(name).name}").write_bytes(archive.read(name))
        for deb in work.glob("*.deb"):
            unpacked = work / deb.stem
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            for photo in wallpaper_photos(unpacked):
                shutil.copyfile(
                    photo, folder / f"{deb.name.split('_')[0]}-{photo.parent.parent.parent.name}-{photo.name}"
                )
    import matplotlib

    shutil.copyfile(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", folder / "grace_hopper.jpg")
    return folder


def wallpaper_photos(root: Path) -> list[Path]:
    """One image per KDE wallpaper (the middle size), GNOME's light variants, every UKUI image."""
    photos = []
    for wallpaper in sorted(root.glob("usr/share/wallpapers/*")):
        images = sorted((wallpaper / "contents" / "images").glob("*"), key=lambda path: path.stat().st_size)
        photos += images[len(images) // 2 : len(images) // 2 + 1]
    photos += sorted(root.glob("usr/share/backgrounds/gnome/*-l.webp"))
    photos += [p for p in sorted(root.glob("usr/share/backgrounds/*")) if p.suffix in (".jpg", ".png")]
    return photos


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """The chance that a random outside photo scores higher (more novel) than a random inside one."""
    ranks = np.concatenate([inside, outside]).argsort().argsort() + 1
    n_in, n_out = len(inside), len(outside)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def shipped_grades(predictor: Predictor, run: Run, nonwaste: list[Path]) -> None:
    """Table 1, each set graded twice from one pass: by the card, and as before the open-set score (no novelty)."""
    rows = []
    for name, paths, labels in (
        ("test", run.image_paths(run.split_rows("test")), np.array(run.class_indices("test"))),
        ("non-waste", nonwaste, None),
    ):
        probs, features = outputs_of(predictor, paths, 32)
        novelty = predictor.open_set.novelty(features)
        top = np.sort(probs, axis=1)
        named = np.array(predictor.classes)[probs.argmax(1)]
        recyclable = np.isin(named, RECYCLABLE)
        if labels is not None:
            print(f"{name} accuracy (first class): {np.mean(probs.argmax(1) == labels) * 100:.2f} %")
        for rule, measured in (("without the score", None), ("the card", novelty)):
            thresholds = (predictor.uncertain_below, predictor.likely_margin, predictor.two_from)
            open_set = (predictor.open_set.threshold, predictor.open_set.typical_up_to) if measured is not None else ()
            grades = grade_answers(top[:, -1], top[:, -2], *thresholds, measured, *open_set)
            sure_recyclable = (grades == "sure") & recyclable
            if labels is None:
                wrong = f"{sure_recyclable.sum()} (all wrong)"
            else:
                wrong = f"{(sure_recyclable & (probs.argmax(1) != labels)).sum()} of {sure_recyclable.sum()}"
            shares = [percent(np.mean(grades == grade)) for grade in GRADES]
            sure_or_likely = percent(np.mean(np.isin(grades, ["sure", "likely"])))
            rows.append([name, rule, str(len(paths)), *shares, sure_or_likely, wrong])
    table(["photos", "grading", "n", *GRADES, "sure or likely", "recyclable 'sure' wrong"], rows)


def mahalanobis(train: np.ndarray, labels: np.ndarray, shrink: float = 1e-3):
    """Distance to the nearest class mean under the shared covariance (with a little shrinkage)."""
    means = np.stack([train[labels == c].mean(0) for c in np.unique(labels)])
    centred = train - means[np.searchsorted(np.unique(labels), labels)]
    covariance = centred.T @ centred / len(train)
    covariance += shrink * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    precision = np.linalg.inv(covariance)

    def score(features: np.ndarray) -> np.ndarray:
        return np.stack([np.einsum("ij,jk,ik->i", features - m, precision, features - m) for m in means], 1).min(1)

    return score


def at_layer(model: Path, layer: str, folder: Path) -> Path:
    """A copy of an ONNX model whose `embedding` output is another layer's (a `.keras` file is used as it is)."""
    if model.suffix != ".onnx":
        return model
    import onnx

    graph = onnx.load(str(model))
    old = [node for node in graph.graph.node if node.name.startswith(f"{EMBEDDING}/")]
    for node in old:
        graph.graph.node.remove(node)
    for output in [o for o in graph.graph.output if o.name == EMBEDDING]:
        graph.graph.output.remove(output)
    add_onnx_embedding(graph, layer)
    copy = folder / model.name
    onnx.save(graph, str(copy))
    shutil.copyfile(card_path(model), card_path(copy))
    return copy


def compare_methods(model: Path, run: Run, nonwaste: list[Path], cfg: EvalConfig) -> dict[str, tuple]:
    """Table 2; returns each layer's (train, val, test) features and labels for the leave-one-class-out table."""
    rows, kept = [], {}
    seed = run.config.data.seed
    for layer in LAYERS:
        with tempfile.TemporaryDirectory() as tmp:
            predictor = Predictor(at_layer(model, layer, Path(tmp)), self_check=False, embedding=layer)
            _, train_f = outputs_of(predictor, run.image_paths(scored_rows(run, "train")), cfg.batch_size)
            val_p, val_f = outputs_of(predictor, run.image_paths(run.split_rows("val")), cfg.batch_size)
            test_p, test_f = outputs_of(predictor, run.image_paths(run.split_rows("test")), cfg.batch_size)
            other_p, other = outputs_of(predictor, nonwaste, cfg.batch_size)
        train_y = np.array(run.indices_of(scored_rows(run, "train")))
        val_y, test_y = np.array(run.class_indices("val")), np.array(run.class_indices("test"))
        kept[layer] = (train_f, train_y, val_f, val_y, test_f, test_y)
        bank = choose_bank(train_f, train_y, cfg.open_set_bank_per_class, seed).astype(np.float32)
        scores = {
            f"k-NN (k {cfg.open_set_k}, {len(bank)} photos), {layer}": lambda f, b=bank: knn_novelty(
                f, b, cfg.open_set_k
            )
        }
        if layer == "avg_pool":
            scores = {
                "maximum softmax probability": None,
                f"Mahalanobis, {layer}": mahalanobis(train_f, train_y),
                **scores,
            }
        for name, score in scores.items():
            if score is None:
                val_s, test_s, other_s = (-p.max(1) for p in (val_p, test_p, other_p))
            else:
                val_s, test_s, other_s = score(val_f), score(test_f), score(other)
            threshold = refusal_threshold(val_s, cfg.open_set_false_refusals, cfg.grade_confidence)
            rows.append(
                [
                    name,
                    f"{auroc(test_s, other_s):.3f}",
                    percent(np.mean(test_s > threshold)),
                    percent(np.mean(other_s > threshold)),
                ]
            )
    table(["score", "AUROC, non-waste vs test", "test refused", "non-waste refused"], rows)
    return kept


def leave_one_class_out(kept: dict[str, tuple], classes: list[str], cfg: EvalConfig, seed: int) -> None:
    rows = []
    for held, label in enumerate(classes):
        row = [label]
        for layer in ("avg_pool", "add_9"):
            train_f, train_y, val_f, val_y, test_f, test_y = kept[layer]
            bank = choose_bank(train_f[train_y != held], train_y[train_y != held], cfg.open_set_bank_per_class, seed)
            novelty = {
                name: knn_novelty(f, bank.astype(np.float32), cfg.open_set_k)
                for name, f in (
                    ("val", val_f[val_y != held]),
                    ("in", test_f[test_y != held]),
                    ("out", test_f[test_y == held]),
                )
            }
            threshold = refusal_threshold(novelty["val"], cfg.open_set_false_refusals, cfg.grade_confidence)
            row += [f"{auroc(novelty['in'], novelty['out']):.3f}", percent(np.mean(novelty["out"] > threshold))]
        rows.append(row)
    means = np.array([[float(v.rstrip(" %")) for v in row[1:]] for row in rows]).mean(0)
    rows.append(["mean", f"{means[0]:.3f}", f"{means[1]:.1f} %", f"{means[2]:.3f}", f"{means[3]:.1f} %"])
    table(["held-out class", "AUROC (avg_pool)", "refused (avg_pool)", "AUROC (add_9)", "refused (add_9)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run the model was trained on (its split)")
    parser.add_argument("--model", type=Path, help="model file (default: the bundled int8 model)")
    parser.add_argument("--nonwaste", type=Path, default=Path("cache/nonwaste"), help="folder of non-waste photos")
    parser.add_argument("--collect", action="store_true", help="download and unpack the non-waste photos first")
    parser.add_argument("--skip-methods", action="store_true", help="table 1 only")
    args = parser.parse_args()
    if args.collect:
        collect(args.nonwaste)
    run = Run.open(args.run)
    nonwaste = expand_inputs([args.nonwaste])
    predictor = Predictor(args.model)
    cfg = run.config.eval
    print(f"machine: {describe()}")
    print(f"model {predictor.model_path.name}, runtime {predictor.runtime}; {len(nonwaste)} non-waste photos\n")
    shipped_grades(predictor, run, nonwaste)
    if args.skip_methods:
        return
    kept = compare_methods(predictor.model_path, run, nonwaste, cfg)
    leave_one_class_out(kept, run.classes, cfg, run.config.data.seed)


if __name__ == "__main__":
    main()
