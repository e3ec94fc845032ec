"""The app in a real browser: `pilah app` on a free loopback port, driven by Playwright in Debian's Chromium.

Screenshots go to $PILAH_SCREENSHOTS when set (else the test's temporary folder); the warm upload round
trips are printed and written there as `app_timings.json` (measured, not asserted).
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

from browser import free_port, launch, require_chromium, start_app, stop, timed_upload, wait_for_health
from conftest import EXAMPLES
from pilah.app import guidance

pytestmark = pytest.mark.slow  # trains, starts a browser or builds a virtual environment

playwright_api = pytest.importorskip("playwright.sync_api")
TITLE = guidance.texts("id")["title"]
LOAD_TIMEOUT_MS = 180_000
UPLOADER = '[data-testid="stFileUploaderDropzoneInput"]'
CAMERA_STREAMING = "() => [...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0)"
STARTED: dict[str, float] = {}  # the first result includes loading the model on a busy 2-core machine


@pytest.fixture(scope="module")
def app_url():
    require_chromium()
    port = free_port()
    STARTED["app"] = time.perf_counter()
    process = start_app(port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
    except (RuntimeError, TimeoutError) as error:
        pytest.fail(f"{error}\n{stop(process)}")
    yield url
    stop(process)


@pytest.fixture()
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PILAH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def upload_and_wait(page, name: str) -> float:
    """Upload one example photo; seconds until its result heading is painted (timed inside the page)."""
    heading = guidance.texts("id")["result_for"].format(name=name)
    return timed_upload(page, UPLOADER, EXAMPLES / name, heading) / 1000


def test_upload_shows_result_and_advice_at_desktop_and_phone_width(app_url, screenshots):
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app_url)
        page.get_by_text(TITLE).wait_for(timeout=LOAD_TIMEOUT_MS)
        first = upload_and_wait(page, "battery.jpg")
        cold = time.perf_counter() - STARTED["app"]  # `pilah app` started -> first result on screen
        success = page.locator('[data-testid="stAlertContentSuccess"]')
        assert "Baterai" in success.inner_text()
        advice = guidance.guidance("battery", "id")
        expect = playwright_api.expect
        expect(page.get_by_text(advice.prepare[0])).to_be_visible()
        expect(page.get_by_text(advice.dont[0])).to_be_visible()
        expect(page.locator('[data-testid="stVegaLiteChart"] svg.marks').first).to_be_visible()  # the confidence chart
        page.set_viewport_size({"width": 1280, "height": 1800})
        page.screenshot(path=screenshots / "app_desktop.png")
        page.set_viewport_size({"width": 1280, "height": 900})
        warm = [upload_and_wait(page, name) for name in ("clothes.jpg", "shoes.jpg", "paper.jpg", "metal.jpg")]
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("5")  # the page has caught up
        with page.expect_download() as download:  # the history as a person downloads it
            page.get_by_role("button", name=guidance.texts("id")["download_csv"]).click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        uploaded = ["battery.jpg", "clothes.jpg", "shoes.jpg", "paper.jpg", "metal.jpg"]
        assert [(r["file"], r["label"]) for r in rows] == [(name, name.removesuffix(".jpg")) for name in uploaded]
        assert all(0.5 < float(r["confidence"]) <= 1 for r in rows)
        timings = {"cold_start_to_first_result_s": cold, "first_result_s": first, "warm_round_trips_s": warm}
        timings["warm_median_s"] = statistics.median(warm)
        (screenshots / "app_timings.json").write_text(json.dumps(timings, indent=2))
        median_ms = timings["warm_median_s"] * 1000
        print(f"\napp: cold start to first result {cold:.1f} s, warm round trip median {median_ms:.0f} ms")

        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2)
        phone.goto(app_url)
        phone.get_by_text(TITLE).wait_for(timeout=LOAD_TIMEOUT_MS)
        upload_and_wait(phone, "plastic.jpg")
        assert "Plastik" in phone.locator('[data-testid="stAlertContentSuccess"]').inner_text()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width} px wide)"
        playwright_api.expect(phone.locator('[data-testid="stImage"] img').first).to_be_visible()
        phone.set_viewport_size({"width": 390, "height": 2400})  # Streamlit scrolls inside: show it all
        phone.screenshot(path=screenshots / "app_phone.png")
        browser.close()


def write_y4m(image_path: Path, target: Path, size: tuple[int, int] = (640, 480), frames: int = 10) -> None:
    """A short raw video of one photo, the format Chromium's fake camera reads."""
    image = Image.open(image_path).convert("RGB").resize(size)
    y, cb, cr = (np.asarray(c) for c in image.convert("YCbCr").split())
    half = (size[0] // 2, size[1] // 2)
    planes = [y, np.asarray(Image.fromarray(cb).resize(half)), np.asarray(Image.fromarray(cr).resize(half))]
    frame = b"FRAME\n" + b"".join(p.astype(np.uint8).tobytes() for p in planes)
    header = f"YUV4MPEG2 W{size[0]} H{size[1]} F10:1 Ip A1:1 C420jpeg\n".encode()
    target.write_bytes(header + frame * frames)


def test_camera_photo_from_a_fake_capture_device(app_url, screenshots, tmp_path):
    video = tmp_path / "camera.y4m"
    write_y4m(EXAMPLES / "clothes.jpg", video)
    flags = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    flags.append(f"--use-file-for-fake-video-capture={video}")
    t = guidance.texts("id")
    with playwright_api.sync_playwright() as p:
        browser = launch(p, flags)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
        page = context.new_page()
        page.goto(app_url)
        page.get_by_text(TITLE).wait_for(timeout=LOAD_TIMEOUT_MS)
        page.get_by_role("tab", name=t["tab_camera"]).click()
        # a click before the camera streams takes no photo: wait for the first video frame
        page.wait_for_function(CAMERA_STREAMING, timeout=60_000)
        page.get_by_role("button", name="Take Photo").click(timeout=60_000)
        page.get_by_text(t["result_for"].format(name="")).first.wait_for(timeout=LOAD_TIMEOUT_MS)
        page.screenshot(path=screenshots / "app_camera.png", full_page=True)
        verdict = page.locator('[data-testid="stAlertContainer"]').first.inner_text()
        assert t["classes"]["clothes"] in verdict  # the answer (or, if unsure, a runner-up) for the clothes photo
        playwright_api.expect(page.get_by_text(t["stats_title"])).to_be_visible()
        browser.close()
