"""The Streamlit app: photograph or upload a piece of waste, learn what it is and how to dispose of it where you live.

Start it with `pilah app` (or `streamlit run streamlit_app.py`). This file is only the page: the model is
`Predictor`, the words are `words` (a YAML data file), the advice comes from the region's guidance pack
(`pilah.guidance`), the history is `history`, and users' corrections go to a `CorrectionStore` when the app was
started with `--corrections DIR`. Phone first: the verdict comes right under the photo picker (which shows only
the newest upload), details fold below it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from pilah import guidance
from pilah.app import history, words
from pilah.app.settings import AppSettings
from pilah.app.words import percent
from pilah.data.corrections import NONE_CLASS, Correction, CorrectionStore
from pilah.errors import CorrectionError, ImageError, ModelNotFoundError, SelfCheckError
from pilah.images import DEFAULT_MAX_UPLOAD_MB, MEGABYTE, check_upload_size, open_image, to_array
from pilah.inference.predictor import Prediction, Predictor
from pilah.inference.runtimes import keras_installed, source_model
from pilah.resources import example_photos

if TYPE_CHECKING:
    from pilah.inference.gradcam import GradCam

MAX_UPLOAD_MB = DEFAULT_MAX_UPLOAD_MB  # per file; checked here, so the message is in the chosen language
NARROW = "(max-width: 640px)"  # a phone: the history becomes a list
REGION_WIDTH = 200  # px: the region picker fits beside the language switch on a 390 px phone
SHOWN_PROBABILITIES = 5  # the details list the most likely classes; the rest share what is left
TAP_TARGET = 44  # px: the smallest thing a finger taps (WCAG 2.5.5, Apple's and Google's guidelines)


def accessible_names(language: str) -> str:
    """A script that puts Streamlit's own English accessible names and messages (which it offers no setting for)
    in the page's language: "Remove photo.jpg" becomes "Hapus photo.jpg", the camera's permission message is
    Indonesian. It maps both ways, so a switch back to English undoes it. Our own text, no user input in it."""
    table = words.texts("id")["streamlit_names"]
    names = table if language == "id" else {own: english for english, own in table.items()}
    prefixes = {"Remove ": "Hapus "} if language == "id" else {"Hapus ": "Remove "}
    return f"""<script>
(() => {{
  window.pilahNames = {json.dumps(names, ensure_ascii=False)};
  window.pilahPrefixes = {json.dumps(prefixes, ensure_ascii=False)};
  const rename = (value) => {{
    if (Object.hasOwn(window.pilahNames, value)) return window.pilahNames[value];
    for (const [from, to] of Object.entries(window.pilahPrefixes)) {{
      if (value.startsWith(from)) return to + value.slice(from.length);
    }}
    return null;
  }};
  const apply = () => {{
    window.pilahPending = false;
    for (const element of document.querySelectorAll("[aria-label]")) {{
      const renamed = rename(element.getAttribute("aria-label"));
      if (renamed !== null) element.setAttribute("aria-label", renamed);
    }}
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
      const text = node.nodeValue.trim();
      if (text && Object.hasOwn(window.pilahNames, text)) node.nodeValue = window.pilahNames[text];
    }}
  }};
  window.pilahApply = () => {{
    if (!window.pilahPending) {{ window.pilahPending = true; requestAnimationFrame(apply); }}
  }};
  if (!window.pilahObserver) {{
    window.pilahObserver = new MutationObserver(() => window.pilahApply());
    window.pilahObserver.observe(document.body, {{subtree: true, childList: true, characterData: true,
                                                 attributes: true, attributeFilter: ["aria-label"]}});
  }}
  window.pilahApply();
}})();
</script>"""


def page_style(t: dict) -> str:
    """CSS: Streamlit's own English labels replaced by ours (or hidden), and the history's two layouts."""
    return f"""<style>
[data-testid="stFileUploaderDropzoneInstructions"] {{display: none}}
[data-testid="stFileUploaderDropzone"] [data-testid="stBaseButton-secondary"] [data-testid="stMarkdownContainer"] {{
  display: none}}
[data-testid="stFileUploaderDropzone"] [data-testid="stBaseButton-secondary"]::after {{
  content: "{t["upload_button"]}"}}
