"""The Streamlit app, driven by Streamlit's own AppTest with the real bundled model and real photos."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.testing.v1 import AppTest

from bad_inputs import corpus
from conftest import EXAMPLES, INT8_MODEL, KERAS_MODEL, REPO, model_with_grades, reference_photos
from pilah import guidance
from pilah.app import words
from pilah.app.history import HISTORY_PARAM, Entry, SavedHistories, is_token
from pilah.app.page import MAX_UPLOAD_MB
from pilah.inference.predictor import Predictor

MODEL = INT8_MODEL  # what `pilah app` runs by default
CARD = MODEL.with_name(MODEL.name + ".json")


@pytest.fixture(autouse=True)
def bundled_model_is_there():
    """The bundled model ships in the repository: its absence is a failure, never a reason to skip the app."""
    if not MODEL.is_file():
        pytest.fail(f"the bundled model is missing: {MODEL}")


@pytest.fixture(scope="module")
def sure_model(tmp_path_factory) -> Path:
    return model_with_grades(tmp_path_factory.mktemp("models") / "sure", 0.0)


def start(monkeypatch, model: Path) -> AppTest:
    monkeypatch.setenv("PILAH_MODEL", str(model))
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def uploader(at: AppTest):
    return at.file_uploader(key="uploads")


def upload(at: AppTest, *names: str) -> AppTest:
    uploader(at).set_value([(n, (EXAMPLES / n).read_bytes(), "image/jpeg") for n in names])
    at.run()
    assert not at.exception, at.exception
    return at


def open_camera(at: AppTest):
    """The camera tab, as a tap on it opens it: the camera exists only while its tab is open."""
    assert not at.get("camera_input")
    at.session_state[f"input-tabs-{at.session_state['language']}"] = words.texts(at.session_state["language"])[
        "tab_camera"
    ]
    at.run()
    return at.get("camera_input")[0]


def shown(at: AppTest) -> str:
    """All the text on the page, to assert on what a person would read."""
    kinds = ("markdown", "success", "warning", "error", "info", "subheader", "title", "caption")
    parts = [e.value for kind in kinds for e in getattr(at, kind)]
    return "\n".join(map(str, parts))


def test_the_verdict_comes_first_and_the_details_fold_below(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    assert at.radio(key="language").value == "id"
    upload(at, "battery.jpg")
    prediction = at.session_state["latest"][0].prediction
    assert prediction.label == "battery" and len(prediction.probabilities) == 12
    t, advice = words.texts("id"), guidance.advice("battery", "id", "id")
    headings = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert headings == ["### ⚠️ Baterai"]
    assert any(f":red-badge[{advice.stream_name}] {advice.where[0]}" == m.value for m in at.markdown)
    (sure,) = at.success
    expected = f"{prediction.confidence * 100:.1f}".replace(".", ",") + " %"  # Indonesian decimal comma
    assert sure.value == t["grade_sure"].format(confidence=expected)
    (details,) = [e for e in at.expander if e.label == t["details"]]
    inside = "\n".join(m.value for m in details.markdown)
    assert advice.prepare[0] in inside and advice.dont[0] in inside
    bars = [bar.proto.text for bar in details.get("progress")]  # the likeliest classes, folded away
    assert len(bars) == 5 and bars[0] == f"{t['classes']['battery']} · {expected}"
    assert f'alt="{t["model_saw"]}"' in inside  # the photo as the model saw it, with its alternative text


def test_several_uploads_newest_first_once_each_in_the_history(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    upload(at, "battery.jpg", "clothes.jpg", "shoes.jpg")
    assert [e.source for e in at.session_state["history"]] == ["battery.jpg", "clothes.jpg", "shoes.jpg"]
    captions = [c.value for c in at.caption if c.value.startswith("Hasil untuk")]
    assert captions == ["Hasil untuk shoes.jpg", "Hasil untuk clothes.jpg", "Hasil untuk battery.jpg"]  # newest first
    at.run()  # a rerun (any click) classifies nothing again
    assert len(at.session_state["history"]) == 3
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Total prediksi"] == "3" and metrics["Belum yakin"] == "0"
    predictor = Predictor(sure_model)  # the same photos through a predictor of our own, not the app's history
    average = sum(predictor.predict(EXAMPLES / name).confidence for name in ("battery.jpg", "clothes.jpg", "shoes.jpg"))
    assert metrics["Rata-rata keyakinan"] == f"{average / 3 * 100:.1f}".replace(".", ",") + " %"
    table = at.dataframe[0].value
    assert list(table["Berkas"]) == ["shoes.jpg", "clothes.jpg", "battery.jpg"]  # newest first
    assert list(table["Kelas"]) == ["Sepatu", "Pakaian", "Baterai"]
    assert all(str(src).startswith("data:image/png;base64,") for src in table["Foto"])


def test_a_camera_shot_gets_a_short_title(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    camera = open_camera(at)
    camera.set_value(("camera-image-0123456789abcdef.jpg", (EXAMPLES / "clothes.jpg").read_bytes(), "image/jpeg"))
    at.run()
    assert not at.exception
    assert at.session_state["history"][-1].source == "Foto kamera 1"
    assert [w.key for w in at.get("camera_input")] == ["camera-1"]  # a new, empty camera for the next shot
    assert "Hasil untuk Foto kamera 1" in shown(at)
    assert any("Pakaian" in m.value for m in at.markdown if m.value.startswith("### "))


def test_a_run_stopped_while_classifying_loses_no_photo(monkeypatch, sure_model):
    """A tap while a photo is being classified makes Streamlit stop the run (it raises RerunException at its next
    call) and start another with the browser's widgets: that run must classify the photos, not take them as seen."""
    at = start(monkeypatch, sure_model)
    predict, calls = Predictor.predict, []

    def stopped_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RerunException(RerunData())
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict", stopped_once)
    open_camera(at).set_value(("camera-image-0.jpg", (EXAMPLES / "clothes.jpg").read_bytes(), "image/jpeg"))
    uploader(at).set_value([("shoes.jpg", (EXAMPLES / "shoes.jpg").read_bytes(), "image/jpeg")])
    at.run()
    assert not at.exception, at.exception
    assert len(calls) == 3  # the stopped try, then both photos once
    assert [e.source for e in at.session_state["history"]] == ["shoes.jpg", "Foto kamera 1"]
    assert [w.key for w in at.get("camera_input")] == ["camera-1"]
    at.run()
    assert len(at.session_state["history"]) == 2 and len(calls) == 3  # and a later run classifies nothing again


