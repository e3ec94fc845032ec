"""The Streamlit app: photograph or upload a piece of waste, learn what it is and how to dispose of it.

Start it with `pilah app` (or `streamlit run streamlit_app.py`). This file is only the page: the
model is `Predictor`, the words are `guidance` (YAML data files), the history is `history`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from pilah.app import guidance, history
from pilah.errors import ImageError, ModelNotFoundError, SelfCheckError
from pilah.images import DEFAULT_MAX_UPLOAD_MB, open_image, to_array
from pilah.inference.predictor import MODEL_ENV, Prediction, Predictor
from pilah.inference.runtimes import keras_installed, source_model
from pilah.resources import examples_dir

if TYPE_CHECKING:
    from pilah.inference.gradcam import GradCam

MAX_UPLOAD_MB = DEFAULT_MAX_UPLOAD_MB  # per file; checked here, so the message is in the chosen language
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif"]
EXAMPLES = examples_dir()
# Streamlit's uploader states its own cap ("200MB per file") in English; the label states ours, translated.
HIDE_STREAMLIT_UPLOAD_CAP = '<style>[data-testid="stFileUploaderDropzoneInstructions"] {display: none}</style>'
STREAM_COLOURS = {"organik": "green", "anorganik": "blue", "b3": "red", "residu": "gray", "tekstil": "violet"}


@dataclass
class Outcome:
    """One classified input, kept in the session so results survive reruns (e.g. a language switch)."""

    source: str
    prediction: Prediction | None = None
    image: np.ndarray | None = None  # the 224x224 RGB input the model saw, for Grad-CAM
    error_code: str | None = None


@st.cache_resource(show_spinner=False)
def load_predictor(model_path: str | None) -> Predictor:
    """Loaded once per process and shared by every session."""
    return Predictor(model_path)


@st.cache_resource(show_spinner=False)
def load_gradcam(keras_path: Path, _predictor: Predictor) -> GradCam:
    """Built on the first request only. A `.keras` predictor lends its own model; an exported model has
    no gradients, so the `.keras` file it came from is loaded (seconds, and TensorFlow's memory, which most
    sessions never need)."""
    from pilah.inference.gradcam import GradCam

    model = _predictor.model
    if model is None:
        import keras

        model = keras.saving.load_model(keras_path, safe_mode=True)
    return GradCam(model)


def classify(predictor: Predictor, source: str, data: bytes) -> Outcome:
    """Decode and classify one upload; a bad file becomes an Outcome with an error code."""
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        return Outcome(source, error_code="too_large_upload")
    try:
        image = open_image(data, predictor.max_pixels)
        array = to_array(image, predictor.image_size)
    except ImageError as error:
        return Outcome(source, error_code=error.code)
    prediction = predictor.predict(array)
    prediction.source = source
    st.session_state.history.append(
        history.Entry(
            datetime.now(),
            source,
            prediction.label or "",
            prediction.confidence,
            prediction.uncertain,
            history.thumbnail(image),
        )
    )
    return Outcome(source, prediction, array)


def init_state() -> None:
    st.session_state.setdefault("history", [])
    st.session_state.setdefault("seen", set())  # uploads already classified (file ids)
    st.session_state.setdefault("latest", [])
    st.session_state.setdefault("language", guidance.DEFAULT_LANGUAGE)


def new_uploads(files) -> list:
    fresh = [f for f in files if f is not None and f.file_id not in st.session_state.seen]
    st.session_state.seen.update(f.file_id for f in fresh)
    return fresh


def render_inputs(t: dict, predictor: Predictor) -> None:
    upload_tab, camera_tab, example_tab = st.tabs([t["tab_upload"], t["tab_camera"], t["tab_example"]])
    with upload_tab:
        label = t["upload_label"].format(limit=MAX_UPLOAD_MB)
        files = st.file_uploader(label, type=UPLOAD_TYPES, accept_multiple_files=True, key="uploads")
    with camera_tab:
        photo = st.camera_input(t["camera_label"], key="camera")
    with example_tab:
        examples = sorted(EXAMPLES.glob("*.jpg")) if EXAMPLES.is_dir() else []
        chosen = st.selectbox(
            t["example_label"],
            examples,
            format_func=lambda p: t["classes"].get(p.stem, p.stem),
            key="example",
        )
        example_clicked = st.button(t["example_button"], key="classify_example", disabled=not examples)
    fresh = [(f.name, f.getvalue()) for f in new_uploads([*(files or []), photo])]
    if example_clicked and chosen is not None:
        fresh.append((chosen.name, chosen.read_bytes()))
    if fresh:
        st.session_state.latest = [classify(predictor, name, data) for name, data in fresh]


def render_outcome(index: int, outcome: Outcome, t: dict, language: str, predictor: Predictor) -> None:
    if outcome.prediction is None:
        message = guidance.error_message(outcome.error_code, language).format(limit=MAX_UPLOAD_MB)
        st.error(f"**{t['error_title'].format(name=outcome.source)}**  \n{message}")
        return
    p = outcome.prediction
    name = t["classes"].get(p.label, p.label)
    st.subheader(t["result_for"].format(name=outcome.source))
    picture, words = st.columns([1, 2])
    picture.image(outcome.image, width=224)  # the size the model saw
    with words:
        if p.uncertain:
            top3 = "\n".join(f"1. {t['classes'].get(k, k)} — {v:.0%}" for k, v in p.top_k[:3])
            body = t["uncertain_body"].format(
                confidence=f"{p.confidence:.0%}", threshold=f"{predictor.uncertain_below:.0%}"
            )
            st.warning(f"**{t['uncertain_title']}**  \n{body}\n\n{top3}\n\n{t['retake_tips']}")
        else:
            st.success(f"**{name}** — {t['confidence']} {p.confidence:.1%}")
    render_guidance(p, t, language)
    st.altair_chart(probability_chart(p, t), width="stretch")
    keras_path = source_model(predictor.model_path, predictor.metadata)
    if keras_path is None:
        return
    if not keras_installed():  # the default install runs the ONNX model only: say how to get the heatmap
        st.caption(t["gradcam_unavailable"])
        return
    if st.toggle(t["gradcam_toggle"], key=f"gradcam-{index}-{outcome.source}"):
        with st.spinner(t["gradcam_loading"]):
            overlay = load_gradcam(keras_path, predictor).overlay(outcome.image, predictor.classes.index(p.label))
        st.image(overlay, caption=t["gradcam_caption"], width=320)


def render_guidance(p: Prediction, t: dict, language: str) -> None:
    if p.label not in guidance.guided_classes():
        return
    advice = guidance.guidance(p.label, language)
    stream = t["streams"][advice.stream]
    body = [
        f":{STREAM_COLOURS[advice.stream]}-badge[{t['stream_label']}: {stream}]",
        advice.summary,
        f"**{t['prepare_label']}**",
        *[f"- {line}" for line in advice.prepare],
        f"**{t['where_label']}**",
        *[f"- {line}" for line in advice.where],
        f"**{t['dont_label']}**",
        *[f"- {line}" for line in advice.dont],
        f"*{t['local_rules']}*",
    ]
    if p.uncertain:  # a guess is never shown as a fact: the advice sits behind the word "possibly"
        with st.expander(f"{t['guess_prefix']}: {t['classes'].get(p.label, p.label)}"):
            st.markdown("\n\n".join(body))
    else:
        st.markdown("\n\n".join(body))


def probability_chart(p: Prediction, t: dict) -> alt.Chart:
    table = pd.DataFrame(
        {
            t["class"]: [t["classes"].get(k, k) for k in p.probabilities],
            t["probability"]: list(p.probabilities.values()),
        }
    )
    return (
        alt.Chart(table, title=t["chart_title"])
        .mark_bar()
        .encode(
            x=alt.X(f"{t['probability']}:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y(f"{t['class']}:N", sort="-x"),
            tooltip=[t["class"], alt.Tooltip(f"{t['probability']}:Q", format=".1%")],
        )
    )


def render_history(t: dict) -> None:
    entries: list[history.Entry] = st.session_state.history
    st.header(t["history_title"])
    if not entries:
        st.info(t["history_empty"])
        return
    stats = history.statistics(entries)
    st.subheader(t["stats_title"])
    total, average = st.columns(2)
    total.metric(t["stat_total"], stats.total)
    average.metric(t["stat_avg_confidence"], f"{stats.average_confidence:.1%}")
    names = [t["classes"].get(k, k) for k in stats.per_class]
    counts = pd.DataFrame({t["class"]: names, t["stat_per_class"]: list(stats.per_class.values())})
    st.bar_chart(counts, x=t["class"], y=t["stat_per_class"], horizontal=True)
    table = pd.DataFrame(
        {
            t["col_image"]: [e.thumbnail for e in reversed(entries)],
            t["col_time"]: [e.time_text for e in reversed(entries)],
            t["col_file"]: [e.source for e in reversed(entries)],
            t["class"]: [t["classes"].get(e.label, e.label) for e in reversed(entries)],
            t["confidence"]: [e.confidence for e in reversed(entries)],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            t["col_image"]: st.column_config.ImageColumn(),
            t["confidence"]: st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        },
    )
    download, clear = st.columns(2)
    download.download_button(
        t["download_csv"], history.to_csv(entries), file_name="pilah-history.csv", mime="text/csv", key="download"
    )
    if clear.button(t["clear_history"], key="clear"):
        st.session_state.history = []
        st.session_state.latest = []
        st.rerun()


def render_model_info(t: dict, predictor: Predictor) -> None:
    card = predictor.metadata
    with st.expander(t["model_title"]):
        metrics = card.get("metrics")
        if not metrics:
            st.write(t["model_no_card"])
            return
        test = metrics["splits"]["test"]
        first, second = st.columns(2)
        first.metric(t["model_test_accuracy"], f"{test['accuracy']:.2%}")
        second.metric(t["model_macro_f1"], f"{metrics['macro_f1']:.3f}")
        split = card.get("data", {}).get("split", {})
        st.write(t["model_images"].format(images=split.get("train", "?"), test=split.get("test", "?")))
        st.markdown(f"**{t['model_per_class_f1']}**")
        st.dataframe(
            pd.DataFrame(
                {
                    t["class"]: [t["classes"].get(k, k) for k in metrics["per_class"]],
                    "F1": [round(v["f1"], 3) for v in metrics["per_class"].values()],
                }
            ),
            hide_index=True,
        )
        st.markdown(f"**{t['model_data']}**: {card.get('data', {}).get('source', '?')}")
        export = card.get("export")
        running = predictor.model_path.name
        st.caption(t["model_export"].format(file=running, **export) if export else t["model_file"].format(file=running))
        check = predictor.check
        verdict = (
            t["model_check_none"]
            if check.passed is None
            else t["model_check_passed"].format(photos=check.photos, difference=f"{check.max_difference:.3f}")
        )
        st.caption(f"{t['model_runtime'].format(runtime=predictor.runtime)} {verdict}")


def main() -> None:
    st.set_page_config(page_title="Pilah", page_icon="♻️", layout="centered")
    st.html(HIDE_STREAMLIT_UPLOAD_CAP)
    init_state()
    language = st.radio(
        guidance.texts(guidance.DEFAULT_LANGUAGE)["language_label"],
        guidance.LANGUAGES,
        format_func=lambda code: guidance.texts(code)["language_name"],
        horizontal=True,
        key="language",
    )
    t = guidance.texts(language)
    st.title(t["title"])
    st.caption(t["tagline"])
    try:
        predictor = load_predictor(os.environ.get(MODEL_ENV))
    except (ModelNotFoundError, SelfCheckError) as error:  # no model, or none of its runtimes is right here
        st.error(t["model_unusable"].format(error=error))
        st.stop()
    render_inputs(t, predictor)
    for index, outcome in enumerate(st.session_state.latest):
        render_outcome(index, outcome, t, language, predictor)
    render_history(t)
    render_model_info(t, predictor)


if __name__ == "__main__":
    main()