[data-testid="stStatusWidget"] {{display: none}}
[data-testid="stFileChips"] {{flex-wrap: nowrap}}  /* the newest upload's chip and "+" on one row */
/* Streamlit's English-only controls that Pilah does not need: the app menu, heading anchors, element toolbars */
[data-testid="stMainMenu"], [data-testid="stHeaderActionElements"], [data-testid="stElementToolbar"] {{display: none}}
/* everything a finger taps is at least {TAP_TARGET} px each way */
.stButton button, .stDownloadButton button, [data-variant="segmented_control"], [data-testid="stTab"],
[data-testid="stRadioOption"],
[data-testid="stFileUploaderDropzone"] button, [data-testid="stFileChips"] button, [data-baseweb="select"] > div,
[data-testid="stSelectbox"] button,
[data-testid="stCameraInputButton"], [data-testid="stCheckbox"] label, [data-testid="stToggle"] label,
[data-testid="stExpander"] summary {{min-height: {TAP_TARGET}px; min-width: {TAP_TARGET}px}}
[data-testid="stRadioOption"] {{align-items: center}}
[data-testid="stFileChips"] > div > div:not(:last-child) {{display: none}}  /* one chip: the newest upload */
@media {NARROW} {{
  .st-key-history-table {{display: none}}
  [data-testid="stHeader"] {{display: none}}  /* empty once the menu is hidden: its room goes to the verdict */
  [data-testid="stMainBlockContainer"] {{padding-top: 0.25rem}}
  h1 {{font-size: 1.45rem !important; padding-bottom: 0}}
  h4 {{font-size: 1.2rem !important}}  /* "brown glass or green glass?" on one line */
}}
@media not all and {NARROW} {{ .st-key-history-list {{display: none}} }}
</style>"""


@dataclass(frozen=True)
class Photo:
    """One new input from a picker, not yet classified."""

    source: str
    title: str  # what the page calls it: the file name, or "Camera photo 2"
    data: bytes
    file_id: str = ""  # Streamlit's id for an upload; "" for a camera shot (its camera's key changes) or an example
    from_camera: bool = False


@dataclass
class Outcome:
    """One classified input, kept in the session so results survive reruns (e.g. a language switch)."""

    source: str
    title: str  # what the page calls it: the file name, or "Camera photo 2"
    prediction: Prediction | None = None
    image: np.ndarray | None = None  # the 224x224 RGB input the model saw, for Grad-CAM
    error_code: str | None = None
    photo: bytes = b""  # as uploaded: what a correction keeps, with the user's consent
    id: str = ""  # names this result's widgets (feedback), stable across reruns
    feedback: str | None = None  # "kept" once a correction was stored, "noted" when this app keeps none
    lookalike: str | None = None  # the stream of the look-alike the user tapped ("Used tissue? -> Residual")
    thumbnail: str = ""  # the photo as the history shows it: a small PNG data URL


@st.cache_resource(show_spinner=False)
def load_predictor(model_path: str | None) -> Predictor:
    """Loaded once per process and shared by every session."""
    return Predictor(model_path)


def app_settings() -> AppSettings:
    """`pilah app`'s options, read from the environment once a session, not on every call of every rerun."""
    if "settings" not in st.session_state:
        st.session_state.settings = AppSettings()
    return st.session_state.settings


@st.cache_resource(show_spinner=False)
def load_store(folder: str, classes: tuple[str, ...]) -> CorrectionStore:
    return CorrectionStore(folder, list(classes))


def correction_store(predictor: Predictor) -> CorrectionStore | None:
    """Where corrections go: only when `pilah app --corrections DIR` said so."""
    folder = app_settings().corrections
    return load_store(folder, tuple(predictor.classes)) if folder else None


@st.cache_resource(show_spinner=False)
def load_gradcam(keras_path: Path, _predictor: Predictor) -> GradCam:
    """Built on the first request only. A `.keras` predictor lends its own model; an exported model has
    no gradients, so the `.keras` file it came from is loaded (seconds, and TensorFlow's memory, which most
    sessions never need)."""
    from pilah.inference.gradcam import GradCam

    return GradCam(_predictor.model) if _predictor.model is not None else GradCam.from_file(keras_path)


