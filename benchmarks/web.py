"""The offline browser app (`pilah web build`) in Chromium: what the first visit downloads, the time to the first
answer on a first and on a repeat visit, the time per photo with one WebAssembly thread and with threads, the
memory of the tab, and agreement with the Python int8 `Predictor` (labels and grades) on the test split.

    python benchmarks/web.py [--data ../shared/data/garbage12] [--split DIR] [--limit N] [--timing-photos 100]

The test split is the one of the bundled model's card: `pilah data split DATA --refit 0.5` (seed 42) makes it
again in a few seconds (`--split` names a folder it already wrote); its manifest's SHA-256 is checked against the
card's. Everything runs on this machine: the site is served on loopback by `pilah.web.server` (with the headers
that make the page cross-origin isolated), bytes are counted as the server sends them, and every time is measured
inside the page or around Playwright calls that wait for the page's own signals. Prints the machine line first.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from playwright.sync_api import sync_playwright  # noqa: E402

from browser import PHONE, WEB_APP_READY, launch  # noqa: E402
from pilah.hardware import describe  # noqa: E402
from pilah.images import load_rgb  # noqa: E402
from pilah.inference.card import read_card  # noqa: E402
from pilah.inference.predictor import BUNDLED_MODEL_NAME, Predictor, bundled_model  # noqa: E402
from pilah.resources import examples_dir  # noqa: E402
from pilah.web import server as web_server  # noqa: E402
from pilah.web.build import build_site  # noqa: E402

# Functions, not expressions: the page's Content-Security-Policy forbids the eval Playwright uses for expressions.
CLASSIFY = """async (paths) => {
  const out = [];
  for (const path of paths) {
    const blob = await (await fetch(path)).blob();
    const started = performance.now();
    try {
      const r = await window.pilah.engine.classify(blob);
      out.push({label: r.label, grade: r.grade, confidence: r.confidence, novelty: r.novelty,
                ms: performance.now() - started});
    } catch (error) {
      out.push({error: error.code || String(error)});
    }
  }
  return out;
}"""
CHUNK = 100
PIXEL_PHOTOS = 300  # test photos whose decoded and resized pixels are compared with Python's
PIXELS = """async (paths) => {
  const { loadPhoto } = await import("./js/pixels.js");
  const out = [];
  for (const path of paths) {
    const rgb = await loadPhoto(await (await fetch(path)).blob(), 224, window.pilah.site.limits);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", rgb));
    out.push([...digest].map((b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return out;
}"""


class CountingHandler(web_server.SiteHandler):
    sent: ClassVar[Counter] = Counter()

    def copyfile(self, source, outputfile) -> None:
        data = source.read()
        outputfile.write(data)
        CountingHandler.sent[self.path.split("?")[0]] += len(data)


def serve(folder: Path) -> tuple[str, web_server.SiteServer]:
    httpd = web_server.make_server(folder, port=0, handler=CountingHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/", httpd


def test_split(data: Path, split: Path | None) -> tuple[list[Path], list[str]]:
    if split is None:
        split = Path(tempfile.mkdtemp(prefix="pilah-split-"))
        command = [sys.executable, "-m", "pilah.cli", "data", "split", str(data), "--out", str(split), "--refit", "0.5"]
        subprocess.run(command, check=True, capture_output=True)
    manifest = split / "manifest.csv"
    expected = read_card(bundled_model()).data.get("manifest_sha256")
    if hashlib.sha256(manifest.read_bytes()).hexdigest() != expected:
        sys.exit(f"{manifest}: not the split of the bundled model's card (its manifest SHA-256 differs)")
    with open(manifest, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    return [data / row["path"] for row in rows], [row["class"] for row in rows]


def open_page(context, url: str) -> tuple[object, float]:
    """A new tab on `url`, once the page says it is ready; the seconds that took."""
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function(WEB_APP_READY, timeout=300_000)
    if not page.evaluate("() => window.pilah.ready"):
        sys.exit(f"the page refused to answer: {page.inner_text('#status')}")
    return page, time.perf_counter() - started


def first_answer(context, url: str) -> tuple[float, int, object]:
    """Seconds from opening the page to the first verdict on screen, bytes sent meanwhile, and the page."""
    CountingHandler.sent.clear()
    started = time.perf_counter()
    page, _ = open_page(context, url)
    page.set_input_files("#pick", str(examples_dir() / "paper.jpg"))
    page.wait_for_selector("#results .verdict", timeout=120_000)
    return time.perf_counter() - started, sum(CountingHandler.sent.values()), page


def classify_in_page(page, paths: list[str]) -> list[dict]:
    found: list[dict] = []
    for start in range(0, len(paths), CHUNK):
        found += page.evaluate(CLASSIFY, paths[start : start + CHUNK])
        print(f"  {len(found)}/{len(paths)} photos", file=sys.stderr, flush=True)
    return found


def renderer_mb(browser_pid: int) -> float:
    """Resident memory of Chromium's renderer processes (the tab, its workers and the service worker), MiB."""
    processes = psutil.Process(browser_pid).children(recursive=True)
    renderers = [p for p in processes if "--type=renderer" in " ".join(p.cmdline())]
    return sum(p.memory_info().rss for p in renderers) / 2**20


def chromium_pid(before: set[int]) -> int:
    found = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and "chrom" in p.name()]
    return min(found, key=lambda p: p.create_time()).pid


def as_dict(answer) -> dict:
    return answer if isinstance(answer, dict) else answer.to_dict()


def agreement(answers: list, reference: list) -> dict[str, float]:
    """How often two runtimes give the same label and the same grade, and their largest differences."""
    pairs = [(as_dict(a), as_dict(r)) for a, r in zip(answers, reference, strict=True)]
    pairs = [(a, r) for a, r in pairs if a.get("label") and r.get("label")]
    return {
        "photos": len(pairs),
        "labels": statistics.mean(a["label"] == r["label"] for a, r in pairs),
        "grades": statistics.mean(a["grade"] == r["grade"] for a, r in pairs),
        "confidence": max(abs(a["confidence"] - r["confidence"]) for a, r in pairs),
        "novelty": max(abs(a["novelty"] - r["novelty"]) for a, r in pairs),
    }


def accuracy(answers: list, truth: list[str]) -> float:
    return statistics.mean(as_dict(a).get("label") == t for a, t in zip(answers, truth, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "garbage12")
    parser.add_argument("--split", type=Path, help="a folder `pilah data split` wrote (default: split again)")
    parser.add_argument("--limit", type=int, help="only the first N test photos (a quick look, not the figure)")
    parser.add_argument("--timing-photos", type=int, default=100, help="photos timed per thread setting")
    parser.add_argument(
        "--keras", type=Path, default=ROOT / "models" / BUNDLED_MODEL_NAME, help="the .keras source, also compared"
    )
    args = parser.parse_args()
    print(f"machine: {describe()}")
    paths, truth = test_split(args.data, args.split)
    if args.limit:
        paths, truth = paths[: args.limit], truth[: args.limit]

    work = Path(tempfile.mkdtemp(prefix="pilah-web-bench-"))
    site = build_site(work / "site")
    bench = site.folder / "bench"
    bench.mkdir()
    names = []
    for i, path in enumerate(paths):
        (bench / f"{i}{path.suffix}").symlink_to(path.resolve())
        names.append(f"bench/{i}{path.suffix}")
    url, httpd = serve(site.folder)
    print(f"site: {len(site.files)} files, {site.total_bytes / 1e6:.1f} MB (onnxruntime-web {site.runtime_version})")

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        pid = chromium_pid(before)
        context = browser.new_context(**PHONE)
        first_s, first_bytes, page = first_answer(context, url)
        first_files = dict(CountingHandler.sent)
        page.close()
        repeat_s, repeat_bytes, page = first_answer(context, url)
        page.close()

        timing = {}
        for threads in (1, 2):
            page, _ = open_page(context, f"{url}?threads={threads}")
            runtime = page.evaluate("() => window.pilah.engine.runtime")
            found = classify_in_page(page, names[: args.timing_photos])
            timing[threads] = (runtime, [r["ms"] for r in found if "ms" in r], found)
            if threads == 2:
                digests = page.evaluate(PIXELS, names[:PIXEL_PHOTOS])
                answers = found + classify_in_page(page, names[args.timing_photos :])
                memory_mb = renderer_mb(pid)
                isolated = page.evaluate("() => crossOriginIsolated")
            page.close()
        browser.close()
    httpd.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    python = list(Predictor().predict_paths(paths, batch_size=32))
    same_pixels = sum(
        digest == hashlib.sha256(load_rgb(path, 224).tobytes()).hexdigest()
        for digest, path in zip(digests, paths, strict=False)
    )
    keras = list(Predictor(args.keras).predict_paths(paths, batch_size=32)) if args.keras.is_file() else None

    same = sum(
        a["label"] == b["label"] and a["grade"] == b["grade"]
        for a, b in zip(timing[1][2], timing[2][2], strict=True)
        if "label" in a and "label" in b
    )
    errors = sum("label" not in a for a in answers)
    print(f"\nfirst visit: {first_bytes / 1e6:.1f} MB sent by the server; largest:")
    for name, size in sorted(first_files.items(), key=lambda item: -item[1])[:4]:
        print(f"  {name}: {size / 1e6:.1f} MB")
    print("\n| measure | value |\n|---|---|")
    print(f"| bytes of the first visit | {first_bytes / 1e6:.1f} MB |")
    print(f"| bytes of a repeat visit | {repeat_bytes / 1e3:.0f} kB |")
    print(f"| first visit: open -> first answer | {first_s:.1f} s |")
    print(f"| repeat visit: open -> first answer | {repeat_s:.1f} s ({repeat_s / first_s:.2f}x) |")
    base = statistics.median(timing[1][1])
    for runtime, times, _ in timing.values():
        median, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
        print(f"| per photo, {runtime} | {median:.0f} ms p50, {p90:.0f} ms p90 ({base / median:.2f}x) |")
    print(f"| photos whose 224 x 224 pixels equal Python's (decode and resize) | {same_pixels} of {len(digests)} |")
    print(f"| same label and grade, 1 thread and threads | {same} of {len(timing[1][2])} photos |")
    print(f"| renderer memory after all photos (cross-origin isolated: {isolated}) | {memory_mb:.0f} MiB |")
    print(f"| test photos the browser could not read | {errors} |")
    print(f"\nagreement on {len(paths)} test photos\n")
    print("| runtimes | same label | same grade | largest confidence difference | largest novelty difference |")
    print("|---|---|---|---|---|")
    pairs = [("browser vs Python int8", answers, python)]
    if keras:
        pairs += [("browser vs .keras", answers, keras), ("Python int8 vs .keras (yardstick)", python, keras)]
    for name, a, r in pairs:
        found = agreement(a, r)
        print(
            f"| {name} | {found['labels']:.2%} | {found['grades']:.2%} | {found['confidence']:.3f} "
            f"| {found['novelty']:.3f} |"
        )
    accuracies = [("browser", answers), ("Python int8", python)] + ([(".keras", keras)] if keras else [])
    print("\ntest accuracy: " + ", ".join(f"{name} {accuracy(a, truth):.2%}" for name, a in accuracies))
    print(f"\n(CPU count seen by Chromium: {os.cpu_count()})")


if __name__ == "__main__":
    main()
