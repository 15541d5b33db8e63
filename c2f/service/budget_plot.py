"""The status page's equal-memory plot: the points of ``benchmarks/budget.py`` (served Recall@20 against served
embedding bytes, one per method and budget) with the served model's own point, as SVG geometry.

The results are read from ``settings.budget_results`` (the benchmark's ``OUT/results`` directory of JSON files) when it
is set; at most :data:`MAX_FILES` files of at most :data:`MAX_FILE_BYTES` each are read, so a large or hostile
directory costs the page a bounded amount of work. Nothing here touches the request path of the API.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MAX_FILES = 500
MAX_FILE_BYTES = 1 << 20
# plot area in SVG user units
WIDTH, HEIGHT = 880, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 16, 44
COLOURS = {"ud": "#4e79a7", "hash": "#f28e2b", "qr": "#e15759", "legcf": "#76b7b2", "c2f": "#59a14f"}


def read_points(directory: Path) -> list[dict[str, Any]]:
    """``[{"method", "budget", "bytes", "recall", "counts"}]`` of the fitted runs in ``directory`` (unreadable
    files skipped)."""
    points: list[dict[str, Any]] = []
    files = sorted(directory.glob("*.json"))[:MAX_FILES] if directory.is_dir() else []
    for path in files:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            run = json.loads(path.read_text())
            if run.get("fits"):
                points.append(
                    {
                        "method": str(run["method"]),
                        "budget": float(run["budget"]),
                        "bytes": int(run["bytes"]),
                        "recall": float(run["served"]["recall@20"]),
                        "counts": str(run.get("counts", "stored")),  # bytes stored, or held by serving
                    }
                )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return [p for p in points if p["bytes"] > 0 and math.isfinite(p["recall"])]


def geometry(points: list[dict[str, Any]], served: dict[str, Any] | None) -> dict[str, Any] | None:
    """SVG coordinates: x = log10(bytes), y = Recall@20, for the benchmark's points and ``served`` (``{"bytes",
    "recall"}``, the served model). None without benchmark points."""
    if not points:
        return None
    everything = points + ([served] if served else [])
    lo = math.log10(min(p["bytes"] for p in everything))
    hi = math.log10(max(p["bytes"] for p in everything))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    top = max(p["recall"] for p in everything) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def place(p: dict[str, Any]) -> dict[str, Any]:
        x = LEFT + plot_w * (math.log10(p["bytes"]) - lo) / (hi - lo)
        y = TOP + plot_h * (1.0 - p["recall"] / top)
        return {**p, "x": round(x, 1), "y": round(y, 1), "colour": COLOURS.get(p["method"], "#888888")}

    ticks = [
        {"x": round(LEFT + plot_w * (e - lo) / (hi - lo), 1), "label": _bytes_label(10**e)}
        for e in range(math.ceil(lo), math.floor(hi) + 1)
    ]
    methods = sorted({p["method"] for p in points}, key=lambda m: (list(COLOURS).index(m) if m in COLOURS else 99, m))
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "right": WIDTH - RIGHT,
        "points": [place(p) for p in points],
        "served": place({**served, "method": "served"}) if served else None,
        "x_ticks": ticks,
        "y_ticks": [
            {"y": round(TOP + plot_h * (1.0 - v / top), 1), "label": f"{v:.2f}"}
            for v in (top * k / 4 / 1.1 for k in range(0, 5))
        ],
        "legend": [{"method": m, "colour": COLOURS.get(m, "#888888")} for m in methods],
    }


def _bytes_label(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value:g} B"