def classify(predictor: Predictor, photo: Photo) -> Outcome:
    """Decode and classify one input; a bad file becomes an Outcome with an error code."""
    try:
        check_upload_size(len(photo.data), MAX_UPLOAD_MB * MEGABYTE)
        image = open_image(photo.data, predictor.max_pixels)
        array = to_array(image, predictor.image_size)
    except ImageError as error:
        return Outcome(photo.source, photo.title, error_code=error.code)
    prediction = predictor.predict(array)
    prediction.source = photo.source
    thumbnail = history.thumbnail(image)
    return Outcome(
        photo.source, photo.title, prediction, array, photo=photo.data, id=uuid.uuid4().hex[:12], thumbnail=thumbnail
    )


def history_entry(outcome: Outcome) -> history.Entry | None:
    """What the history keeps of a verdict: a line and a thumbnail, no photo."""
    p = outcome.prediction
    if p is None:
        return None
    second = p.top_k[1] if len(p.top_k) > 1 else ("", 0.0)
    return history.Entry(
        datetime.now(),
        outcome.title,
        p.label or "",
        p.confidence,
        p.grade or "sure",
        second[0],
        outcome.thumbnail,
        id=outcome.id,
    )


def commit(fresh: list[Photo], outcomes: list[Outcome]) -> None:
    """The verdicts, the history and the pickers' memory change together, with no Streamlit call between them.

    Streamlit stops a run at its next call when the browser asks for another; a photo marked as seen (or a
    camera given a new, empty key) before its verdict was kept would then be lost."""
    st.session_state.latest = outcomes
    st.session_state.history.extend(e for e in map(history_entry, outcomes) if e is not None)
    st.session_state.seen.update(photo.file_id for photo in fresh if photo.file_id)
    if any(photo.from_camera for photo in fresh):
        st.session_state.camera_shots += 1  # also a new camera key: the next run shows an empty camera


def first_region() -> str:
    """`?region=` in the address, else `pilah app --region`, else the default; unknown names are ignored."""
    for region in (st.query_params.get("region"), app_settings().region):
        if region in guidance.regions():
            return region
    return guidance.DEFAULT_REGION


@st.cache_resource(show_spinner=False)
def saved_histories() -> history.SavedHistories:
    """One per process, shared by every session: each browser tab's history under its address's token."""
    return history.SavedHistories()


def keep_history() -> None:
    """The tab's history, saved under its token for a reload."""
    saved_histories().save(st.session_state.history_token, st.session_state.history)


def init_state() -> None:
    if "history_token" not in st.session_state:  # a new session: a first visit, or a reload of a tab
        token = st.query_params.get(history.HISTORY_PARAM)
        if not history.is_token(token):
            token = history.new_token()
            st.query_params[history.HISTORY_PARAM] = token
        st.session_state.history_token = token
        st.session_state.history = saved_histories().load(token) or []
    st.session_state.setdefault("latest", [])
    st.session_state.setdefault("language", words.DEFAULT_LANGUAGE)
    st.session_state.setdefault("region", first_region())
    st.session_state.setdefault("input_tab", 0)  # upload, camera, example: which tab is open
    st.session_state.setdefault("seen", set())  # uploads already classified (file ids)
    st.session_state.setdefault("camera_shots", 0)  # also part of the camera's key: a new key empties it


def render_header(t: dict, language: str) -> None:
    st.title(t["title"])
    with st.container(horizontal=True, vertical_alignment="center", gap="small", key="settings"):  # one row on a phone
        st.radio(
            t["language_label"],
            words.LANGUAGES,
            format_func=str.upper,  # "ID | EN", as Indonesian sites write it: leaves room for the region
            horizontal=True,
            key="language",
            label_visibility="collapsed",
            width="content",
        )
        st.selectbox(
            t["region_label"],
            guidance.regions(),
            format_func=lambda region: f"📍 {guidance.region_name(region, language)}",
            key="region",
            label_visibility="collapsed",
            width=REGION_WIDTH,
        )


def remember_tab(key: str, names: list[str]) -> None:
    """The tab a person opened, by position, so that it stays open in the other language. The key is the one this
    tab bar had when it was drawn: a language switch in the same rerun has already changed the session's."""
    chosen = st.session_state.get(key)
    if chosen in names:
        st.session_state.input_tab = names.index(chosen)


