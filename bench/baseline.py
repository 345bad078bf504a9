"""Another checkout of the proxy measured beside this one (``make bench BENCH_ARGS="--baseline
DIR"``): rows 1 and 7 take turns with it pair by pair in the same run, so a slow spell of the
machine falls on both alike, and its own last ``make bench`` (``DIR/bench/results.json``), if it
has one, is shown row by row beside this run's."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.render import line, part
from bench.table import rows


def describe(tree: Path) -> dict[str, Any]:
    """What results.json keeps of the baseline: its commit, and its own run's rows if any."""
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    found: dict[str, Any] = {"commit": commit}
    own = tree / "bench" / "results.json"
    if own.exists():
        results = json.loads(own.read_text())
        written = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results["finished"]))
        found["own_run"] = {"mode": results["mode"], "written": written, "rows": rows(results)}
    return found


def baseline_lines(r: dict[str, Any]) -> list[str]:
    """The report's "Before and after" section, when the run had a baseline."""
    base = r.get("baseline")
    if base is None:
        return []
    t1, t7 = r["t1"], r["t7"]
    lines = part(
        "baseline",
        commit=base["commit"],
        t1=f"{t1['median_ms']:.2f} / {t1['p99_ms']:.2f}",
        t1_base=f"{t1['baseline_median_ms']:.2f} / {t1['baseline_p99_ms']:.2f}",
        t7=f"{t7['added_median_ms']:.2f} / {t7['added_p99_ms']:.2f}",
        t7_base=f"{t7['baseline_median_ms']:.2f} / {t7['baseline_p99_ms']:.2f}",
    )
    own = base.get("own_run")
    if own is None:
        return lines
    theirs = {_number(target): measured for target, _, measured, _ in own["rows"]}
    table = [
        line("baseline_row", target=target, now=now, before=theirs.get(_number(target), "—"))
        for target, _, now, _ in rows(r)
    ]
    mode, written = own["mode"], own["written"]
    return lines + part(
        "baseline_own", commit=base["commit"], mode=mode, written=written, rows=table
    )


def _number(target: str) -> str:
    """A row's number ("1.", "3b."), which names it in both runs."""
    return target.split(" ", 1)[0]