def test_example_photo_button(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    at.selectbox(key="example").set_value(EXAMPLES / "metal.jpg")
    at.button(key="classify_example").click()
    at.run()
    assert at.session_state["history"][-1].source == "metal.jpg"
    assert at.session_state["latest"][0].prediction.label == "metal"  # the example was classified, and shown
    assert "### ♻️ Logam" in [m.value for m in at.markdown]


def test_language_switch_translates_everything_and_keeps_history(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    upload(at, "battery.jpg")
    at.radio(key="language").set_value("en")
    at.run()
    confidence = at.session_state["latest"][0].prediction.confidence
    assert at.success[0].value == f"Sure · confidence {confidence * 100:.1f}%"  # English decimal point
    page = shown(at)
    assert "### ⚠️ Battery" in page and "Hazardous (B3)" in page
    assert guidance.advice("battery", "id", "en").where[0] in page
    assert "Total predictions" in {m.label for m in at.metric}
    assert "Hasil" not in page and "Keyakinan" not in page  # no Indonesian left
    assert len(at.session_state["history"]) == 1


@pytest.mark.parametrize(
    ("grade", "thresholds"),
    [("likely", (1.0, 0.0, 0.0)), ("two", (1.0, 1.0, 0.0)), ("none", (1.0, 1.0, 2.0))],
)
def test_doubt_is_graded_shown_as_such_and_never_counted_as_a_class(monkeypatch, tmp_path, grade, thresholds):
    at = start(monkeypatch, model_with_grades(tmp_path / grade, *thresholds))
    upload(at, "brown-glass.jpg")
    prediction = at.session_state["latest"][0].prediction
    assert prediction.grade == grade and not at.success  # nothing is stated as a sure fact
    t = words.texts("id")
    (first, _), (second, _) = prediction.top_k[:2]
    headings = [m.value for m in at.markdown if m.value.startswith("#")]
    metrics = {m.label: m.value for m in at.metric}
    table = at.dataframe[0].value
    if grade == "likely":
        assert headings[0].endswith(t["probably"].format(name=t["classes"][first]))
        assert t["grade_likely"].split("{")[0] in at.info[0].value
        assert metrics["Belum yakin"] == "0"  # a likely answer counts as its class
        assert list(table["Kelas"]) == [t["probably"].format(name=t["classes"][first])]
    elif grade == "two":
        pair = t["between"].format(a=t["classes"][first], b=t["classes"][second])
        assert headings == [f"#### {pair}"]
        (warning,) = at.warning
        assert words.pair_tip(first, second, "id") in warning.value
        assert {first, second} == {"brown-glass", "green-glass"}  # and the tip is the one for these two glasses
        assert "kaca cokelat" in warning.value.lower()
        assert metrics["Belum yakin"] == "1" and list(table["Kelas"]) == [pair]
    else:
        assert headings == [f"#### {t['none_title']}"]
        assert t["retake_tips"] in at.warning[0].value
        assert metrics["Belum yakin"] == "1" and list(table["Kelas"]) == [t["none_title"]]


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
    uploader(at).set_value([(n, data, "image/jpeg") for n, data in files])
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == len(files)
    t = words.texts(language)
    codes = ["empty", "not_an_image", "corrupt", "unsupported", "too_large_upload", "too_large", "too_small"]
    codes.append("bad_aspect_ratio")
    for message, code in zip(errors, reversed(codes), strict=True):  # the newest first
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
    assert words.texts("id")["history_empty"] in [i.value for i in at.info]


@pytest.mark.parametrize("keras_file", [False, True], ids=["int8-export", "keras"])
def test_gradcam_heatmap_on_request(monkeypatch, sure_model, keras_file):
    """From the export, Grad-CAM loads the `.keras` file it came from; a `.keras` app lends its own model."""
    at = start(monkeypatch, KERAS_MODEL if keras_file else sure_model)
    upload(at, "battery.jpg")
    assert not at.get("image")  # the details show the model's photo as HTML with alt text, not as st.image
    at.toggle[0].set_value(True)
    at.run()
    assert not at.exception
    (heatmap,) = at.get("image")
    assert [image.caption for image in heatmap.proto.imgs] == [words.texts("id")["gradcam_caption"]]
    outcome = at.session_state["latest"][0]
    from pilah.inference.gradcam import GradCam

    cam = GradCam.from_file(KERAS_MODEL)
    battery = json.loads(CARD.read_text())["classes"].index("battery")
    heat = cam.heatmap(outcome.image, battery)
    assert heat.shape == (7, 7) and heat.max() == pytest.approx(1.0) and heat.min() < 0.5  # it points somewhere
    overlay = np.asarray(cam.overlay(outcome.image, battery), dtype=np.int16)
    assert overlay.shape == outcome.image.shape and np.abs(overlay - outcome.image).mean() > 5  # drawn on


def test_model_info_speaks_to_households_and_names_its_runtime(monkeypatch):
    at = start(monkeypatch, MODEL)
    card = json.loads(CARD.read_text())
    page = shown(at)
    accuracy = f"{card['metrics']['splits']['test']['accuracy'] * 100:.1f}".replace(".", ",") + " %"
    assert f"Benar pada {accuracy} dari 3038 foto uji" in " ".join(m.value for m in at.markdown)
    assert "F1" not in page and "Macro" not in page  # no statistics jargon for households
    assert "lisensinya lihat halaman itu" in page  # the data source, translated
    running = " ".join(c.value for c in at.caption)
    assert f"{MODEL.name}, ekspor onnx int8 dari {KERAS_MODEL.name}" in running
    assert "Dijalankan oleh onnxruntime" in running and "optimasi graf penuh" in running
    assert "graph optimisation" not in running  # no English left on the Indonesian page
    assert "Pemeriksaan mandiri di prosesor ini: lulus" in running and f"pada {reference_photos()} foto" in running


def test_a_model_whose_runtimes_all_answer_wrong_is_refused_with_a_message(monkeypatch, tmp_path: Path):
    pytest.importorskip("onnx")
    from onnx_models import wrong_on_every_processor

    broken = wrong_on_every_processor(MODEL, tmp_path / MODEL.name)
    monkeypatch.chdir(tmp_path)  # no models/pilah-xception.keras here to fall back on
    at = start(monkeypatch, broken)
    (message,) = [e.value for e in at.error]
    assert "tidak dapat dipakai di komputer ini" in message and "refusing to serve wrong answers" in message
    assert not at.header  # the page stops there: no results, no history


def test_texts_are_complete_in_both_languages_and_name_every_class():
    def keys(tree, prefix=""):
        return {prefix + k for k in tree} | {
            key for k, v in tree.items() if isinstance(v, dict) for key in keys(v, prefix + k + ".")
        }

    indonesian, english = words.texts("id"), words.texts("en")
    own = {"streamlit_names"}  # Streamlit's English words as the Indonesian page says them: Indonesian only
    assert keys({k: v for k, v in indonesian.items() if k not in own}) == keys(
        {k: v for k, v in english.items() if k not in own}
    )
    labels = json.loads(CARD.read_text())["classes"]
    assert sorted(labels) == sorted(indonesian["classes"]) == sorted(guidance.CLASSES)


def test_upload_limits_are_the_same_for_pilah_app_and_the_cloud():
    """Streamlit's cap is the same for `pilah app` and `streamlit run`, and far above the app's own limit,
    so that a too-big photo gets the app's translated message, not Streamlit's English one."""
    from pilah.cli import STREAMLIT_MAX_UPLOAD_MB

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == STREAMLIT_MAX_UPLOAD_MB > 2 * MAX_UPLOAD_MB


def test_the_shipped_thresholds_decide_what_is_sure(monkeypatch):
    """With the bundled card (sure from 0.949), battery (99.9 %) is sure and the trash example (90.8 %) is not."""
    card = json.loads(CARD.read_text())
    assert card["uncertain_below"] == pytest.approx(0.949, abs=0.005)
    at = start(monkeypatch, MODEL)
    upload(at, "trash.jpg", "battery.jpg")
    grades = {o.source: o.prediction.grade for o in at.session_state["latest"]}
    assert grades["battery.jpg"] == "sure" and grades["trash.jpg"] != "sure"
    (success,) = [s.value for s in at.success]
    assert success.startswith("Yakin")


def vote(at: AppTest, right: bool) -> str:
    """Answer "is this right?" for the newest result; returns that result's id."""
    outcome = at.session_state["latest"][-1]
    (answer,) = [w for w in at.get("button_group") if w.key == f"vote-{outcome.id}"]
    answer.set_value(right)
    at.run()
    assert not at.exception, at.exception
    return outcome.id


def test_a_correction_is_kept_only_with_consent_in_the_data_set_layout(monkeypatch, sure_model, tmp_path):
    monkeypatch.setenv("PILAH_CORRECTIONS", str(tmp_path / "corrections"))
    at = start(monkeypatch, sure_model)
    upload(at, "battery.jpg")
    t = words.texts("id")
    key = vote(at, right=False)
    picker = at.selectbox(key=f"pick-{key}")
    assert "battery" not in picker.options[:-1] and picker.options[-1] == t["feedback_none"]
    picker.set_value("metal")
    at.run()
    send = at.button(key=f"send-{key}")
    assert send.disabled  # no consent yet: nothing can be sent
    assert at.checkbox(key=f"consent-{key}").label == t["feedback_consent"]
    at.checkbox(key=f"consent-{key}").check()
    at.run()
    at.button(key=f"send-{key}").click()
    at.run()
    assert not at.exception, at.exception
    assert t["feedback_kept"] in [c.value for c in at.caption]
    (kept,) = (tmp_path / "corrections").glob("*/*.jpg")
    assert kept.parent.name == "metal"
    (record,) = [json.loads(line) for line in (tmp_path / "corrections" / "corrections.jsonl").read_text().splitlines()]
    assert record["predicted"] == "battery" and record["chosen"] == "metal" and record["channel"] == "app"
    assert record["language"] == "id" and record["region"] == "id" and record["model_name"] == "pilah-xception"
    assert len(at.session_state["history"]) == 1  # answering reclassifies nothing


def test_a_right_answer_and_none_of_these_are_corrections_too(monkeypatch, sure_model, tmp_path):
    monkeypatch.setenv("PILAH_CORRECTIONS", str(tmp_path))
    at = start(monkeypatch, sure_model)
    upload(at, "paper.jpg")
    key = vote(at, right=True)
    at.checkbox(key=f"consent-{key}").check()
    at.run()
    at.button(key=f"send-{key}").click()
    at.run()
    upload(at, "trash.jpg")
    key = vote(at, right=False)
    at.selectbox(key=f"pick-{key}").set_value("none")
    at.run()
    at.checkbox(key=f"consent-{key}").check()
    at.run()
    at.button(key=f"send-{key}").click()
    at.run()
    assert sorted(p.parent.name for p in tmp_path.glob("*/*.jpg")) == ["_none", "paper"]


@pytest.mark.parametrize("language", ["id", "en"])
def test_without_a_corrections_folder_the_question_says_nothing_is_kept(monkeypatch, sure_model, language):
    monkeypatch.delenv("PILAH_CORRECTIONS", raising=False)
    at = start(monkeypatch, sure_model)
    at.radio(key="language").set_value(language)
    upload(at, "metal.jpg")
    t = words.texts(language)
    assert t["feedback_question"] in [c.value for c in at.caption]
    key = vote(at, right=True)
    assert t["feedback_not_kept"] in [c.value for c in at.caption]
    assert not [c for c in at.checkbox if c.key == f"consent-{key}"]  # no consent asked: nothing to keep


def test_the_region_changes_the_advice_and_is_remembered(monkeypatch, sure_model):
    at = start(monkeypatch, sure_model)
    assert at.selectbox(key="region").value == "id" and at.selectbox(key="region").options[:3] == [
        f"📍 {guidance.region_name(r, 'id')}" for r in guidance.regions()
    ]
    upload(at, "green-glass.jpg")
    indonesia = guidance.advice("green-glass", "id", "id")
    assert any(m.value.endswith(indonesia.where[0]) for m in at.markdown)
    at.selectbox(key="region").set_value("de")
    at.run()
    germany = guidance.advice("green-glass", "de", "id")
    assert any(m.value == f":green-badge[{germany.stream_name}] {germany.where[0]}" for m in at.markdown)
    at.radio(key="language").set_value("en")
    at.run()
    assert at.selectbox(key="region").value == "de"  # kept across reruns and a language switch
    page, advice = shown(at), guidance.advice("green-glass", "de", "en")
    assert advice.where[0] in page and advice.source_url in page  # the rule's source, in the details


def test_the_address_can_choose_the_region(monkeypatch, sure_model):
    monkeypatch.setenv("PILAH_MODEL", str(sure_model))
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    at.query_params["region"] = "us-sf"
    at.run()
    assert at.selectbox(key="region").value == "us-sf"
    upload(at, "paper.jpg")  # and the advice follows it
    advice = guidance.advice("paper", "us-sf", "id")
    assert f":{advice.badge}-badge[{advice.stream_name}] {advice.where[0]}" in [m.value for m in at.markdown]


@pytest.mark.parametrize("language", ["id", "en"])
def test_a_photo_unlike_household_waste_gets_the_fourth_outcome_and_the_regions_safe_default(monkeypatch, language):
    matplotlib = pytest.importorskip("matplotlib")
    logo = Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png"
    at = start(monkeypatch, MODEL)  # the shipped card and thresholds
    at.radio(key="language").set_value(language)
    at.run()
    uploader(at).set_value([("logo.png", logo.read_bytes(), "image/png")])
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["latest"][0].prediction.grade == "unfamiliar"
    t, unsure = words.texts(language), guidance.when_unsure("id", language)
    assert [m.value for m in at.markdown if m.value.startswith("#")] == [f"#### {t['unfamiliar_title']}"]
    line = f"**{t['unsure_label']}:** :{unsure.badge}-badge[{unsure.icon} {unsure.stream_name}] {unsure.line}"
    assert line in [m.value for m in at.markdown]
    (warning,) = at.warning
    assert t["grade_unfamiliar"] in warning.value and t["retake_tips"] in warning.value
    assert not at.success and not [
        b for b in at.button if (b.key or "").startswith("lookalike-")
    ]  # no class: no question
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t["stat_unsure"]] == "1" and list(at.dataframe[0].value[t["class"]]) == [t["unfamiliar_title"]]
    (entry,) = at.session_state["history"]
    assert not entry.counted and entry.class_code == ""  # statistics never count it as a class, the CSV names none


def test_a_look_alike_is_one_tap_away_switches_the_card_and_the_history_and_can_become_a_correction(
    monkeypatch, sure_model, tmp_path
):
    monkeypatch.setenv("PILAH_CORRECTIONS", str(tmp_path / "corrections"))
    at = start(monkeypatch, sure_model)
    upload(at, "paper.jpg")
    t, outcome = words.texts("id"), at.session_state["latest"][0]
    question = at.button(key=f"lookalike-{outcome.id}-residu")
    assert question.label == "Tisu bekas, kertas berminyak atau basah, struk kertas termal? → 🗑️ Residu"
    question.click()
    at.run()
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown if m.value.startswith("#")] == ["### 🗑️ Residu"]
    trash = guidance.advice("trash", "id", "id")
    assert f":{trash.badge}-badge[{trash.stream_name}] {trash.where[0]}" in [m.value for m in at.markdown]
    (entry,) = at.session_state["history"]
    assert entry.lookalike.endswith("→ Residu") and not entry.counted and entry.class_code == ""
    assert {m.label: m.value for m in at.metric}[t["stat_unsure"]] == "1"
    at.checkbox(key=f"consent-{outcome.id}").check()  # the tap is the answer: consent, then it is kept
    at.run()
    at.button(key=f"send-{outcome.id}").click()
    at.run()
    (record,) = [json.loads(line) for line in (tmp_path / "corrections" / "corrections.jsonl").read_text().splitlines()]
    assert (record["predicted"], record["chosen"]) == ("paper", "trash")  # Indonesia's one residual class
    assert [p.parent.name for p in (tmp_path / "corrections").glob("*/*.jpg")] == ["trash"]
    at.button(key=f"lookalike-undo-{outcome.id}").click()  # "No, it is paper": back to the class
    at.run()
    assert [m.value for m in at.markdown if m.value.startswith("#")] == ["### ♻️ Kertas"]
    assert at.session_state["history"][0].counted