def render_inputs(t: dict) -> list[Photo]:
    """The pickers; returns the inputs no verdict was kept for yet."""
    names = [t["tab_upload"], t["tab_camera"], t["tab_example"]]
    key = f"input-tabs-{st.session_state.language}"  # a new tab bar per language, opened where the last one was
    upload_tab, camera_tab, example_tab = st.tabs(
        names, default=names[st.session_state.input_tab], key=key, on_change=remember_tab, args=(key, names)
    )
    with upload_tab:
        label = t["upload_label"].format(limit=MAX_UPLOAD_MB)
        files = st.file_uploader(label, accept_multiple_files=True, key="uploads")  # any type: the bytes decide
    shot = None
    if camera_tab.open:  # only then: a camera in a closed tab still asks for permission and turns the camera on
        with camera_tab:
            shot = st.camera_input(t["camera_label"], key=f"camera-{st.session_state.camera_shots}")
    with example_tab:
        examples = example_photos()
        chosen = st.selectbox(
            t["example_label"], examples, format_func=lambda p: t["classes"].get(p.stem, p.stem), key="example"
        )
        example_clicked = st.button(t["example_button"], key="classify_example", disabled=not examples)
    seen = st.session_state.seen  # a rerun classifies nothing twice
    fresh = [Photo(f.name, f.name, f.getvalue(), f.file_id) for f in files or [] if f.file_id not in seen]
    if shot is not None:  # a kept shot's camera has a new, empty key: it cannot come back
        title = t["camera_title"].format(n=st.session_state.camera_shots + 1)
        fresh.append(Photo(shot.name, title, shot.getvalue(), from_camera=True))
    if example_clicked and chosen is not None:
        fresh.append(Photo(chosen.name, chosen.name, chosen.read_bytes()))
    return fresh


def render_outcome(index: int, outcome: Outcome, t: dict, language: str, predictor: Predictor) -> None:
    if outcome.prediction is None:
        message = words.error_message(outcome.error_code, language).format(limit=MAX_UPLOAD_MB)
        st.error(f"**{t['error_title'].format(name=outcome.title)}**  \n{message}")
        return
    p = outcome.prediction
    region = st.session_state.region
    with st.container(border=True, key=f"verdict-{index}"):
        st.caption(t["result_for"].format(name=outcome.title))
        if outcome.lookalike:
            render_lookalike(outcome, t, language, region)
        else:
            render_verdict(p, t, language, region)
            render_lookalike_question(outcome, t, language, region)
    render_feedback(outcome, t, language, predictor)
    with st.expander(t["details"]):
        st.markdown(  # an <img> of our own: st.image gives no alternative text
            f'<img src="{history.data_url(outcome.image)}" alt="{t["model_saw"]}" width="160">',
            unsafe_allow_html=True,
        )
        st.caption(t["model_saw"])
        steps_for = guidance.class_of_stream(region, outcome.lookalike) if outcome.lookalike else p.label
        if p.grade in ("sure", "likely") and steps_for:
            render_steps(guidance.advice(steps_for, region, language), t, language)
        render_probabilities(p, t, language)
        render_gradcam(index, outcome, t, predictor)


def render_verdict(p: Prediction, t: dict, language: str, region: str) -> None:
    """The answer in a few lines: what it is, its waste stream where the user lives, and how sure Pilah is."""
    name = t["classes"][p.label]
    confidence = percent(p.confidence, language)
    if p.grade in ("sure", "likely"):
        icon = guidance.advice(p.label, region, language).icon
        headline = name if p.grade == "sure" else t["probably"].format(name=name)
        st.markdown(f"### {icon} {headline}")
        st.markdown(stream_line(p.label, language, region))
        if p.grade == "sure":
            st.success(t["grade_sure"].format(confidence=confidence))
        else:
            st.info(t["grade_likely"].format(confidence=confidence))
        return
    if p.grade == "two":
        (first, p1), (second, p2) = p.top_k[:2]  # compact: the card and "is this right?" fit a phone's first screen
        st.markdown(f"#### {t['between'].format(a=t['classes'][first], b=t['classes'][second])}")
        lines = [
            f"- **{t['classes'][label]}** ({percent(share, language)}) {stream_line(label, language, region)}"
            for label, share in ((first, p1), (second, p2))
        ]
        st.markdown("\n".join(lines))
        st.warning(t["grade_two"].format(tip=words.pair_tip(first, second, language)))
        return
    unfamiliar = p.grade == "unfamiliar"
    st.markdown(f"#### {t['unfamiliar_title'] if unfamiliar else t['none_title']}")
    unsure = guidance.when_unsure(region, language)
    st.markdown(f"**{t['unsure_label']}:** :{unsure.badge}-badge[{unsure.icon} {unsure.stream_name}] {unsure.line}")
    body = t["grade_unfamiliar"] if unfamiliar else t["grade_none"].format(confidence=confidence, name=name)
    st.warning(f"{body}  \n{t['retake_tips']}")


