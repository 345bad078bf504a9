"""Write BENCHMARKS.md from a run's results: ``bench/templates/benchmarks.md`` holds the prose,
this module the numbers it shows and which optional paragraphs (``bench/sections.py``) go in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import sections
from bench.baseline import baseline_lines
from bench.goals import ISSUE_NAIVE_MS, ISSUE_NAIVE_RATE
from bench.render import document, part
from bench.table import missed, rows, table_lines


def render_report(r: dict[str, Any]) -> str:
    """The whole of BENCHMARKS.md for the results `r`."""
    mach = r["machine"]
    return document(
        command=r["command"],
        mode=r["mode"],
        runs=r["runs"],
        written=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r["finished"])),
        elapsed=f"{r['elapsed_s']:.0f}",
        quick=["", *part("quick")] if r["mode"] == "--quick" else [],
        rows=table_lines(r),
        baseline=["", *baseline_lines(r)] if "baseline" in r else [],
        nproc=mach["nproc"],
        cpu=mach["cpu"],
        python=mach["python"],
        os=mach["os"],
        redis_server=mach["redis-server"],
        packages=", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        stolen=sections.stolen_lines(r),
        workers=r["workers"],
        lean_method=sections.lean_method(r),
        issue_naive_ms=f"{ISSUE_NAIVE_MS:g}",
        issue_naive_rate=ISSUE_NAIVE_RATE,
        instructions=sections.instruction_lines(r),
        not_met=" (targets not met)" if missed(r) else "",
        machine_speed=sections.machine_speed(r),
        costs=sections.cost_lines(r),
        load=sections.load_lines(r),
        responses=sections.response_lines(r),
        floor=sections.floor_lines(r),
    )


def write_report(r: dict[str, Any], path: Path) -> None:
    path.write_text(render_report(r))


def print_table(r: dict[str, Any]) -> None:
    """The results table on the terminal."""
    for a, b, c, d in rows(r):
        print(f"{a:<70} {b:<45} {c}  {d}")
