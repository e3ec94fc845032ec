"""Predictor and `pilah predict` on a really trained model and real files, bad ones included."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES, INT8_MODEL, KERAS_MODEL, SAMPLE, pilah
from pilah.errors import ModelNotFoundError
from pilah.images import load_rgb
from pilah.inference.calibration import GRADES
from pilah.inference.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> Predictor:
    return Predictor(trained_run / "best.keras")


def test_reads_classes_and_calibration_from_the_run(predictor: Predictor, trained_run: Path):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert predictor.classes == json.loads((trained_run / "labels.json").read_text())
    assert predictor.engine.temperature == pytest.approx(metrics["temperature"])
    assert predictor.uncertain_below == pytest.approx(metrics["uncertain_below"])


def test_every_kind_of_source_gives_the_same_answer(predictor: Predictor):
    path = sorted(SAMPLE.glob("paper/*.jpg"))[0]
    image = Image.open(path)
    sources = [path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), image, np.asarray(image)]
    results = [predictor.predict(s) for s in sources]
    first = results[0]
    assert first.error is None and first.label in predictor.classes
    assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert first.top_k[0][0] == first.label and len(first.top_k) == 3
    for other in results[1:]:
        assert other.label == first.label
        assert other.confidence == pytest.approx(first.confidence, abs=1e-5)


def test_flip_tta_averages_each_image_with_its_mirror():
    predictor = Predictor(KERAS_MODEL)  # trained: its mirror answers differ clearly
    predictor.engine.temperature, predictor.engine.flip_tta = 1.0, False  # compare raw averages
    batch = np.stack([load_rgb(p, predictor.image_size) for p in sorted(SAMPLE.glob("*/*.jpg"))[:4]]).astype(np.float32)
    mirrored = batch[:, :, ::-1]
    plain_probs, mirrored_probs = predictor.probabilities(batch), predictor.probabilities(mirrored)
    # The TTA call runs 8 images where these ran 4: float32 kernels block their sums by batch size, so one image's
    # probabilities differ in the last bits between the two (3.4e-9 seen on an AVX2 processor). A float32-sized
    # tolerance, a thousand times below the mirror's own effect, tells averaging from ignoring the mirror.
    tolerance = 1e-6
    assert np.abs(plain_probs - mirrored_probs).max() > 1000 * tolerance
    predictor.engine.flip_tta = True
    averaged = predictor.probabilities(batch)
    np.testing.assert_allclose(averaged, (plain_probs + mirrored_probs) / 2, rtol=0, atol=tolerance)
    np.testing.assert_allclose(predictor.probabilities(mirrored), averaged, rtol=0, atol=tolerance)  # its TTA is
    # mirror-symmetric


def test_a_bad_file_does_not_stop_the_batch(predictor: Predictor, tmp_path: Path):
    good = sorted(SAMPLE.glob("metal/*.jpg"))[:2]
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    sources = [good[0], tmp_path / "empty.jpg", good[1], tmp_path / "text.jpg", tmp_path / "missing.jpg"]
    results = predictor.predict_batch(sources)
    assert [r.error is None for r in results] == [True, False, True, False, False]
    assert [r.error_code for r in results] == [None, "empty", None, "not_an_image", "missing"]
    assert results[1].error == "the file is empty (0 bytes)"  # the message alone: the code is its own field
    assert results[4].error.startswith("no such file")
    alone = predictor.predict(good[1])
    assert results[2].label == alone.label and results[2].confidence == pytest.approx(alone.confidence, abs=1e-5)


def test_cli_csv_has_one_row_per_file_and_an_error_column(trained_run: Path, tmp_path: Path):
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    for path in sorted(SAMPLE.glob("*/*.jpg"))[:5]:
        (folder / "nested" / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "out.csv"
    pilah("predict", "--model", trained_run / "best.keras", folder, "--csv", out, "--batch-size", "4")
    rows = list(csv.reader(out.open()))
    classes = json.loads((trained_run / "labels.json").read_text())
    assert rows[0] == ["path", "label", "confidence", "uncertain", "grade", "novelty", "error", *classes]
    assert len(rows) == 7
    broken = next(r for r in rows[1:] if r[0].endswith("broken.jpg"))
    assert broken[1] == "" and broken[6].startswith("corrupt")
    for row in rows[1:]:
        if row[6]:
            continue
        assert 0 <= float(row[5]) <= 2  # the run's evaluation fitted an open-set score: every photo has a novelty
        probs = [float(x) for x in row[7:]]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert row[1] == classes[int(np.argmax(probs))]
        assert float(row[2]) == pytest.approx(max(probs), abs=1e-6)
        assert row[3] in ("True", "False") and row[4] in GRADES and (row[3] == "True") == (row[4] != "sure")


def test_cli_json_lines(trained_run: Path):
    result = pilah("predict", "--model", trained_run / "best.keras", sorted(SAMPLE.glob("shoes/*.jpg"))[0], "--json")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["label"] and record["error"] is None and len(record["probabilities"]) == 12


def test_missing_model_is_an_error(tmp_path: Path):
    with pytest.raises(ModelNotFoundError):
        Predictor(tmp_path / "nope.keras")
    result = pilah("predict", "--model", tmp_path / "nope.keras", SAMPLE, check=False)
    assert result.returncode == 2 and "model not found" in result.stderr  # a usage error, as the README says


def test_nothing_to_classify_is_said_and_has_its_own_exit_status(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("no photos here")
    nothing = pilah("predict", tmp_path / "empty", tmp_path / "notes", check=False)
    assert nothing.returncode == 3 and nothing.stdout == "" and "no images found in" in nothing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "bad" / "empty.png").write_bytes(b"")
    out = tmp_path / "rows.csv"
    failed = pilah("predict", tmp_path / "bad", "--csv", out, check=False)
    assert failed.returncode == 3 and "none of the 2 inputs could be classified" in failed.stderr
    assert len(list(csv.reader(out.open()))) == 3  # each bad file still has its error row
    some = pilah("predict", tmp_path / "bad", EXAMPLES / "paper.jpg", check=False)
    assert some.returncode == 0 and "ERROR" in some.stdout  # one good photo: the usual 0


def test_folders_are_searched_by_content_not_only_by_name(tmp_path: Path):
    from pilah.inference.predictor import expand_inputs

    photo = sorted(SAMPLE.glob("paper/*.jpg"))[0].read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "IMG_0001").write_bytes(photo)  # a photo saved without its extension
    (tmp_path / "a.jpg").write_bytes(photo)
    (tmp_path / "README.md").write_text("# not a photo")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.jpg", "IMG_0001"]


def test_cli_max_pixels_refuses_big_images_and_goes_on(trained_run: Path, tmp_path: Path):
    Image.new("RGB", (400, 400)).save(tmp_path / "big.png")
    small = sorted(SAMPLE.glob("paper/*.jpg"))[0]
    out = tmp_path / "out.csv"
    model = trained_run / "best.keras"
    pilah("predict", "--model", model, "--max-pixels", "100000", "--csv", out, tmp_path / "big.png", small)
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["error"].startswith("too_large") and rows[1]["error"] == "" and rows[1]["label"]


def test_grades_follow_the_model_cards_thresholds():
    predictor = Predictor(INT8_MODEL)
    predictor.uncertain_below, predictor.likely_margin, predictor.two_from = 0.9, 0.5, 0.6
    typical, unfamiliar = predictor.open_set.typical_up_to, predictor.open_set.threshold
    assert 0 < typical < unfamiliar < 1
    familiar = typical / 2
    answers = ((0.95, 0.03, familiar), (0.8, 0.1, familiar), (0.5, 0.3, familiar), (0.3, 0.2, familiar))
    assert [predictor.grade(*answer) for answer in answers] + [predictor.grade(0.99, 0.0, unfamiliar + 0.01)] == list(
        GRADES
    )
    # less typical than most validation photos: a sure or likely answer is at most one of two; the rest unchanged
    atypical = (typical + unfamiliar) / 2
    assert [predictor.grade(*answer[:2], atypical) for answer in answers] == ["two", "two", "two", "none"]
    assert predictor.grade(0.95, 0.03, None) == "sure"  # no novelty measured (a card without a bank)
    result = predictor.predict(EXAMPLES / "brown-glass.jpg")  # 49 % against 47 %: one of two
    assert (result.grade, result.uncertain) == ("two", True)
    assert result.to_dict()["grade"] == "two"