def stream_line(label: str, language: str, region: str) -> str:
    """The class's waste stream in the region as a coloured badge, and where it goes, in one line."""
    advice = guidance.advice(label, region, language)
    return f":{advice.badge}-badge[{advice.stream_name}] {advice.where[0]}"


def lookalike_items(items: str) -> str:
    """ "Tisu bekas, Kertas berminyak" as a question's list: "Tisu bekas, kertas berminyak"."""
    first, *rest = items.split(", ")
    return ", ".join([first, *(item[:1].lower() + item[1:] for item in rest)])


def render_lookalike_question(outcome: Outcome, t: dict, language: str, region: str) -> None:
    """The class's look-alikes that go elsewhere here, as one-tap questions on the card: "Used tissue, greasy
    paper, receipts? -> Residual". A tap switches the card to that stream and notes it in the history."""
    p = outcome.prediction
    if p.grade not in ("sure", "likely"):
        return
    for group in guidance.advice(p.label, region, language).exceptions:
        label = f"{lookalike_items(group.items)}? → {group.icon} {group.stream_name}"
        if st.button(label, key=f"lookalike-{outcome.id}-{group.stream}", width="stretch"):
            choose_lookalike(outcome, group)


def choose_lookalike(outcome: Outcome, group: guidance.LookalikeAdvice) -> None:
    outcome.lookalike = group.stream
    answer = f"{lookalike_items(group.items)} → {group.stream_name}"
    st.session_state.history = [
        replace(entry, lookalike=answer) if entry.id == outcome.id else entry for entry in st.session_state.history
    ]
    keep_history()
    st.rerun()


def render_lookalike(outcome: Outcome, t: dict, language: str, region: str) -> None:
    """The card after a tap on a look-alike: its stream, and a way back to the class."""
    p = outcome.prediction
    group = next(g for g in guidance.advice(p.label, region, language).exceptions if g.stream == outcome.lookalike)
    st.markdown(f"### {group.icon} {group.stream_name}")
    st.markdown(t["lookalike_chosen"].format(items=lookalike_items(group.items), stream=group.stream_name))
    label = guidance.class_of_stream(region, group.stream)
    if label is not None:
        st.markdown(stream_line(label, language, region))
    name = t["classes"][p.label]
    if st.button(t["lookalike_undo"].format(name=name), key=f"lookalike-undo-{outcome.id}"):
        outcome.lookalike = None
        st.session_state.history = [
            replace(entry, lookalike="") if entry.id == outcome.id else entry for entry in st.session_state.history
        ]
        keep_history()
        st.rerun()


def render_steps(advice: guidance.Advice, t: dict, language: str) -> None:
    body = [
        advice.summary,
        f"**{t['prepare_label']}**",
        *[f"- {line}" for line in advice.prepare],
        f"**{t['where_label']}**",
        *[f"- {line}" for line in advice.where],
    ]
    if advice.dont:
        body += [f"**{t['dont_label']}**", *[f"- {line}" for line in advice.dont]]
    if advice.bin_colour:
        body.append(f"**{t['bin_colour_label']}**: {t['bin_colours'][advice.bin_colour]}")
    if advice.language != language:  # a pack a city wrote may have its own language only
        body.append(t["advice_language"].format(language=words.texts(advice.language)["language_name"]))
    title = advice.source_title
    if advice.source_language and advice.source_language != language:  # say it, rather than mix languages silently
        title += f" ({t['source_written_in'].get(advice.source_language, advice.source_language)})"
    body.append(f"*{t['advice_source'].format(title=title, url=advice.source_url)}*")
    st.markdown("\n\n".join(body))


