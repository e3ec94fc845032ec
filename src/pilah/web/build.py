"""`pilah web build`: the offline browser app as a static site any static host can serve.

The site is the client in `pilah/resources/web` (plain HTML, CSS and JavaScript modules), ONNX Runtime Web's
WebAssembly build (npm, pinned by the client's package-lock.json), the bundled int8 model with its open-set bank,
the example photos the self-check runs, and `site.json`: the model card's calibration and reference answers, the
limits, the texts and every guidance pack, from the same files the Streamlit app and the API read. The large files
are stored gzipped (the page unpacks them), so that the first visit costs the same bytes on any host.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pilah import __version__, guidance
from pilah.config import DataConfig
from pilah.errors import UsageError
from pilah.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, MAX_ASPECT_RATIO, MIN_SIDE
from pilah.inference.card import ModelCard, read_card
from pilah.inference.open_set import METHOD
from pilah.inference.predictor import bundled_model
from pilah.inference.runtimes import EMBEDDING_OUTPUT
from pilah.inference.selfcheck import NOVELTY_TOLERANCE
from pilah.resources import example_photos, read_yaml
from pilah.web.graph import page_graph

RUNTIME_PACKAGE = "onnxruntime-web"
# The WebAssembly-only build (no WebGL/WebGPU code): its ES module with the loader inside, and the SIMD binary.
RUNTIME_MODULE = "ort.wasm.bundle.min.mjs"
RUNTIME_BINARY = "ort-wasm-simd-threaded.wasm"
RUNTIME_NOTICE = (
    "onnxruntime-web {version} (https://www.npmjs.com/package/onnxruntime-web), Copyright (c) Microsoft Corporation,"
    " under the MIT License: https://github.com/microsoft/onnxruntime/blob/main/LICENSE\n"
)
CLIENT_FILES = ("index.html", "style.css", "manifest.webmanifest", "sw.js", "js/app.js", "js/engine.js")
CLIENT_FILES += ("js/pixels.js", "js/resize.js", "js/history.js")
ICON_SIZES = (192, 512)
ICON_GREEN = (31, 122, 77)
BANK_FILE = "model/bank.f16.gz"
SITE_MARKER = "site.json"  # a folder with this file is a site `pilah web build` wrote, and may be replaced
CACHE_ENV = "PILAH_CACHE_DIR"


@dataclass(frozen=True)
class Site:
    folder: Path
    files: dict[str, int]  # path in the site -> bytes
    runtime_version: str

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def client_dir() -> Path:
    return Path(str(resources.files("pilah.resources").joinpath("web")))


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "pilah")
    return Path(root)


def runtime_dist(given: Path | None = None) -> Path:
    """ONNX Runtime Web's `dist` folder: the one given, else the version the client's lock file pins, installed once
    with `npm ci` into Pilah's cache (the only step that needs Node.js)."""
    if given is not None:
        missing = [name for name in (RUNTIME_MODULE, RUNTIME_BINARY) if not (given / name).is_file()]
        if missing:
            raise UsageError(f"--runtime {given.name}: not an onnxruntime-web dist folder (no {', '.join(missing)})")
        return given
    lock = client_dir() / "package-lock.json"
    folder = cache_dir() / "web-runtime" / hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    dist = folder / "node_modules" / RUNTIME_PACKAGE / "dist"
    if (dist / RUNTIME_BINARY).is_file():
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise UsageError(
            "pilah web build needs Node.js and npm once, to fetch onnxruntime-web (pinned by package-lock.json); "
            "install Node.js, or pass --runtime DIR (an onnxruntime-web dist folder)",
            "npm_missing",
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(client_dir() / name, folder / name)
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (dist / RUNTIME_BINARY).is_file():
        raise UsageError(f"npm ci could not install {RUNTIME_PACKAGE}: {done.stderr.strip()[-500:]}", "npm_failed")
    return dist


def _gzip(data: bytes) -> bytes:
    """Gzipped with no timestamp: the same input makes the same bytes (and the same service-worker version)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _icon(size: int) -> Image.Image:
    """Pilah's icon: a white bin with a lid on green, drawn here so that no binary is kept in the repository."""
    image = Image.new("RGB", (size, size), ICON_GREEN)
    draw = ImageDraw.Draw(image)
    unit = size / 16
    draw.rounded_rectangle([5 * unit, 6 * unit, 11 * unit, 13 * unit], radius=unit, fill="white")
    draw.rectangle([4 * unit, 4.5 * unit, 12 * unit, 5.5 * unit], fill="white")
    draw.rectangle([7 * unit, 3.5 * unit, 9 * unit, 4.5 * unit], fill="white")
    for x in (6.8, 8, 9.2):
        draw.line([x * unit, 7.5 * unit, x * unit, 11.5 * unit], fill=ICON_GREEN, width=max(1, round(unit / 2)))
    return image


def _regions() -> dict:
    """Every guidance pack, resolved as the app shows it: per class and language, the advice; the safe default."""
    found = {}
    for region in guidance.regions():
        pack = guidance.pack(region)
        found[region] = {
            "name": {language: guidance.region_name(region, language) for language in guidance.LANGUAGES},
            "unsure": {
                language: guidance.when_unsure(region, language).model_dump() for language in guidance.LANGUAGES
            },
            "classes": {
                label: {language: guidance.advice(label, region, language).to_dict() for language in guidance.LANGUAGES}
                for label in pack.classes
            },
            "class_of_stream": {stream: guidance.class_of_stream(region, stream) for stream in pack.streams},
        }
    return found


def _image_size(card: ModelCard) -> int:
    """The model's input side, from the card's `input.size` (the training default for older cards)."""
    size = (card.model_extra or {}).get("input", {}).get("size")
    return int(size[0]) if size else DataConfig().image_size


def _card_block(card: ModelCard, bank: np.ndarray | None) -> dict:
    """What the page needs of the model card: the calibration, the grades, the open-set score and the self-check."""
    block = {
        "name": card.name,
        "classes": list(card.classes),
        "temperature": card.temperature,
        "flip_tta": card.flip_tta,
        "uncertain_below": card.uncertain_below,
        "likely_margin": card.grades.likely_margin,
        "two_from": card.grades.two_from,
        "self_check": {
            "tolerance": card.self_check["tolerance"],
            "novelty_tolerance": NOVELTY_TOLERANCE,
            "photos": card.self_check["photos"],
        },
        "open_set": None,
    }
    if bank is not None:
        open_set = card.open_set
        block["open_set"] = {
            "k": int(open_set["k"]),
            "threshold": float(open_set["threshold"]),
            "typical_up_to": float(open_set["typical_up_to"]),
            "rows": int(bank.shape[0]),
            "dims": int(bank.shape[1]),
            "bank": BANK_FILE,
        }
    return block


def _checked_card(model: Path) -> ModelCard:
    if model.suffix.lower() != ".onnx":
        raise UsageError(f"{model.name}: the browser runs ONNX models; export one with pilah export --format onnx")
    card = read_card(model)
    if not card.self_check or not card.self_check.get("photos"):
        raise UsageError(f"{model.name}: its model card has no self-check answers, which the page must compare")
    if card.open_set and card.open_set.get("method") != METHOD:
        raise UsageError(f"{model.name}: unknown open-set method {card.open_set.get('method')!r}")
    return card


def _page_files() -> dict[str, bytes]:
    """The page as written in `resources/web`, and its icons."""
    files = {name: (client_dir() / name).read_bytes() for name in CLIENT_FILES}
    for size in ICON_SIZES:
        png = io.BytesIO()
        _icon(size).save(png, format="PNG", optimize=True)
        files[f"icons/icon-{size}.png"] = png.getvalue()
    return files


def _model_files(model: Path, bank: np.ndarray | None, dist: Path, runtime_version: str) -> dict[str, bytes]:
    """The runtime, the model and its bank (the large ones gzipped) and the example photos."""
    files = {
        f"ort/{RUNTIME_MODULE}": (dist / RUNTIME_MODULE).read_bytes(),
        f"ort/{RUNTIME_BINARY}.gz": _gzip((dist / RUNTIME_BINARY).read_bytes()),
        "ort/NOTICE.txt": RUNTIME_NOTICE.format(version=runtime_version).encode(),
        f"model/{model.name}.gz": _gzip(page_graph(model)),
    }
    if bank is not None:
        files[BANK_FILE] = _gzip(np.ascontiguousarray(bank).tobytes())
    files |= {f"examples/{path.name}": path.read_bytes() for path in example_photos()}
    return files


def _site_json(model: Path, card: ModelCard, bank: np.ndarray | None, runtime_version: str, check_id: str) -> bytes:
    site = {
        "pilah_version": __version__,
        # What the page's self-check depends on besides its card: the runtime, the model, its bank, the page's own
        # code, the example photos. A browser keeps a passed check under it (with the card and its own name).
        "check_id": check_id,
        "model": {
            "file": f"model/{model.name}.gz",
            "source_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
            "image_size": _image_size(card),
            "features_output": EMBEDDING_OUTPUT,
        },
        "runtime": {"version": runtime_version, "wasm": f"ort/{RUNTIME_BINARY}.gz"},
        "card": _card_block(card, bank),
        "limits": {
            "max_upload_mb": DEFAULT_MAX_UPLOAD_MB,
            "max_pixels": DEFAULT_MAX_PIXELS,
            "min_side": MIN_SIDE,
            "max_aspect_ratio": MAX_ASPECT_RATIO,
        },
        "texts": {language: read_yaml("texts.yaml")[language] for language in guidance.LANGUAGES},
        "regions": _regions(),
        "default_region": guidance.DEFAULT_REGION,
        "examples": [f"examples/{path.name}" for path in example_photos()],
    }
    return json.dumps(site, ensure_ascii=False, separators=(",", ":")).encode()


def _digest(files: dict[str, bytes]) -> str:
    """16 hex digits that change when any of `files` (names or bytes) changes."""
    each = b"".join(name.encode() + hashlib.sha256(files[name]).digest() for name in sorted(files))
    return hashlib.sha256(each).hexdigest()[:16]


def _with_worker(files: dict[str, bytes]) -> dict[str, bytes]:
    """The service worker, told every other file of the site and a version that changes with any of them."""
    precached = ["./", *sorted(name for name in files if name != "sw.js")]
    version = _digest(files)
    worker = files["sw.js"].decode().replace("__VERSION__", version).replace("__FILES__", json.dumps(precached))
    return files | {"sw.js": worker.encode()}


def _write_site(files: dict[str, bytes], out: Path) -> None:
    """All files into a hidden folder beside `out`, which then replaces it: never half a site."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pilah-site-", dir=out.parent))
    try:
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_site(out: Path, model: Path | None = None, runtime: Path | None = None) -> Site:
    """Write the site into `out` (created, or replaced when it holds an earlier site) and say what it holds."""
    model = Path(model) if model else bundled_model()
    card = _checked_card(model)
    if out.exists() and any(out.iterdir()) and not (out / SITE_MARKER).is_file():
        raise UsageError(f"{out}: not empty and not a Pilah site; choose an empty or new folder")
    dist = runtime_dist(runtime)
    runtime_version = json.loads((dist.parent / "package.json").read_text())["version"]
    bank = None
    if card.open_set:
        bank = np.load(model.with_name(card.open_set["bank"]), allow_pickle=False).astype("<f2")
    files = _page_files() | _model_files(model, bank, dist, runtime_version)
    check_id = _digest({name: data for name, data in files.items() if name != "sw.js"})  # the worker names it later
    files[SITE_MARKER] = _site_json(model, card, bank, runtime_version, check_id)
    files = _with_worker(files)
    _write_site(files, out)
    return Site(folder=out, files={name: len(data) for name, data in files.items()}, runtime_version=runtime_version)
