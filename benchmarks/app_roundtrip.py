"""Upload -> result round trip of the Streamlit app in a real browser (Playwright, Debian's Chromium).

For each model, starts `pilah app` on a loopback port, opens the page and uploads example photos one at a
time; each round trip is timed inside the page, from the file input's `change` event to the first frame
after the result heading appeared. The first model given is the baseline (the others are compared with it
in the same run). Prints the machine, then a table: first paint (`pilah app` started -> the title and the photo
picker on screen, usable), cold start (-> first result painted), the first upload, and warm round trips (median
and 90th percentile).

    python benchmarks/app_roundtrip.py [--uploads 12] [MODEL ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from playwright.sync_api import sync_playwright  # noqa: E402

from browser import chromium_missing, free_port, launch, start_app, stop, timed_upload, wait_for_health  # noqa: E402
from pilah.app import words  # noqa: E402
from pilah.hardware import describe  # noqa: E402
from pilah.inference.predictor import BUNDLED_FAST_MODEL_NAME, BUNDLED_MODEL_NAME  # noqa: E402
from pilah.resources import models_dir  # noqa: E402

PHOTOS = sorted((ROOT / "examples").glob("*.jpg"))
UPLOADER = '[data-testid="stFileUploaderDropzoneInput"]'
DEFAULT_MODELS = [ROOT / "models" / BUNDLED_MODEL_NAME, models_dir() / BUNDLED_FAST_MODEL_NAME]


def measure(model: Path, uploads: int, folder: Path) -> dict[str, float]:
    """Cold start and round trips (ms) of one app process with `model`."""
    texts = words.texts(words.DEFAULT_LANGUAGE)
    started = time.perf_counter()
    port = free_port()
    process = start_app(port, model)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_text(texts["title"]).wait_for(timeout=180_000)
            page.locator(UPLOADER).wait_for(state="attached", timeout=180_000)
            first_paint = (time.perf_counter() - started) * 1000
            trips = []
            for i in range(uploads + 1):
                photo = PHOTOS[i % len(PHOTOS)]
                copy = folder / f"{i:02d}-{photo.name}"  # a new name each time: a new heading to wait for
                copy.write_bytes(photo.read_bytes())
                trips.append(timed_upload(page, UPLOADER, copy, texts["result_for"].format(name=copy.name)))
                if i == 0:
                    cold = (time.perf_counter() - started) * 1000
                page.wait_for_timeout(1000)  # let the rest of the page settle, as a person would read it
            browser.close()
    finally:
        stop(process)
    warm = sorted(trips[1:])
    p90 = warm[int(0.9 * (len(warm) - 1))]
    return {"paint": first_paint, "cold": cold, "first": trips[0], "p50": statistics.median(warm), "p90": p90}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--uploads", type=int, default=12, help="warm uploads per model (after the first)")
    args = parser.parse_args()
    reason = chromium_missing()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory() as folder:
        rows = [(model, measure(model, args.uploads, Path(folder))) for model in args.models]
    baseline = rows[0][1]["p50"]
    print(f"\nmachine: {describe()}")
    print(f"{args.uploads} warm uploads per model; round trips timed in the page (ms)\n")
    print(
        "| app model | first paint (s) | cold start to first result (s) | first upload | warm p50 | warm p90 "
        "| warm p50 vs baseline |"
    )
    print("|---|---|---|---|---|---|---|")
    for model, r in rows:
        print(
            f"| {model.name} | {r['paint'] / 1000:.1f} | {r['cold'] / 1000:.1f} | {r['first']:.0f} | {r['p50']:.0f} "
            f"| {r['p90']:.0f} | {baseline / r['p50']:.2f}× faster |"
        )


if __name__ == "__main__":
    main()
