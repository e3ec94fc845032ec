"""Every kind of input the decoder must handle, made as real files by the test."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_inputs import corpus, encode
from pilah.errors import ImageError
from pilah.images import load_rgb, open_image

SIZE = 32


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    decoded = open_image(encode(wide, "JPEG", exif=exif.tobytes()))
    assert decoded.size == (20, 40)


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (SIZE, SIZE), (255, 0, 0, 0))
    assert load_rgb(encode(clear, "PNG"), SIZE)[0, 0].tolist() == [255, 255, 255]
    half = Image.new("LA", (SIZE, SIZE), (0, 128))
    value = load_rgb(encode(half, "PNG"), SIZE)[0, 0]
    assert 120 <= value[0] <= 135 and len(set(value.tolist())) == 1


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1"])
def test_other_modes_become_rgb(mode: str):
    image = Image.new("RGB", (SIZE, SIZE), (10, 200, 30)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    array = load_rgb(encode(image, fmt), SIZE)
    assert array.shape == (SIZE, SIZE, 3) and array.dtype == np.uint8


def test_sixteen_bit_grayscale_keeps_its_range():
    ramp = (np.linspace(0, 65535, SIZE * SIZE).reshape(SIZE, SIZE)).astype(np.uint16)
    array = load_rgb(encode(Image.fromarray(ramp), "PNG"), SIZE)
    assert array.min() < 10 and array.max() > 245  # scaled, not clipped to white


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (SIZE, SIZE), color) for color in ("blue", "yellow")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    r, _, b = load_rgb(data, SIZE)[0, 0].tolist()
    assert b > 200 and r < 50


def test_accepts_paths_files_pil_and_arrays(tmp_path: Path):
    image = Image.new("RGB", (50, 40), (1, 2, 3))
    path = tmp_path / "x.webp"
    image.save(path, lossless=True)
    expected = load_rgb(image, SIZE)
    for source in (path, str(path), path.read_bytes(), open(path, "rb"), np.asarray(image)):  # noqa: SIM115
        assert np.array_equal(load_rgb(source, SIZE), expected)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello, this is text", "not_an_image"),
        (b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF", "not_an_image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not_an_image"),
    ],
)
def test_non_images_get_a_reason(data: bytes, reason: str):
    with pytest.raises(ImageError) as caught:
        open_image(data)
    assert caught.value.code == reason


@pytest.mark.parametrize("name", sorted(corpus()))
def test_every_bad_upload_gets_its_reason(name: str):
    data, reason = corpus()[name]
    with pytest.raises(ImageError) as caught:
        load_rgb(data, SIZE)
    assert caught.value.code == reason


def test_truncated_jpeg_is_corrupt():
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError) as caught:
        open_image(data[: len(data) // 2])
    assert caught.value.code == "corrupt"


def test_pixel_limit_refuses_before_decoding():
    data = encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(ImageError) as caught:
        open_image(data, max_pixels=1_000_000)
    assert caught.value.code == "too_large"


@pytest.mark.parametrize(
    ("size", "reason"), [((1, 1), "too_small"), ((1000, 10), "too_small"), ((400, 30), "bad_aspect_ratio")]
)
def test_degenerate_shapes_are_refused(size, reason):
    with pytest.raises(ImageError) as caught:
        load_rgb(encode(Image.new("RGB", size), "PNG"), SIZE)
    assert caught.value.code == reason


def test_missing_file(tmp_path: Path):
    with pytest.raises(ImageError) as caught:
        open_image(tmp_path / "nothing.jpg")
    assert caught.value.code == "missing"


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares these dimensions (no pixel data): what a decompression bomb looks like before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (20000, 20000)])  # 64 MP, and 400 MP past Pillow's own
def test_one_message_for_every_image_over_the_pixel_limit(width: int, height: int):
    with pytest.raises(ImageError) as caught:
        open_image(png_header(width, height))
    message = str(caught.value)
    assert caught.value.code == "too_large" and "is over the limit of 50,000,000 pixels" in message
    assert "178,956,970" not in message and "178956970" not in message and ".;" not in message
    assert f"{width * height:,} pixels" in message or f"{width}x{height} pixels" in message
