"""The app in a real browser: `pilah app` on a free loopback port, driven by Playwright in Debian's Chromium, at
desktop width (1280x900) and on a phone (390x844).

Screenshots go to $PILAH_SCREENSHOTS when set (else the test's temporary folder); the warm upload round trips are
printed and written there as `app_timings.json` (measured, not asserted).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import (
    launch,
    require_chromium,
    serve_or_fail,
    stop,
    timed_upload,
    wait_for_one,
    wait_for_run_end,
)
from conftest import EXAMPLES, KERAS_MODEL, model_with_grades
from pilah import guidance
from pilah.app import words

pytestmark = pytest.mark.slow  # starts a browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
T = words.texts("id")
LOAD_TIMEOUT_MS = 180_000
PHONE = {"width": 390, "height": 844}
UPLOADER = '[data-testid="stFileUploaderDropzoneInput"]'
# Streamlit's camera restarts its stream 1 s after its width settles, and a "Take Photo" click while it restarts
# takes no photo (measured: a click when the video had 0 px height left the camera ready and sent nothing): wait
# for a stream that has played 2 s.
CAMERA_STREAMING = """() => [...document.querySelectorAll('video')].some(
  v => v.readyState >= 2 && v.videoHeight > 0 && v.currentTime > 2)"""
STARTED: dict[str, float] = {}  # the first result includes loading the model on a busy 2-core machine
# The label a button shows once the page's style is on: the text a person sees, and what the style draws after it.
LABEL = """(selector) => new Promise((resolve) => {
  setTimeout(() => resolve(["the page's style never replaced Streamlit's label", ""]), 30000);
  const read = () => {
    const e = document.querySelector(selector);
    const after = e && getComputedStyle(e, "::after").content;
    if (after && after !== "none") {
      const hidden = getComputedStyle(e).fontSize === "0px";
      resolve([hidden ? "" : e.innerText.trim(), after]);
    } else setTimeout(read, 100);
  };
  read();
})"""


def serve_app(model: Path | None = None, *flags: str):
    require_chromium()
    STARTED["app"] = time.perf_counter()
    return serve_or_fail("app", model, *flags)


@pytest.fixture(scope="module")
def app_url():
    url, process = serve_app()
    yield url
    output = stop(process)
    assert "Traceback" not in output, output[-3000:]


@pytest.fixture()
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PILAH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def upload_and_wait(page, *names: str) -> float:
    """Upload example photos; seconds until the newest one's result is painted (timed inside the page). Returns
    when the page's run is over, so what the test reads next is this run's page, not a mix with the last one."""
    heading = T["result_for"].format(name=names[-1])
    if len(names) == 1:
        seconds = timed_upload(page, UPLOADER, EXAMPLES / names[0], heading) / 1000
    else:
        wait_for_one(page, UPLOADER)
        page.locator(UPLOADER).set_input_files([EXAMPLES / name for name in names])
        page.get_by_text(heading).wait_for(timeout=LOAD_TIMEOUT_MS)
        seconds = float("nan")
    wait_for_run_end(page)
    return seconds


def newest_verdict_box(page) -> dict:
    """Where the newest verdict card is on the page (the first card), measured from the top of the page, whatever
    the browser scrolled: the first screen of a phone is the top `PHONE["height"]` pixels."""
    card = page.locator(".st-key-verdict-0")
    expect(card).to_be_visible()
    return page.evaluate(SCROLL_TO_TOP_AND_MEASURE, ".st-key-verdict-0")


SCROLL_TO_TOP_AND_MEASURE = """(selector) => {
  for (const scroller of [document.scrollingElement, document.querySelector('[data-testid="stMain"]')]) {
    if (scroller) scroller.scrollTop = 0;
  }
  const box = document.querySelector(selector).getBoundingClientRect();
  return {y: box.top, height: box.height};
}"""


@pytest.fixture(scope="module")
def doubt_app_url(tmp_path_factory):
    """The bundled model under a card without a "likely" band, so that the brown bottle (67 % brown, 27 % green
    glass) is one of two whatever the shipped card's thresholds: the longest card a phone must show in its first
    screen. The other examples stay sure."""
    url, process = serve_app(model_with_grades(tmp_path_factory.mktemp("models") / "doubt", sure=0.92))
    yield url
    output = stop(process)
    assert "Traceback" not in output, output[-3000:]


def test_on_a_phone_the_verdict_is_in_the_first_screen_after_any_number_of_uploads(doubt_app_url, screenshots):
    app_url = doubt_app_url
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        phone = browser.new_page(viewport=PHONE, is_mobile=True, device_scale_factor=2)
        phone.goto(app_url)
        phone.get_by_text(T["title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
        positions = []
        for names in (["plastic.jpg"], ["battery.jpg"], ["paper.jpg"], ["clothes.jpg", "metal.jpg", "shoes.jpg"]):
            upload_and_wait(phone, *names)
            box = newest_verdict_box(phone)
            positions.append(box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (names, box)
            assert T["result_for"].format(name=names[-1]) in phone.locator(".st-key-verdict-0").inner_text()
            chips = phone.locator('[data-testid="stFileChip"]:visible')  # no chips pile up: the newest only
            expect(chips).to_have_count(1)
            assert names[-1] in chips.inner_text()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width} px wide)"
        phone.screenshot(path=screenshots / "app_phone.png")  # the first screen, as a household sees it
        expect(phone.locator(".st-key-history-list")).to_be_visible()  # the history as a list on a phone...
        expect(phone.locator(".st-key-history-table")).to_be_hidden()  # ...not a table cut off at the side
        history = phone.locator(".st-key-history-list").inner_text()
        assert T["classes"]["shoes"] in history and T["classes"]["plastic"] in history
        (screenshots / "verdict_positions.json").write_text(json.dumps(positions, indent=2))
        upload_and_wait(phone, "brown-glass.jpg")  # one of two under this card
        pair = T["between"].format(a=T["classes"]["brown-glass"], b=T["classes"]["green-glass"])
        verdict = phone.locator(".st-key-verdict-0").inner_text()
        assert pair in verdict and words.pair_tip("brown-glass", "green-glass", "id") in verdict
        box = newest_verdict_box(phone)
        assert box["y"] + box["height"] <= PHONE["height"], box
        question = phone.locator('[class*="st-key-feedback-"]').first.bounding_box()  # "is this right?" too
        assert question["y"] + question["height"] <= PHONE["height"], question
        phone.screenshot(path=screenshots / "app_phone_doubt.png")
        browser.close()


def test_at_desktop_width_verdict_details_history_and_its_csv(app_url, screenshots):
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app_url)
        page.get_by_text(T["title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
        first = upload_and_wait(page, "battery.jpg")
        cold = time.perf_counter() - STARTED["app"]  # `pilah app` started -> first result on screen
        verdict = page.locator(".st-key-verdict-0").inner_text()
        assert T["classes"]["battery"] in verdict and T["grade_sure"].split(" ·")[0] in verdict
        advice = guidance.advice("battery", "id", "id")
        assert advice.where[0] in verdict  # where it goes, in the card itself
        expect(page.get_by_text(advice.prepare[0])).to_be_hidden()  # the steps wait in the details
        page.get_by_text(T["details"]).first.click()
        expect(page.get_by_text(advice.prepare[0])).to_be_visible()
        expect(page.locator('[data-testid="stProgress"]').first).to_be_visible()  # the likeliest classes as bars
        bars = page.locator('[data-testid="stProgress"]').all_inner_texts()
        assert len(bars) == 5 and bars[0].startswith(T["classes"]["battery"] + " · ") and bars[0].endswith(" %")
        expect(page.get_by_role("img", name=T["model_saw"])).to_be_visible()  # the photo has its alt text
        page.screenshot(path=screenshots / "app_desktop.png", full_page=True)
        warm = [upload_and_wait(page, name) for name in ("clothes.jpg", "shoes.jpg", "paper.jpg", "metal.jpg")]
        expect(page.locator(".st-key-history-table")).to_be_visible()
        expect(page.locator(".st-key-history-list")).to_be_hidden()
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("5")  # the page has caught up
        with page.expect_download() as download:  # the history as a person downloads it
            page.get_by_role("button", name=T["download_csv"]).click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        uploaded = ["battery", "clothes", "shoes", "paper", "metal"]
        assert list(rows[0]) == [T["csv"][k] for k in ("time", "file", "answer", "grade", "class_code", "confidence")]
        assert [(r["berkas"], r["kode_kelas"]) for r in rows] == [(f"{c}.jpg", c) for c in uploaded]
        assert [r["jawaban"] for r in rows] == [T["classes"][c] for c in uploaded]  # in the page's language
        assert all(r["keyakinan"] == T["grade_names"]["sure"] and 0.9 < float(r["nilai_keyakinan"]) <= 1 for r in rows)
        timings = {"cold_start_to_first_result_s": cold, "first_result_s": first, "warm_round_trips_s": warm}
        timings["warm_median_s"] = statistics.median(warm)
        (screenshots / "app_timings.json").write_text(json.dumps(timings, indent=2))
        median_ms = timings["warm_median_s"] * 1000
        print(f"\napp: cold start to first result {cold:.1f} s, warm round trip median {median_ms:.0f} ms")
        browser.close()


# Streamlit's own English words, as visible text or accessible names (what a screen reader reads).
STREAMLIT_ENGLISH = (
    "Skip to main content",
    "Main menu",
    "file upload",
    "Add files",
    "Remove ",
    "Thumbs up",
    "Thumbs down",
    "Feedback rating",
    "Take Photo",
    "Download as CSV",
    "Show data",
    "Fullscreen",
    "Choose an option",
    "Vega visualization",
    "This app would like to use your camera",
    "Learn how to allow access",
    "Link to heading",
    '"Open"',
    "graph optimisation",
    "Upload",
    "Drag and drop",
    "Browse files",
    "Limit 200MB",
    "Running",
    "Stop",
)
# Whatever a finger taps, and how big it is; a radio's or checkbox's input sits in its label, which is the target.
TAP_TARGETS = """() => [...document.querySelectorAll(`button, [role="tab"], [data-testid="stRadioOption"],
    [data-baseweb="select"], [data-testid="stCheckbox"] label, [data-testid="stToggle"] label,
    [data-testid="stExpander"] summary`)]
  .filter((e) => e.offsetParent !== null && e.getClientRects().length)
  .filter((e) => e.matches('[data-baseweb="select"]') || !e.closest('[data-baseweb="select"]'))  // one target
  .map((e) => { const r = e.getBoundingClientRect();
    return {name: (e.getAttribute("aria-label") || e.innerText || "").trim().slice(0, 40),
            width: Math.round(r.width), height: Math.round(r.height)}; })"""


def page_words(page) -> str:
    """What a person sees and what a screen reader reads: the visible text and the accessibility tree."""
    return page.locator("body").inner_text() + "\n" + page.locator("body").aria_snapshot()


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 800}], ids=["phone", "desktop"])
def test_the_indonesian_page_shows_and_says_no_english_from_streamlit(app_url, screenshots, viewport):
    """Streamlit's own labels, accessible names and messages are English: the page replaces what it can and hides
    the rest, in the visible text and in the accessibility tree, with and without camera permission; the English
    page gets Streamlit's words back."""
    with playwright_api.sync_playwright() as p:
        for permissions in (["camera"], []):  # a fake camera that is allowed; then no camera permission at all
            flags = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"] if permissions else []
            browser = launch(p, flags)
            page = browser.new_context(viewport=viewport, permissions=permissions).new_page()
            page.goto(app_url)
            page.get_by_text(T["title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
            upload_and_wait(page, "white-glass.jpg")
            page.get_by_text(T["details"]).first.click()
            expect(page.get_by_role("button", name="Hapus white-glass.jpg")).to_be_attached()
            notes = screenshots / "notes.txt"  # not a photo: Pilah's own message, not Streamlit's English red chip
            notes.write_text("not a photo")
            page.locator(UPLOADER).set_input_files(notes)
            expect(page.get_by_text(T["error_title"].format(name="notes.txt"))).to_be_visible(timeout=60_000)
            expect(page.get_by_text(words.error_message("not_an_image", "id"))).to_be_visible()
            wait_for_run_end(page)
            page.get_by_role("tab", name=T["tab_camera"]).click()
            if permissions:
                page.wait_for_function(CAMERA_STREAMING, timeout=60_000)
                expect(page.get_by_role("button", name=T["streamlit_names"]["Take Photo"], exact=True)).to_be_visible()
            else:
                expect(
                    page.get_by_text(T["streamlit_names"]["This app would like to use your camera."])
                ).to_be_visible()
            page.wait_for_timeout(500)  # the renaming runs on the next animation frame
            said = page_words(page)
            assert [english for english in STREAMLIT_ENGLISH if english in said] == []
            width = "phone" if viewport == PHONE else "desktop"
            page.screenshot(path=screenshots / f"app_{width}_camera{'' if permissions else '_no_permission'}.png")
            if permissions:
                browser.close()
        page.locator("[data-testid=stRadioOption]", has_text="EN").click()  # back to Streamlit's own English
        expect(page.get_by_role("tab", name=words.texts("en")["tab_camera"], selected=True)).to_be_visible()
        expect(page.get_by_text("This app would like to use your camera.")).to_be_visible()
        expect(page.get_by_role("button", name="Open", exact=True)).to_be_attached()
        expect(page.get_by_role("link", name="Skip to main content")).to_be_attached()
        browser.close()


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 800}], ids=["phone", "desktop"])
def test_everything_a_finger_taps_is_at_least_44_px(app_url, viewport):
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=viewport, has_touch=True)
        page.goto(app_url)
        page.get_by_text(T["title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
        upload_and_wait(page, "paper.jpg")
        page.get_by_text(T["details"]).first.click()
        expect(page.locator('[data-testid="stProgress"]').first).to_be_visible()
        targets = page.evaluate(TAP_TARGETS)
        assert len(targets) >= 12  # the tabs, the chip's buttons, the answer, the look-alike, the history's...
        assert [t for t in targets if t["width"] < 44 or t["height"] < 44] == []
        browser.close()


def test_the_history_survives_a_reload_and_the_open_tab_a_language_switch(app_url):
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=PHONE)
        page.goto(app_url)
        page.get_by_text(T["title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
        names = ["battery.jpg", "paper.jpg", "metal.jpg", "shoes.jpg", "clothes.jpg"]
        for name in names:
            upload_and_wait(page, name)
        assert "h=" in page.url  # the token the server keeps this tab's history under
        page.reload()
        page.get_by_text(T["history_title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
        history = page.locator(".st-key-history-list")  # painted line by line: wait for each, not one read
        for name in names:
            expect(history).to_contain_text(T["classes"][Path(name).stem], timeout=60_000)
        wait_for_run_end(page)
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("5")
        expect(page.get_by_text(T["history_empty"])).to_be_hidden()
        page.get_by_role("tab", name=T["tab_camera"]).click()
        page.locator("[data-testid=stRadioOption]", has_text="EN").click()
        expect(page.get_by_role("tab", name=words.texts("en")["tab_camera"], selected=True)).to_be_visible()
        page.locator("[data-testid=stRadioOption]", has_text="ID").click()
        expect(page.get_by_role("tab", name=T["tab_camera"], selected=True)).to_be_visible()
        browser.close()


def test_the_first_paint_offers_the_picker_and_says_the_model_is_loading():
    """With the `.keras` model (seconds to load), the page is already usable and says what it is waiting for;
    during a classification a spinner says Pilah is working. Streamlit shows a spinner only after 0.5 s, and one
    photo took 0.56 s here (the spinner was missed once): the twelve examples at once take about 1.6 s."""
    url, process = serve_app(KERAS_MODEL)
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport=PHONE)
            page.goto(url)
            page.get_by_text(T["model_loading"]).wait_for(timeout=LOAD_TIMEOUT_MS)
            expect(page.locator(UPLOADER)).to_be_attached()  # the picker came before the model
            expect(page.get_by_text(T["title"])).to_be_visible()
            page.get_by_text(T["model_loading"]).wait_for(state="detached", timeout=LOAD_TIMEOUT_MS)
            wait_for_one(page, UPLOADER)
            page.locator(UPLOADER).set_input_files(sorted(EXAMPLES.glob("*.jpg")))
            page.get_by_text(T["classifying"]).wait_for(timeout=30_000)
            page.get_by_text(T["result_for"].format(name="paper.jpg")).wait_for(timeout=LOAD_TIMEOUT_MS)
            browser.close()
    finally:
        stop(process)


def write_y4m(image_path: Path, target: Path, size: tuple[int, int] = (640, 480), frames: int = 10) -> None:
    """A short raw video of one photo, the format Chromium's fake camera reads."""
    image = Image.open(image_path).convert("RGB").resize(size)
    y, cb, cr = (np.asarray(c) for c in image.convert("YCbCr").split())
    half = (size[0] // 2, size[1] // 2)
    planes = [y, np.asarray(Image.fromarray(cb).resize(half)), np.asarray(Image.fromarray(cr).resize(half))]
    frame = b"FRAME\n" + b"".join(p.astype(np.uint8).tobytes() for p in planes)
    header = f"YUV4MPEG2 W{size[0]} H{size[1]} F10:1 Ip A1:1 C420jpeg\n".encode()
    target.write_bytes(header + frame * frames)


# Counts the page's requests for the camera and keeps their tracks, to see when the camera is on.
COUNT_CAMERA_REQUESTS = """(() => {
  window.cameraRequests = 0;
  window.cameraTracks = [];
  const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    window.cameraRequests += 1;
    const stream = await ask(constraints);
    window.cameraTracks.push(...stream.getTracks());
    return stream;
  };
})();"""
CAMERA_ON = "() => window.cameraTracks.some(track => track.readyState === 'live')"


def test_camera_photo_from_a_fake_capture_device(app_url, screenshots, tmp_path):
    """The camera is asked for only when its tab opens (not on a visit that only uploads), it takes a photo that
    gets its verdict, and it is off again once another tab is open."""
    video = tmp_path / "camera.y4m"
    write_y4m(EXAMPLES / "clothes.jpg", video)
    flags = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    flags.append(f"--use-file-for-fake-video-capture={video}")
    with playwright_api.sync_playwright() as p:
        browser = launch(p, flags)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
        context.add_init_script(COUNT_CAMERA_REQUESTS)
        page = context.new_page()
        page.goto(app_url)
        page.get_by_text(T["title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
        upload_and_wait(page, "paper.jpg")
        assert page.evaluate("() => window.cameraRequests") == 0 and page.locator("video").count() == 0
        page.get_by_role("tab", name=T["tab_camera"]).click()
        page.wait_for_function(CAMERA_STREAMING, timeout=60_000)
        page.locator('[data-testid="stCameraInputButton"]').click(timeout=60_000)
        title = T["camera_title"].format(n=1)
        page.get_by_text(T["result_for"].format(name=title)).wait_for(timeout=LOAD_TIMEOUT_MS)
        page.screenshot(path=screenshots / "app_camera.png", full_page=True)
        verdict = page.locator(".st-key-verdict-0").inner_text()
        assert T["classes"]["clothes"] in verdict  # the answer (or, if unsure, one of the two) for the clothes photo
        assert page.evaluate(CAMERA_ON)  # the next shot's camera is ready
        page.get_by_role("tab", name=T["tab_upload"]).click()
        expect(page.locator("video")).to_have_count(0, timeout=60_000)
        assert not page.evaluate(CAMERA_ON)
        browser.close()


def test_a_correction_on_a_phone_from_thumbs_down_to_the_kept_photo(tmp_path, screenshots):
    corrections = tmp_path / "corrections"
    url, process = serve_app(None, "--corrections", str(corrections))
    try:
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            phone = browser.new_page(viewport=PHONE, is_mobile=True, device_scale_factor=2)
            phone.goto(url)
            upload_and_wait(phone, "battery.jpg")
            phone.locator('[class*="st-key-vote-"] [data-variant="segmented_control"]').nth(1).click()  # 👎 Salah
            picker = phone.locator('[class*="st-key-pick-"]')
            picker.wait_for(timeout=30_000)
            picker.click()
            phone.get_by_role("option", name=T["classes"]["metal"], exact=True).click()
            phone.get_by_text(T["feedback_consent"]).click()
            send = phone.get_by_role("button", name=T["feedback_send"])
            expect(send).to_be_enabled()
            send.scroll_into_view_if_needed()
            phone.screenshot(path=screenshots / "app_correction.png")
            send.click()
            expect(phone.get_by_text(T["feedback_kept"])).to_be_visible()
            browser.close()
    finally:
        output = stop(process)
    assert "Traceback" not in output, output[-3000:]
    (kept,) = corrections.glob("*/*.jpg")
    assert kept.parent.name == "metal" and (corrections / "corrections.jsonl").read_text().count("\n") == 1


def test_the_same_photo_in_two_regions(app_url, screenshots):
    """Green glass: Indonesia's inorganic stream, Germany's green bottle bank; each verdict names its stream."""
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        phone = browser.new_page(viewport=PHONE, is_mobile=True, device_scale_factor=2)
        phone.goto(app_url)
        upload_and_wait(phone, "green-glass.jpg")
        for region, figure in (("id", "app_region_id.png"), ("de", "app_region_de.png")):
            if region != "id":
                phone.locator(".st-key-region").click()
                phone.get_by_role("option", name=f"📍 {guidance.region_name(region, 'id')}").click()
                wait_for_run_end(phone)
            card = phone.locator(".st-key-verdict-0")
            expect(card).to_contain_text(guidance.advice("green-glass", region, "id").stream_name)
            card.screenshot(path=screenshots / figure)
        box = newest_verdict_box(phone)
        assert box["y"] + box["height"] <= PHONE["height"], box  # the region picker costs no first-screen room
        browser.close()


def test_on_a_phone_the_look_alike_question_and_the_safe_default_are_in_the_first_screen(app_url, screenshots):
    matplotlib = pytest.importorskip("matplotlib")
    logo = Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png"
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        phone = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
        phone.goto(app_url)
        phone.get_by_text(T["title"]).wait_for(timeout=LOAD_TIMEOUT_MS)
        upload_and_wait(phone, "paper.jpg")
        question = phone.locator(".st-key-verdict-0 button").filter(has_text="Tisu bekas")
        expect(question).to_have_text("Tisu bekas, kertas berminyak atau basah, struk kertas termal? → 🗑️ Residu")
        box = newest_verdict_box(phone)
        tap = question.bounding_box()
        assert box["y"] + box["height"] <= PHONE["height"] and tap["y"] + tap["height"] <= PHONE["height"], box
        assert tap["height"] >= 40  # a finger's tap target
        phone.screenshot(path=screenshots / "app_phone_lookalike.png")
        question.tap()
        expect(phone.locator(".st-key-verdict-0 h3")).to_have_text("🗑️ Residu")
        wait_for_run_end(phone)
        assert "Tisu bekas" in phone.locator(".st-key-history-list").inner_text()  # the answer is in the history
        phone.locator(UPLOADER).set_input_files(logo)
        phone.get_by_text(T["result_for"].format(name=logo.name)).wait_for(timeout=LOAD_TIMEOUT_MS)
        wait_for_run_end(phone)
        verdict = phone.locator(".st-key-verdict-0").inner_text()
        unsure = guidance.when_unsure("id", "id")
        assert T["unfamiliar_title"] in verdict and unsure.line in verdict and T["retake_tips"] in verdict
        box = newest_verdict_box(phone)
        assert box["y"] + box["height"] <= PHONE["height"], box
        phone.screenshot(path=screenshots / "app_phone_unfamiliar.png")
        browser.close()
