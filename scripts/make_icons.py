"""Draws the extension's icon at 16, 32 and 64 px into widget_api/static/widget/icon-N.png:
an envelope on the product's blue with a person badge. Pure standard library (zlib PNG),
anti-aliased by 4x4 supersampling. Usage: python scripts/make_icons.py"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "widget_api" / "static" / "widget"
SIZES = (16, 32, 64)
SAMPLES = 4
BLUE, WHITE, GREEN = (9, 105, 218), (255, 255, 255), (26, 127, 55)


def colour_at(x: float, y: float) -> tuple[tuple[int, int, int], float] | None:
    """The colour at (x, y) in a unit square, or None for transparent."""
    r = 0.18  # rounded corners of the tile
    cx, cy = min(max(x, r), 1 - r), min(max(y, r), 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return None
    # the person badge, bottom right: a green disc with a white head and shoulders
    bx, by, br = 0.74, 0.74, 0.22
    d2 = (x - bx) ** 2 + (y - by) ** 2
    if d2 <= br * br:
        if (x - bx) ** 2 + (y - (by - 0.06)) ** 2 <= 0.065**2:
            return WHITE, 1.0
        if y > by + 0.04 and (x - bx) ** 2 + (y - (by + 0.17)) ** 2 <= 0.12**2:
            return WHITE, 1.0
        return GREEN, 1.0
    if d2 <= (br + 0.05) ** 2:
        return BLUE, 1.0  # a ring of the tile's colour around the badge
    # the envelope: a white outline with its flap
    left, right, top, bottom, w = 0.16, 0.80, 0.26, 0.68, 0.075
    inside = left <= x <= right and top <= y <= bottom
    if inside and (x < left + w or x > right - w or y < top + w or y > bottom - w):
        return WHITE, 1.0
    if inside:
        # the flap: two lines from the top corners to the middle
        mx, my = (left + right) / 2, top + (bottom - top) * 0.55
        for x0, y0 in ((left, top), (right, top)):
            dx, dy = mx - x0, my - y0
            t = max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy)))
            if ((x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2) ** 0.5 < w / 2:
                return WHITE, 1.0
    return BLUE, 1.0


def render(size: int) -> bytes:
    rows = []
    n = size * SAMPLES
    for py in range(size):
        row = bytearray([0])  # filter: none
        for px in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    hit = colour_at((px * SAMPLES + sx + 0.5) / n, (py * SAMPLES + sy + 0.5) / n)
                    if hit:
                        (cr, cg, cb), a = hit
                        acc[0] += cr * a
                        acc[1] += cg * a
                        acc[2] += cb * a
                        acc[3] += a
            coverage = acc[3] / SAMPLES**2
            rgb = [int(round(c / acc[3])) if acc[3] else 0 for c in acc[:3]]
            row += bytes([*rgb, int(round(coverage * 255))])
        rows.append(bytes(row))
    return png(size, b"".join(rows))


def png(size: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main() -> int:
    for size in SIZES:
        (OUT / f"icon-{size}.png").write_bytes(render(size))
        print(OUT / f"icon-{size}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