def render_feedback(outcome: Outcome, t: dict, language: str, predictor: Predictor) -> None:
    """ "Is this right?" under each result. With the user's consent, the photo and the answer are kept as training
    data (`pilah app --corrections DIR`); without that folder the question still shows and says nothing is kept."""
    store = correction_store(predictor)
    p = outcome.prediction
    with st.container(key=f"feedback-{outcome.id}"):
        if outcome.feedback:
            st.caption(t["feedback_kept"] if outcome.feedback == "kept" else t["feedback_not_kept"])
            return
        if outcome.lookalike and store is None:  # the tap is noted in the history; nothing else to keep
            return
        if outcome.lookalike:  # the tap was the answer: the class of that stream here, if one class has it
            chosen = guidance.class_of_stream(st.session_state.region, outcome.lookalike) or NONE_CLASS
        else:
            with st.container(horizontal=True, vertical_alignment="center"):
                st.caption(t["feedback_question"], width="content")
                right = st.segmented_control(
                    t["feedback_question"],
                    (True, False),
                    format_func=lambda yes: t["feedback_yes"] if yes else t["feedback_no"],
                    key=f"vote-{outcome.id}",
                    label_visibility="collapsed",
                )
            if right is None:
                return
            chosen = p.label if right else pick_class(outcome, t, predictor)
        if chosen is None:
            return
        if store is None:
            outcome.feedback = "noted"
            st.caption(t["feedback_not_kept"])
            return
        consent = st.checkbox(t["feedback_consent"], key=f"consent-{outcome.id}")
        if st.button(t["feedback_send"], key=f"send-{outcome.id}", disabled=not consent, type="primary"):
            keep_correction(store, outcome, chosen, t, language, predictor)


def pick_class(outcome: Outcome, t: dict, predictor: Predictor) -> str | None:
    return st.selectbox(
        t["feedback_pick"],
        [label for label in predictor.classes if label != outcome.prediction.label] + [NONE_CLASS],
        format_func=lambda label: t["feedback_none"] if label == NONE_CLASS else t["classes"].get(label, label),
        index=None,
        placeholder=t["feedback_pick_placeholder"],
        key=f"pick-{outcome.id}",
    )


def keep_correction(
    store: CorrectionStore, outcome: Outcome, chosen: str, t: dict, language: str, predictor: Predictor
) -> None:
    p = outcome.prediction
    correction = Correction(
        predicted=p.label,
        confidence=p.confidence,
        chosen=chosen,
        model_name=predictor.name,
        model_version=predictor.version,
        language=language,
        region=st.session_state.region,
    )
    try:
        store.add(outcome.photo, correction)
    except (CorrectionError, ImageError) as error:  # full, or a photo it cannot keep: say so, keep the page
        st.error(t["feedback_failed"].format(error=error))
        return
    outcome.feedback = "kept"
    st.rerun()  # the question gives way to the thanks


def render_gradcam(index: int, outcome: Outcome, t: dict, predictor: Predictor) -> None:
    keras_path = source_model(predictor.model_path, predictor.card)
    if keras_path is None:
        return
    if not keras_installed():  # the default install runs the ONNX model only: say how to get the heatmap
        st.caption(t["gradcam_unavailable"])
        return
    p = outcome.prediction
    if st.toggle(t["gradcam_toggle"], key=f"gradcam-{index}-{outcome.source}"):
        with st.spinner(t["gradcam_loading"]):
            overlay = load_gradcam(keras_path, predictor).overlay(outcome.image, predictor.classes.index(p.label))
        st.image(overlay, caption=t["gradcam_caption"], width=320)


def render_probabilities(p: Prediction, t: dict, language: str) -> None:
    """The most likely classes as bars whose text (what a screen reader reads too) is in the page's language:
    "Kaca cokelat · 92,3 %", never a chart library's "Probabilitas: 92.333062%"."""
    st.markdown(f"**{t['chart_title']}**")
    ranked = sorted(p.probabilities.items(), key=lambda item: -item[1])[:SHOWN_PROBABILITIES]
    for label, probability in ranked:
        st.progress(probability, text=f"{t['classes'].get(label, label)} · {percent(probability, language)}")


