"""Exact and near duplicates: a 64-bit perceptual hash confirmed by a tiny colour thumbnail.

The functions work on plain arrays (one entry per image) and return groups of indices, so that the scan owns
the files and this module owns only the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

PHASH_SIZE = 8  # 8x8 low-frequency DCT coefficients -> 64 bits
PHASH_SAMPLE = 32  # the image is reduced to 32x32 gray before the DCT (as in the `imagehash` package)
THUMBNAIL_SIZE = 16


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n))


_DCT = _dct_matrix(PHASH_SAMPLE)


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash: signs of the 8x8 lowest DCT frequencies of a 32x32 gray copy, against their median."""
    gray = np.asarray(image.convert("L").resize((PHASH_SAMPLE, PHASH_SAMPLE), Image.Resampling.LANCZOS))
    low = (_DCT @ gray.astype(np.float64) @ _DCT.T)[:PHASH_SIZE, :PHASH_SIZE]
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def thumbnail(image: Image.Image) -> np.ndarray:
    """A tiny colour copy: pHash sees only gray shapes, so a brown and a green bottle can share it."""
    return np.asarray(image.resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BOX), dtype=np.uint8)


def near_pairs(
    hashes: np.ndarray, thumbnails: np.ndarray, max_distance: int, max_color_difference: float, chunk: int = 512
) -> Iterable[tuple[int, int]]:
    """Index pairs i < j that look alike: pHash within `max_distance` bits, then confirmed by the colour
    thumbnails differing by at most `max_color_difference` (mean absolute, 0-255 scale)."""
    thumbs = thumbnails.astype(np.int16)
    for start in range(0, len(hashes), chunk):
        distance = np.bitwise_count(hashes[start : start + chunk, None] ^ hashes[None, :])
        rows, cols = np.nonzero(distance <= max_distance)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if i < c and np.abs(thumbs[i] - thumbs[c]).mean() <= max_color_difference:
                yield i, c


def duplicate_groups(
    sha1s: list[str], hashes: np.ndarray, thumbnails: np.ndarray, max_distance: int, max_color_difference: float
) -> list[list[int]]:
    """Exact copies (same SHA-1) and near copies, joined transitively (union-find) into groups of 2 or more
    indices. `max_distance` -1 turns the near-copy search off."""
    parent = list(range(len(sha1s)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first_with_sha1: dict[str, int] = {}
    for i, sha1 in enumerate(sha1s):
        union(i, first_with_sha1.setdefault(sha1, i))
    if max_distance >= 0:
        for i, j in near_pairs(hashes, thumbnails, max_distance, max_color_difference):
            union(i, j)
    members: dict[int, list[int]] = {}
    for i in range(len(sha1s)):
        members.setdefault(find(i), []).append(i)
    return [group for group in members.values() if len(group) > 1]
