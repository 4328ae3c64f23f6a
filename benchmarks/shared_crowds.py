"""Where the six real crowds the benchmarks measure on live: read in place from ``../shared/data``, never copied."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CROWDS = {
    "duck": SHARED / "crowd" / "duck",
    "product": SHARED / "crowd" / "product",
    "dog": SHARED / "crowd" / "dog",
    "face": SHARED / "crowd" / "face",
    "sentiment_polarity": SHARED / "crowd-items" / "sentiment_polarity",
    "labelme": SHARED / "crowd-items" / "labelme",
}
