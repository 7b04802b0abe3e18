"""The results cell every chapter ends with: one JSON object with headline metrics and context."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from . import settings


class Stopwatch:
    """Wall-clock time since construction (``elapsed`` in seconds)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _plain(value: Any) -> Any:
    """Turn tensors / NumPy scalars / nested containers into JSON-serialisable values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"a headline metric is {value}; a results cell must report finite numbers"
            )
        # five significant digits: 6.1e-08 stays 6.1e-08, and no number between 1e-4 and 1e-3
        # is shown with nine decimals (0.000442743 -> 0.00044274)
        return float(f"{value:.5g}")
    return value


def chapter_results(chapter: str, metrics: dict[str, Any], stopwatch: Stopwatch) -> dict[str, Any]:
    """Assemble the chapter's results: its metrics plus mode, device, versions and wall time."""
    info = settings.info()
    return {
        "chapter": chapter,
        "metrics": _plain(metrics),
        "mode": info["mode"],
        "device": info["device"],
        "device_name": info["device_name"],
        "versions": info["versions"],
        "wall_time_s": round(stopwatch.elapsed, 1),
    }


def show_results(chapter: str, metrics: dict[str, Any], stopwatch: Stopwatch) -> dict[str, Any]:
    """Display the results as one ``application/json`` output (and return them)."""
    from IPython.display import display

    results = chapter_results(chapter, metrics, stopwatch)
    json.dumps(results)  # fail here, not in the front end, if something is not serialisable
    display({"application/json": results, "text/plain": json.dumps(results, indent=1)}, raw=True)
    return results
