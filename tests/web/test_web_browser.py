"""The offline browser app in Chromium on a phone (390x844): `pilah web serve` on loopback, the page loaded once,
the network turned off, a reload, and the example photos classified with the answers the Python int8 Predictor
gives; nothing loaded from another origin; bad files refused in the user's language with the history intact; a
self-check that disagrees stops every answer.

Screenshots go to $PILAH_SCREENSHOTS when set (else the test's temporary folder).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import PHONE as BROWSER_PHONE
from browser import WEB_APP_READY, launch, require_chromium, serve_site, stop
from conftest import EXAMPLES, reference_photos
from pilah import guidance
from pilah.app import words
from pilah.app.page import lookalike_items
from pilah.inference.predictor import Predictor

pytestmark = pytest.mark.slow  # starts a browser

playwright_api = pytest.importorskip("playwright.sync_api")
PHONE = BROWSER_PHONE | {"device_scale_factor": 2}  # sharp screenshots
LOAD_TIMEOUT_MS = 120_000
T = words.texts("id")
CARDS = """() => [...document.querySelectorAll('#results .card')].map(c => ({
  label: c.dataset.label, grade: c.dataset.grade, error: c.dataset.error, text: c.innerText,
  confidence: Number(c.dataset.confidence), second: Number(c.dataset.second), novelty: Number(c.dataset.novelty)}))"""
TAP_TARGETS = """() => [...document.querySelectorAll('button, select, summary, label.button, header a, a.button')]
  .filter((e) => e.offsetParent).map((e) => [e.textContent.trim().slice(0, 30), e.getBoundingClientRect().width,
  e.getBoundingClientRect().height])"""
HISTORY = "() => [...document.querySelectorAll('#history li')].map(li => li.dataset.label)"
CHECK = "() => window.pilah.check"
CHECK_KEY = "pilah.selfcheck.v1"


@pytest.fixture()
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PILAH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_ready(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(WEB_APP_READY, timeout=LOAD_TIMEOUT_MS)
    return page


def classify(page, *paths: Path) -> list[dict]:
    page.set_input_files("#pick", [str(p) for p in paths])
    page.wait_for_function(
        f"() => document.querySelectorAll('#results .card').length === {len(paths)}", timeout=LOAD_TIMEOUT_MS
    )
    return page.evaluate(CARDS)


def expected_stream(label: str, grade: str) -> list[str]:
    """The stream names the card must show: the class's (both classes' for one of two), else the safe default."""
    if grade in ("sure", "likely"):
        return [guidance.advice(label, "id", "id").stream_name]
    if grade == "two":
        return []  # checked per class below: the card names both
    return [guidance.when_unsure("id", "id").stream_name]


def test_offline_after_one_visit_the_examples_get_pythons_answers_and_the_history_stays(web_url, screenshots):
    require_chromium()
    photos = sorted(EXAMPLES.glob("*.jpg"))
    predictor = Predictor()
    python = {Path(p.source).name: p for p in predictor.predict_batch(photos)}
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(**PHONE)
        page = open_ready(context, web_url)
        assert page.evaluate("() => window.pilah.ready && window.pilah.offline"), page.inner_text("#status")
        assert page.inner_text("#status") == T["web"]["ready_offline"]
        installable = context.new_cdp_session(page).send("Page.getInstallabilityErrors")["installabilityErrors"]
        # a manifest, its icons, a worker: nothing keeps it from the home screen but the test's private window
        assert [e["errorId"] for e in installable if e["errorId"] != "in-incognito"] == []
        first = classify(page, EXAMPLES / "paper.jpg")
        assert first[0]["label"] == "paper"
        page.click("#results .lookalike")  # "Tisu bekas, …? → Residu": the card and the history switch
        residual = guidance.advice("paper", "id", "id").exceptions[0]
        chosen = T["lookalike_chosen"].format(items=lookalike_items(residual.items), stream=residual.stream_name)
        assert chosen in page.inner_text("#results .card")  # the words of the Streamlit app's card
        assert f"→ {residual.stream_name}" in page.inner_text("#history-body")

        context.set_offline(True)
        page.reload()
        page.wait_for_function(WEB_APP_READY, timeout=LOAD_TIMEOUT_MS)
        assert page.evaluate("() => window.pilah.ready"), page.inner_text("#status")
        assert page.evaluate(CHECK)["remembered"]  # the first visit's check: the same site, browser and threads
        assert page.evaluate(HISTORY) == ["paper"], "the history did not survive the reload"
        assert f"→ {residual.stream_name}" in page.inner_text("#history-body")  # with the look-alike answer
        with pytest.raises(playwright_api.Error):  # the network is off indeed
            page.evaluate("() => fetch('/never-cached.txt')")

        cards = classify(page, *photos)
        page.screenshot(path=screenshots / "web_phone_offline.png")
        for photo, card in zip(photos, cards, strict=True):
            want = python[photo.name]
            assert card["label"] == want.label, photo.name
            assert abs(card["confidence"] - want.confidence) <= 0.25, photo.name  # the self-check's tolerance
            novelty = None if np.isnan(card["novelty"]) else card["novelty"]
            # the page's grade is Python's rule applied to the page's own numbers
            assert card["grade"] == predictor.grade(card["confidence"], card["second"], novelty), photo.name
            for stream in expected_stream(card["label"], card["grade"]):
                assert stream in card["text"], photo.name
        assert page.evaluate(HISTORY)[-1] == "paper" and len(page.evaluate(HISTORY)) == 1 + len(photos)
        assert page.inner_text("#status") == T["web"]["ready_offline"]
        with page.expect_download() as download:
            page.click("#history a.button")
        rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
        assert rows[0] == [T["csv"][k] for k in ("time", "file", "answer", "grade", "class_code", "confidence")]
        assert len(rows) == 2 + len(photos) and rows[1][1] == "paper.jpg" and "→" in rows[1][2]
        browser.close()


def test_the_page_loads_nothing_from_another_origin_and_speaks_english_when_asked(web_url):
    require_chromium()
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(**PHONE)
        requested: list[str] = []
        context.on("request", lambda request: requested.append(request.url))  # the service worker's too
        page = open_ready(context, f"{web_url}/?lang=en")
        assert page.evaluate("() => window.pilah.ready"), page.inner_text("#status")
        english = words.texts("en")
        assert page.title() == english["title"] and page.inner_text("#pick-text") == english["upload_button"]
        card = classify(page, EXAMPLES / "battery.jpg")[0]
        assert english["classes"]["battery"] in card["text"]
        assert guidance.advice("battery", "id", "en").stream_name in card["text"]
        camera = page.locator("#camera")
        assert camera.get_attribute("capture") == "environment" and camera.get_attribute("accept") == "image/*"
        page.set_input_files("#camera", str(EXAMPLES / "battery.jpg"))  # a phone's camera hands over a file too
        page.wait_for_function("() => document.querySelector('#results .card')?.dataset.label === 'battery'")
        page.select_option("#region", "de")
        card = classify(page, EXAMPLES / "battery.jpg")[0]
        assert guidance.advice("battery", "de", "en").stream_name in card["text"]  # Germany's rule, in English
        page.click("#results summary")  # the details open: their controls count too
        targets = page.evaluate(TAP_TARGETS)
        assert len(targets) >= 8 and all(w >= 44 and h >= 44 for _, w, h in targets), targets
        browser.close()
    assert len(requested) > 10
    foreign = [url for url in requested if not url.startswith((web_url, "data:", "blob:"))]
    assert not foreign, foreign


def bad_files(folder: Path) -> dict[str, Path]:
    """One file per refusal the page must word: code -> file."""
    photo = np.asarray(Image.open(EXAMPLES / "paper.jpg").convert("RGB"))
    files = {
        "not_an_image": folder / "notes.jpg",
        "empty": folder / "empty.jpg",
        "unsupported": folder / "iphone.heic",
        "corrupt": folder / "cut.jpg",
        "too_large": folder / "huge.png",
        "too_small": folder / "tiny.png",
        "bad_aspect_ratio": folder / "strip.png",
    }
    files["not_an_image"].write_text("a shopping list, not a photo")
    files["empty"].write_bytes(b"")
    files["unsupported"].write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(4000))
    files["corrupt"].write_bytes((EXAMPLES / "paper.jpg").read_bytes()[:600])
    Image.new("1", (8000, 7000), 1).save(files["too_large"])  # 56 MP, over the 50 MP limit; 1 bit a pixel: quick
    Image.fromarray(photo).resize((12, 12)).save(files["too_small"])
    Image.fromarray(photo).resize((400, 20)).save(files["bad_aspect_ratio"])
    return files


def test_bad_files_get_the_users_words_and_the_history_is_kept_until_cleared(web_url, tmp_path, screenshots):
    require_chromium()
    files = bad_files(tmp_path)
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(**PHONE)
        page = open_ready(context, web_url)
        first = page.evaluate(CHECK)
        assert first["passed"] and not first["remembered"] and first["photos"] == reference_photos()
        classify(page, EXAMPLES / "shoes.jpg")
        cards = classify(page, *files.values())
        page.screenshot(path=screenshots / "web_phone_bad_files.png")
        for (code, path), card in zip(files.items(), cards, strict=True):
            assert card["error"] == code, path.name
            message = T["errors"][code].format(limit=10)
            assert message in card["text"] and path.name in card["text"], path.name
        assert page.evaluate(HISTORY) == ["shoes"]
        page.reload()
        page.wait_for_function(WEB_APP_READY, timeout=LOAD_TIMEOUT_MS)
        assert page.evaluate(HISTORY) == ["shoes"]
        assert page.evaluate(CHECK) == first | {"remembered": True}  # kept, as nothing it depends on changed
        page.click("#clear-history")
        assert page.inner_text("#history-body") == T["history_empty"]
        # what a new model, runtime, page or browser version does: the kept check no longer matches, so it runs again
        another = json.dumps({"key": "another", "check": {"passed": True}})
        page.evaluate("([name, value]) => localStorage.setItem(name, value)", [CHECK_KEY, another])
        page.reload()
        page.wait_for_function(WEB_APP_READY, timeout=LOAD_TIMEOUT_MS)
        assert page.inner_text("#history-body") == T["history_empty"]
        again = page.evaluate(CHECK)
        assert again["passed"] and not again["remembered"] and again["photos"] == first["photos"]
        browser.close()


def test_a_self_check_that_disagrees_stops_every_answer(web_site, tmp_path):
    """The same site with one reference answer changed (as a browser whose kernels were wrong would see it)."""
    require_chromium()
    site = tmp_path / "site"
    shutil.copytree(web_site, site)
    page_data = json.loads((site / "site.json").read_text())
    photo = page_data["card"]["self_check"]["photos"][0]
    photo["probabilities"] = photo["probabilities"][1:] + photo["probabilities"][:1]  # another top class
    (site / "site.json").write_text(json.dumps(page_data))
    url, process = serve_site(site)
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            page = open_ready(browser.new_context(**PHONE), url)
            assert not page.evaluate("() => window.pilah.ready")
            status = page.inner_text("#status")
            assert status.startswith(T["web"]["check_failed"].split("(")[0].strip()), status
            assert "1 foto contoh" in status
            assert page.is_disabled("#pick") and page.is_disabled("#camera")
            assert page.evaluate("(name) => localStorage.getItem(name)", CHECK_KEY) is None  # a failure: never kept
            browser.close()
    finally:
        stop(process)
