"""Decode any image the way training saw it: one function for the scan, the data loader and inference."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pilah.errors import ImageError

ImageSource = str | Path | bytes | BinaryIO | Image.Image | np.ndarray

# Images above this many pixels are refused, not decoded (Pillow's bomb guard stays on above it).
DEFAULT_MAX_PIXELS = 50_000_000
# The largest photo file the app and the API accept (`pilah serve --max-upload-mb` changes the API's).
DEFAULT_MAX_UPLOAD_MB = 10
MEGABYTE = 1024 * 1024
# Names that say "photo" (a folder's other files are still tried by their bytes); the app's uploader offers these.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif")
# A photo narrower than this on one side, or stretched beyond this ratio, cannot be a waste photo
# the model understands; refusing it beats a confident wrong answer.
MIN_SIDE = 16
MAX_ASPECT_RATIO = 10.0

ImageFile.LOAD_TRUNCATED_IMAGES = False


def open_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode fully into RGB: EXIF orientation applied, alpha composited on white, first frame only."""
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    if isinstance(source, np.ndarray):
        return _from_array(source)
    data = _read_bytes(source)
    if not data:
        raise ImageError("the file is empty (0 bytes)", "empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit comes next
            image = Image.open(io.BytesIO(data))
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"{width}x{height} pixels is over the limit of {max_pixels:,} pixels", "too_large")
            image.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()
            return _to_rgb(image)
    except Image.DecompressionBombError as error:  # Pillow's own guard, above any sensible `max_pixels`: same words
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(pixels[1]):,} pixels" if pixels else "the image"
        raise ImageError(f"{size} is over the limit of {max_pixels:,} pixels", "too_large") from error
    except UnidentifiedImageError as error:
        if _is_heif(data):
            raise ImageError(
                "a HEIC/HEIF/AVIF photo, which this installation cannot decode; "
                "install pillow-heif or save the photo as JPEG",
                "unsupported",
            ) from error
        raise ImageError("not an image Pillow can decode (unknown or unsupported format)", "not_an_image") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"corrupt or truncated image: {error}", "corrupt") from error


def load_rgb(source: ImageSource, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 array of shape (size, size, 3), resized as training did (bilinear, aspect not kept)."""
    return to_array(open_image(source, max_pixels), size)


def to_array(image: Image.Image, size: int) -> np.ndarray:
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{width}x{height} pixels is too small (minimum side {MIN_SIDE} px)", "too_small")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageError(
            f"{width}x{height} is stretched beyond {MAX_ASPECT_RATIO:g}:1; crop to the object first", "bad_aspect_ratio"
        )
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """`batch` with all-zero images appended up to `size`: runtimes that compile one graph per input shape
    (TensorFlow, TFLite, XLA) then see a few shapes instead of one per batch size."""
    return np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])


IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_image(path: Path) -> bool:
    """By the first bytes, not the name: JPEG, PNG, GIF, BMP, TIFF, WebP or a HEIF container."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or _is_heif(head)


HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


def _is_heif(data: bytes) -> bool:
    """HEIF containers (iPhone photos) start with an ISO-BMFF `ftyp` box naming a HEIF brand."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def _register_optional_decoders() -> None:
    """Decode HEIC too where the optional `pillow-heif` package is installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()


_register_optional_decoders()


def _read_bytes(source: str | Path | bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | Path):
        try:
            return Path(source).read_bytes()
        except FileNotFoundError as error:
            raise ImageError(f"no such file: {source}", "missing") from error
        except IsADirectoryError as error:
            raise ImageError(f"a folder, not an image file: {source}", "not_a_file") from error
    return source.read()


def _to_rgb(image: Image.Image) -> Image.Image:
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits instead of clipping everything above 255 to white
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((array / peak * 255).round().astype(np.uint8))
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ImageError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {array.shape}", "bad_array")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).round().astype(np.uint8)
    return _to_rgb(Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array))


def check_upload_size(size: int, limit_bytes: int) -> None:
    """One rule for an uploaded photo's size, wherever it arrives (the app, the API, a kept correction)."""
    if size > limit_bytes:
        raise ImageError(f"the file is over the {limit_bytes:,}-byte limit", "too_large_upload")