def render_history(t: dict, language: str) -> None:
    entries: list[history.Entry] = st.session_state.history
    st.header(t["history_title"])
    if not entries:
        st.info(t["history_empty"])
        return
    stats = history.statistics(entries)
    st.subheader(t["stats_title"])
    total, counted, unsure = st.columns(3)
    total.metric(t["stat_total"], stats.total)
    counted.metric(t["stat_avg_confidence"], percent(stats.average_confidence, language))
    unsure.metric(t["stat_unsure"], stats.unsure)
    if stats.per_class:
        names = [t["classes"].get(k, k) for k in stats.per_class]
        st.markdown(f"**{t['stat_per_class']}**")
        st.markdown(
            "\n".join(f"- {name}: {count}" for name, count in zip(names, stats.per_class.values(), strict=True))
        )
    newest_first = list(reversed(entries))
    with st.container(key="history-table"):
        table = pd.DataFrame(
            {
                t["col_image"]: [e.thumbnail for e in newest_first],
                t["col_time"]: [e.time_text for e in newest_first],
                t["col_file"]: [e.source for e in newest_first],
                t["class"]: [history.answer_text(e, t) for e in newest_first],
                t["confidence"]: [percent(e.confidence, language) for e in newest_first],
            }
        )
        st.dataframe(table, hide_index=True, column_config={t["col_image"]: st.column_config.ImageColumn()})
    with st.container(key="history-list"):
        st.markdown(
            "\n".join(
                f"- {e.time_text} · **{history.answer_text(e, t)}** · {percent(e.confidence, language)}"
                for e in newest_first
            )
        )
    download, clear = st.columns(2)
    download.download_button(
        t["download_csv"],
        history.to_csv(entries, t),
        file_name="pilah-riwayat.csv" if language == "id" else "pilah-history.csv",
        mime="text/csv",
        key="download",
    )
    if clear.button(t["clear_history"], key="clear"):
        st.session_state.history = []
        st.session_state.latest = []
        keep_history()
        st.rerun()


def render_model_info(t: dict, language: str, predictor: Predictor) -> None:
    card = predictor.card.as_dict()
    with st.expander(t["model_title"]):
        metrics = card.get("metrics")
        if not metrics:
            st.write(t["model_no_card"])
            return
        test = metrics["splits"]["test"]
        split = card.get("data", {}).get("split", {})
        st.write(
            t["model_right"].format(
                accuracy=percent(test["accuracy"], language),
                test=split.get("test", "?"),
                images=split.get("train", "?"),
            )
        )
        st.markdown(f"**{t['model_per_class']}**")
        st.dataframe(
            pd.DataFrame(
                {
                    t["class"]: [t["classes"].get(k, k) for k in metrics["per_class"]],
                    t["model_per_class_right"]: [percent(v["recall"], language) for v in metrics["per_class"].values()],
                }
            ),
            hide_index=True,
        )
        st.markdown(f"**{t['model_data']}**: {t['model_data_source']}")
        export = card.get("export")
        running = predictor.model_path.name
        st.caption(t["model_export"].format(file=running, **export) if export else t["model_file"].format(file=running))
        check = predictor.check
        verdict = (
            t["model_check_none"]
            if check.passed is None
            else t["model_check_passed"].format(
                photos=check.photos, difference=words.decimal(check.max_difference, language)
            )
        )
        runtime = predictor.runtime
        for english, own in t["runtime_words"].items():  # the runtime's own words, in the page's language
            runtime = runtime.replace(english, own)
        st.caption(f"{t['model_runtime'].format(runtime=runtime)} {verdict}")


def main() -> None:
    st.set_page_config(page_title="Pilah", page_icon="♻️", layout="centered")
    init_state()
    language = st.session_state.language
    t = words.texts(language)
    st.html(page_style(t))
    st.html(accessible_names(language), unsafe_allow_javascript=True)
    render_header(t, language)
    fresh = render_inputs(t)  # the pickers show before the model loads: the first paint is usable
    results = st.container()
    try:
        with st.spinner(t["model_loading"]):
            predictor = load_predictor(app_settings().model)
    except (ModelNotFoundError, SelfCheckError) as error:  # no model, or none of its runtimes is right here
        st.error(t["model_unusable"].format(error=error))
        st.stop()
    if fresh:
        with results, st.spinner(t["classifying"]):
            outcomes = [classify(predictor, photo) for photo in fresh]
        commit(fresh, outcomes)
        keep_history()  # before the rest is drawn: a reload as soon as the verdict shows must not lose it
        if any(photo.from_camera for photo in fresh):  # the shot would stay above its verdict: an empty camera
            st.rerun()
    with results:
        for index, outcome in enumerate(reversed(st.session_state.latest)):  # the newest first
            render_outcome(index, outcome, t, language, predictor)
    render_history(t, language)
    render_model_info(t, language, predictor)
    keep_history()


if __name__ == "__main__":
    main()
