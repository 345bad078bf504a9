"""The few statistics the benchmark reports: percentiles, medians, and runs folded into one."""

from __future__ import annotations

import statistics
from typing import Any

RAW = ("latencies", "direct")  # per-turn times a target returns, kept out of results.json


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def combine(runs: list[dict[str, Any]], take_max: tuple[str, ...] = ()) -> dict[str, Any]:
    """Numbers: median over runs (max for `take_max`); anything else from the first run."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if key in RAW:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [float(r[key]) for r in runs]
            out[key] = max(values) if key in take_max else statistics.median(values)
            if isinstance(value, int) and key not in take_max:
                out[key] = round(out[key])
        else:
            out[key] = value
    if "errors" in runs[0]:
        out["errors"] = sum(int(r["errors"]) for r in runs)  # every error counts
    return out


def combine_ramp(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A ramp's levels, each combined over runs; its best rate."""
    levels = [
        combine([r["levels"][i] for r in runs])
        | {"errors": sum(r["levels"][i]["errors"] for r in runs)}
        for i in range(len(runs[0]["levels"]))
    ]
    return {"levels": levels, "max_rate": max(lv["rate"] for lv in levels)}