def test_the_history_comes_back_after_a_reload(monkeypatch, sure_model):
    """A reload starts a new session: the address's token (`?h=`) brings the history back from the server."""
    at = start(monkeypatch, sure_model)
    token = at.query_params[HISTORY_PARAM][0] if isinstance(at.query_params[HISTORY_PARAM], list) else None
    token = token or at.query_params[HISTORY_PARAM]
    assert is_token(token)
    for name in ("battery.jpg", "paper.jpg", "metal.jpg", "shoes.jpg", "clothes.jpg"):
        upload(at, name)
    reloaded = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    reloaded.query_params[HISTORY_PARAM] = token
    reloaded.run()
    assert [e.source for e in reloaded.session_state["history"]] == [
        "battery.jpg",
        "paper.jpg",
        "metal.jpg",
        "shoes.jpg",
        "clothes.jpg",
    ]
    assert words.texts("id")["history_empty"] not in [i.value for i in reloaded.info]
    stranger = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=180)
    stranger.run()  # another browser: a token of its own, an empty history
    assert stranger.session_state["history"] == [] and stranger.session_state["history_token"] != token


def test_saved_histories_are_bounded_and_forget_the_least_recent_browser_first():
    entry = Entry(datetime(2026, 12, 5), "a.jpg", "paper", 0.9, "sure", "cardboard", "x" * 1000)
    saved = SavedHistories(max_bytes=3 * 1200, max_entries=2)
    saved.save("a", [entry] * 3)
    assert len(saved.load("a")) == 2  # the newest two
    saved.save("b", [entry])
    saved.load("a")  # used: "b" is now the least recent
    saved.save("c", [entry])
    assert saved.load("b") is None and saved.load("a") is not None and saved.load("c") is not None
    assert saved.bytes <= saved.max_bytes
