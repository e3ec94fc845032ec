"""Photos Pilah was never taught: the open-set score, its fitting, and the fourth outcome in every runtime.

The non-waste photos are real and ship with matplotlib (installed with `pilah[train]`): its logo (a rendered
graphic, far from every training photo) and Grace Hopper's portrait (a person: less typical than most household
waste, so never "sure" or "likely").
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import EXAMPLES, INT8_MODEL, KERAS_MODEL, model_with_card, pilah
from pilah.config import EvalConfig
from pilah.errors import SelfCheckError
from pilah.evaluation.open_set import choose_bank, fit, refusal_threshold
from pilah.inference import selfcheck
from pilah.inference.export import card_path
from pilah.inference.open_set import bank_path, knn_novelty, unit_rows
from pilah.inference.predictor import Predictor

matplotlib = pytest.importorskip("matplotlib", reason="pip install 'pilah[train]'")
SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"
LOGO = SAMPLE_DATA / "logo2.png"
PORTRAIT = SAMPLE_DATA / "grace_hopper.jpg"


def test_knn_novelty_is_one_minus_the_cosine_to_the_kth_nearest():
    bank = unit_rows(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    features = np.array([[2.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(knn_novelty(features, bank, 1), [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(knn_novelty(features, bank, 2), [1 - np.sqrt(0.5), 1 + np.sqrt(0.5)], atol=1e-6)


def test_the_bank_is_balanced_seeded_and_the_threshold_keeps_its_promise_with_confidence():
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(500, 8)), np.repeat([0, 1, 2], [400, 80, 20])
    bank = choose_bank(features, labels, 50, seed=1)
    assert bank.dtype == np.float16 and len(bank) == 50 + 50 + 20  # a rare class gives what it has
    assert np.array_equal(bank, choose_bank(features, labels, 50, seed=1))
    novelty = np.linspace(0, 1, 1000)
    observed = refusal_threshold(novelty, 0.01, 0.5)  # face value: 1 % of these above it
    assert np.mean(novelty > observed) == pytest.approx(0.01, abs=0.001)
    confident = refusal_threshold(novelty, 0.01, 0.9)  # with confidence: fewer refused than the aim
    assert confident > observed and np.mean(novelty > confident) < 0.01
    assert refusal_threshold(novelty[:20], 0.01, 0.9) == novelty[19]  # too few photos to refuse any
    block, _ = fit(features, labels, features[:300], "avg_pool", EvalConfig(), seed=1)
    assert block["threshold"] > block["typical_up_to"]
    assert block["validation"]["refused"] < 0.01 and block["validation"]["atypical"] < 0.1


@pytest.fixture(scope="module", params=["int8 (all)", "int8 (basic)", "keras"])
def runtime(request) -> Predictor:
    predictor = Predictor(INT8_MODEL if request.param.startswith("int8") else KERAS_MODEL)
    if request.param == "int8 (basic)":
        from pilah.inference.runtimes import OnnxRunner

        predictor.engine.runner = OnnxRunner(INT8_MODEL, "basic", predictor.open_set.layer)
        predictor.check = selfcheck.check(predictor.engine, predictor.card.self_check)
    return predictor


def test_every_runtime_refuses_a_graphic_doubts_a_portrait_and_knows_the_examples(runtime: Predictor):
    assert runtime.check.passed and runtime.check.novelty_difference is not None
    logo, portrait = runtime.predict_batch([LOGO, PORTRAIT])
    assert logo.grade == "unfamiliar" and logo.uncertain and logo.novelty > runtime.open_set.threshold
    assert logo.label in runtime.classes  # the most probable class is kept, never presented as the answer
    assert portrait.grade == "two" and runtime.open_set.typical_up_to < portrait.novelty < runtime.open_set.threshold
    for result in runtime.predict_batch(sorted(EXAMPLES.glob("*.jpg"))):  # household waste like the training data
        assert result.novelty < runtime.open_set.typical_up_to and result.grade != "unfamiliar"


def test_a_runtime_that_scores_other_features_is_not_served(tmp_path: Path, caplog):
    """An export whose embedding output is a wrong layer (block 11 instead of the pooled head) gives the right
    probabilities and the wrong novelty: the self-check refuses it and the `.keras` model serves."""
    onnx = pytest.importorskip("onnx")
    from pilah.modeling.anatomy import EMBEDDING, add_onnx_embedding

    graph = onnx.load(str(INT8_MODEL))
    for node in [n for n in graph.graph.node if n.name.startswith(f"{EMBEDDING}/")]:
        graph.graph.node.remove(node)
    graph.graph.output.pop()
    add_onnx_embedding(graph, "add_9")
    folder = tmp_path / "models"
    wrong = model_with_card(folder, json.loads(card_path(INT8_MODEL).read_text()))
    wrong.unlink()
    onnx.save(graph, str(wrong))
    with caplog.at_level(logging.WARNING, logger="pilah"):
        predictor = Predictor(wrong)
    assert predictor.runtime.startswith("keras") and predictor.check.passed
    warning = "\n".join(r.getMessage() for r in caplog.records if r.name == "pilah")
    assert warning.count("gives 728 features a photo, the open-set bank has 2048") == 2


def test_novelty_that_moved_fails_the_self_check_in_every_runtime(tmp_path: Path):
    card = json.loads(card_path(INT8_MODEL).read_text())
    for photo in card["self_check"]["photos"][:1]:
        photo["novelty"] += 2 * selfcheck.NOVELTY_TOLERANCE
    with pytest.raises(SelfCheckError, match="novelty difference") as error:
        Predictor(model_with_card(tmp_path / "moved", card))
    assert str(error.value).count("FAILED") == 3  # int8 all, int8 basic, keras


def test_a_missing_or_changed_bank_is_an_error_not_a_silent_default(tmp_path: Path):
    card = json.loads(card_path(INT8_MODEL).read_text())
    model = model_with_card(tmp_path / "changed", card)
    (model.parent / bank_path(INT8_MODEL).name).unlink()
    np.save(model.parent / bank_path(INT8_MODEL).name, np.zeros((3, 2048), np.float16))
    with pytest.raises(Exception, match="is not the card's"):
        Predictor(model)
    (model.parent / bank_path(INT8_MODEL).name).unlink()
    with pytest.raises(Exception, match=r"bank .* is missing"):
        Predictor(model)


def test_a_card_without_an_open_set_block_grades_as_before(tmp_path: Path):
    card = json.loads(card_path(INT8_MODEL).read_text())
    del card["open_set"]
    for photo in card["self_check"]["photos"]:
        del photo["novelty"]
    predictor = Predictor(model_with_card(tmp_path / "old", card))
    logo = predictor.predict(LOGO)
    assert predictor.open_set is None and logo.novelty is None and logo.grade != "unfamiliar"


def test_cli_and_csv_say_not_household_waste_and_name_the_regions_safe_default(tmp_path: Path):
    out = pilah("predict", LOGO, EXAMPLES / "paper.jpg", "--region", "id", "--language", "id").stdout.splitlines()
    assert "(not household waste Pilah knows)" in out[0] and out[0].endswith("-> if unsure: Residu")
    assert out[1].endswith("-> Anorganik (daur ulang)")
    table = tmp_path / "out.csv"
    pilah("predict", LOGO, EXAMPLES / "paper.jpg", "--region", "us-sf", "--csv", table)
    logo, paper = csv.DictReader(table.open())
    assert logo["grade"] == "unfamiliar" and float(logo["novelty"]) > float(paper["novelty"])
    assert logo["stream"] == "Black bin (landfill)" and logo["where"].startswith("If unsure")
    assert paper["grade"] == "sure" and paper["stream"] == "Blue bin (recycling)"
