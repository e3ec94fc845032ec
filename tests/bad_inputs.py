"""A corpus of bad uploads, made by code: each with the `ImageError` reason Pilah must give it."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares width x height pixels (10 gigapixels by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b"")
    )


def heic() -> bytes:
    """The start of an iPhone HEIC photo: an ISO-BMFF `ftyp` box with the `heic` brand."""
    return struct.pack(">I", 24) + b"ftypheic" + bytes(4) + b"mif1heic" + bytes(256)


def corpus() -> dict[str, tuple[bytes, str]]:
    """file name -> (content, expected reason). Names lie on purpose: content decides."""
    jpeg = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    return {
        "zero.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "corrupt"),
        "bomb.png": (png_bomb(), "too_large"),
        "notes.jpg": (b"this is a text file, not a photo\n" * 10, "not_an_image"),
        "invoice.jpg": (b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF", "not_an_image"),
        "logo.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not_an_image"),
        "iphone.heic": (heic(), "unsupported"),
        "dot.png": (encode(Image.new("RGB", (1, 1)), "PNG"), "too_small"),
        "strip.png": (encode(Image.new("RGB", (10000, 10)), "PNG"), "too_small"),
        "banner.png": (encode(Image.new("RGB", (2000, 100)), "PNG"), "bad_aspect_ratio"),
    }
