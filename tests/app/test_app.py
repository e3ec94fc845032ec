"""The Streamlit app, driven by Streamlit's own AppTest with the real bundled model and real photos."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bad_inputs import corpus
from conftest import EXAMPLES, INT8_MODEL, KERAS_MODEL, REPO
from pilah.app import guidance
from pilah.app.page import MAX_UPLOAD_MB
from pilah.inference.predictor import Predictor

MODEL = INT8_MODEL  # what `pilah app` runs by default
CARD = MODEL.with_name(MODEL.name + ".json")
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="the bundled model is missing")


def model_with_threshold(folder: Path, uncertain_below: float) -> Path:
    """The bundled model under another card: 0.0 makes every answer sure, 1.0 every answer uncertain."""
    folder.mkdir()
    card = json.loads(CARD.read_text())
    card["uncertain_below"] = uncertain_below
    (folder / MODEL.name).symlink_to(MODEL)
    (folder / KERAS_MODEL.name).symlink_to(KERAS_MODEL)
    (folder / CARD.name).write_text(json.dumps(card))
    return folder / MODEL.name


@pytest.fixture(scope="module")
def sure_model(tmp_path_factory) -> Path:
    return model_with_threshold(tmp_path_factory.mktemp("models") / "sure", 0.0)


@pytest.fixture(scope="module")
def unsure_model(tmp_path_factory) -> Path:
    return model_with_threshold(tmp_path_factory.mktemp("models") / "unsure", 1.0)


def start(monkeypatch, model: Path) -> AppTest:
    monkeypatch.setenv("PILAH_MODEL", str(model))
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, *names: str) -> AppTest:
    at.file_uploader(key="uploads").set_value([(n, (EXAMPLES / n).read_bytes(), "image/jpeg") for n in names])
    at.run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> str:
    """All the text on the page, to assert on what a person would read."""
    kinds = ("markdown", "success", "warning", "error", "info", "subheader", "title")
    parts = [e.value for kind in kinds for e in getattr(at, kind)]
    return "\n".join(map(str, parts))


def test_upload_shows_class_confidence_and_disposal_advice_in_bahasa_indonesia(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    assert at.radio(key="language").value == "id"
    upload(at, "battery.jpg")
    (result,) = at.success
    assert "Baterai" in result.value and "Keyakinan" in result.value
    page = shown(at)
    advice = guidance.guidance("battery", "id")
    assert "B3 (bahan berbahaya dan beracun)" in page
    assert advice.prepare[0] in page and advice.where[0] in page and advice.dont[0] in page
    assert len(at.get("vega_lite_chart")) >= 1  # the sorted confidence chart
    prediction = at.session_state["latest"][0].prediction
    assert prediction.label == "battery"
    assert len(prediction.probabilities) == 12


def test_several_uploads_fill_history_and_statistics_once_each(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    upload(at, "battery.jpg", "clothes.jpg", "shoes.jpg")
    assert len(at.success) == 3
    entries = at.session_state["history"]
    assert [e.source for e in entries] == ["battery.jpg", "clothes.jpg", "shoes.jpg"]
    at.run()  # a rerun (any click) must not classify the same uploads again
    assert len(at.session_state["history"]) == 3
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Total prediksi"] == "3"
    predictor = Predictor(sure_model)  # the same photos through a predictor of our own, not the app's history
    average = sum(predictor.predict(EXAMPLES / name).confidence for name in ("battery.jpg", "clothes.jpg", "shoes.jpg"))
    assert metrics["Rata-rata keyakinan"] == f"{average / 3:.1%}"
    table = at.dataframe[0].value
    assert list(table["Berkas"]) == ["shoes.jpg", "clothes.jpg", "battery.jpg"]  # newest first
    assert all(str(src).startswith("data:image/png;base64,") for src in table["Foto"])


def test_camera_photo_is_classified(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    at.camera_input(key="camera").set_value(("camera.jpg", (EXAMPLES / "clothes.jpg").read_bytes(), "image/jpeg"))
    at.run()
    assert not at.exception
    assert at.session_state["history"][-1].source == "camera.jpg"
    assert "Pakaian" in at.success[0].value


def test_example_photo_button(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    at.selectbox(key="example").set_value(EXAMPLES / "metal.jpg")
    at.button(key="classify_example").click()
    at.run()
    assert at.session_state["history"][-1].source == "metal.jpg"


def test_language_switch_translates_everything_and_keeps_history(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    upload(at, "battery.jpg")
    at.radio(key="language").set_value("en")
    at.run()
    assert "Battery" in at.success[0].value and "Confidence" in at.success[0].value
    page = shown(at)
    assert "Hazardous (B3)" in page and guidance.guidance("battery", "en").prepare[0] in page
    assert "Total predictions" in {m.label for m in at.metric}
    assert len(at.session_state["history"]) == 1


def test_uncertain_result_shows_top_three_and_retake_advice_not_a_fact(monkeypatch, unsure_model):
    at = start(monkeypatch, unsure_model)
    upload(at, "paper.jpg")
    assert not at.success  # no result is stated as fact
    (warning,) = at.warning
    t = guidance.texts("id")
    assert t["uncertain_title"] in warning.value and t["retake_tips"] in warning.value
    top3 = at.session_state["latest"][0].prediction.top_k[:3]
    for label, _ in top3:
        assert t["classes"][label] in warning.value
    assert any(e.label.startswith(t["guess_prefix"]) for e in at.expander)


def bad_files() -> list[tuple[str, bytes]]:
    jpeg = (EXAMPLES / "paper.jpg").read_bytes()
    return [
        ("empty.jpg", b""),
        ("notes.jpg", b"this is a text file, not a photo\n" * 20),
        ("truncated.jpg", jpeg[: len(jpeg) // 3]),
        ("iphone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64),
        ("huge.jpg", jpeg + b"\x00" * (MAX_UPLOAD_MB * 1024 * 1024)),  # a photo with 10 MB of trailing bytes
        *[(name, corpus()[name][0]) for name in ("bomb.png", "dot.png", "banner.png")],  # too many pixels, too
    ]  # small, stretched


@pytest.mark.parametrize("language", ["id", "en"])
def test_bad_files_get_a_friendly_message_and_history_is_kept(monkeypatch, sure_model, language):
    at = start(monkeypatch, sure_model)
    at.radio(key="language").set_value(language)
    upload(at, "battery.jpg")
    files = bad_files()
    at.file_uploader(key="uploads").set_value([(n, data, "image/jpeg") for n, data in files])
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == len(files)
    t = guidance.texts(language)
    codes = ["empty", "not_an_image", "corrupt", "unsupported", "too_large_upload", "too_large", "too_small"]
    codes.append("bad_aspect_ratio")
    for message, code in zip(errors, codes, strict=True):
        assert t["errors"][code].format(limit=MAX_UPLOAD_MB) in message
    assert [e.source for e in at.session_state["history"]] == ["battery.jpg"]  # nothing lost
    upload(at, "shoes.jpg")  # and the app goes on working
    assert [e.source for e in at.session_state["history"]] == ["battery.jpg", "shoes.jpg"]


def test_history_csv_and_clear(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    upload(at, "battery.jpg", "paper.jpg")
    assert at.get("download_button")[0].label == "Unduh riwayat (CSV)"  # its file: tests/app/test_app_browser.py
    at.button(key="clear").click()
    at.run()
    assert at.session_state["history"] == []
    assert guidance.texts("id")["history_empty"] in [i.value for i in at.info]


@pytest.mark.parametrize("keras_file", [False, True], ids=["int8-export", "keras"])
def test_gradcam_heatmap_on_request(monkeypatch, sure_model, keras_file):
    """From the export, Grad-CAM loads the `.keras` file it came from; a `.keras` app lends its own model."""
    at = start(monkeypatch, KERAS_MODEL if keras_file else sure_model)
    upload(at, "battery.jpg")
    images_before = len(at.get("image"))
    at.toggle[0].set_value(True)
    at.run()
    assert not at.exception
    assert len(at.get("image")) == images_before + 1


def test_model_info_shows_the_model_card(monkeypatch):
    at = start(monkeypatch, MODEL)
    card = json.loads(CARD.read_text())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Akurasi uji"] == f"{card['metrics']['splits']['test']['accuracy']:.2%}"
    assert "Kaggle" in shown(at)
    running = " ".join(c.value for c in at.caption)
    assert f"{MODEL.name}, ekspor onnx int8 dari {KERAS_MODEL.name}" in running
    assert "Dijalankan oleh onnxruntime" in running and "graph optimisation all" in running
    assert "Pemeriksaan mandiri di prosesor ini: lulus" in running and "pada 11 foto" in running


def test_a_model_whose_runtimes_all_answer_wrong_is_refused_with_a_message(monkeypatch, tmp_path: Path):
    pytest.importorskip("onnx")
    from onnx_models import wrong_on_every_processor

    broken = wrong_on_every_processor(MODEL, tmp_path / MODEL.name)
    monkeypatch.chdir(tmp_path)  # no models/pilah-xception.keras here to fall back on
    at = start(monkeypatch, broken)
    (message,) = [e.value for e in at.error]
    assert "tidak dapat dipakai di komputer ini" in message and "refusing to serve wrong answers" in message
    assert not at.file_uploader  # nothing to classify with


def test_texts_and_guidance_are_complete_in_both_languages():
    def keys(tree, prefix=""):
        return {prefix + k for k in tree} | {
            key for k, v in tree.items() if isinstance(v, dict) for key in keys(v, prefix + k + ".")
        }

    indonesian, english = guidance.texts("id"), guidance.texts("en")
    assert keys(indonesian) == keys(english)
    labels = json.loads(CARD.read_text())["classes"]
    assert sorted(guidance.guided_classes()) == sorted(labels) == sorted(indonesian["classes"])
    for label in labels:
        for language in guidance.LANGUAGES:
            advice = guidance.guidance(label, language)
            assert advice.stream in indonesian["streams"]
            assert advice.summary and advice.prepare and advice.where and advice.dont
        assert len(guidance.guidance(label, "id").prepare) == len(guidance.guidance(label, "en").prepare)
    assert guidance.guidance("battery", "id").stream == "b3"


def test_upload_limits_are_the_same_for_pilah_app_and_the_cloud():
    """Streamlit's cap is the same for `pilah app` and `streamlit run`, and far above the app's own limit,
    so that a too-big photo gets the app's translated message, not Streamlit's English one."""
    from pilah.cli import STREAMLIT_MAX_UPLOAD_MB

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == STREAMLIT_MAX_UPLOAD_MB > 2 * MAX_UPLOAD_MB


def test_the_shipped_threshold_decides_what_is_sure(monkeypatch):
    """With the bundled card (uncertain below 0.920), the trash example (68 %) is 'not sure', battery (99 %) sure."""
    card = json.loads(CARD.read_text())
    assert card["uncertain_below"] == pytest.approx(0.92, abs=0.005)
    at = start(monkeypatch, MODEL)
    upload(at, "trash.jpg", "battery.jpg")
    t = guidance.texts("id")
    (warning,) = [w.value for w in at.warning]
    assert t["uncertain_title"] in warning and "92%" in warning  # the threshold, as the card states it
    (success,) = [s.value for s in at.success]
    assert t["classes"]["battery"] in success
