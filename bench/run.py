"""Measure the proxy's performance (issue "Performance").

    make bench                        # full run (about 13 minutes on 2 cores)
    make bench BENCH_ARGS=--quick     # short run (about 1-2 minutes), fewer samples

Starts its own redis-server, its own fake OpenAI upstream (``bench/upstream.py``, a separate
process with a fixed latency) and the real server process (``python -m functions_framework``,
one worker per core and THREADS=250 unless given, as `make run` and `deploy.sh --cpu N` on an
N-CPU instance configure it).
Load comes from Python threads, each with its own keep-alive ``http.client`` connection.
Writes ``bench/results.json``, ``bench/results.png`` and ``BENCHMARKS.md``.

This module runs the targets and keeps their results; the rest of ``bench/`` measures and
reports. Measuring: ``rig.py`` (the processes), ``client.py`` and ``load.py`` (the load),
``latency.py`` (targets 0, 1, 7), ``throughput.py`` (2, 3, 6), ``long_chat.py`` (4),
``branches.py`` (8), ``resend.py`` (9), ``response_latency.py`` (10), ``response_chain.py``
(11), ``item_pages.py`` (12), ``compaction_turns.py`` (13), ``export_memory.py`` (14),
``cli_import.py`` (15), ``seeding.py`` (the chats of 4, 8, 9, 11, 13b and 14),
``cold_start.py`` (5), ``instructions.py`` (callgrind counts). Reporting: the prose is
``templates/benchmarks.md`` and ``templates/parts.md``; ``report.py`` fills them in with the
results table (``table.py``) and the paragraphs a run has numbers for (``sections.py``);
``chart.py`` draws ``results.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import instructions  # noqa: E402
from bench.baseline import describe  # noqa: E402
from bench.branches import t8_branches  # noqa: E402
from bench.chart import write_chart  # noqa: E402
from bench.cli_import import t15_cli_import  # noqa: E402
from bench.cold_start import t5_cold_start  # noqa: E402
from bench.compaction_turns import t13_compaction  # noqa: E402
from bench.export_memory import t14_export_memory  # noqa: E402
from bench.item_pages import t12_item_pages  # noqa: E402
from bench.latency import BUSY_STREAM_WORD_S, t0_floor, t1_added_latency, t7_stream_ttfb  # noqa: E402
from bench.long_chat import t4_long_chat  # noqa: E402
from bench.machine import cpu_ticks, machine, stolen_pct, versions  # noqa: E402
from bench.report import print_table, write_report  # noqa: E402
from bench.resend import t9_resend  # noqa: E402
from bench.response_chain import t11_response_chain  # noqa: E402
from bench.response_latency import t10_response_latency  # noqa: E402
from bench.rig import COROUTINE_HANDLER, NAIVE_HANDLER, Rig, Upstream  # noqa: E402
from bench.stats import RAW, combine, combine_ramp  # noqa: E402
from bench.throughput import t2_concurrent, t3_saturation, t6_rss  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402

RUN_THREADS = 250  # what `make run` and deploy.sh (--concurrency) configure
PER_CORE = os.cpu_count() or 1  # `make run`'s WORKERS, and deploy.sh's on a PER_CORE-CPU instance
RESULTS_JSON = ROOT / "bench" / "results.json"
CHART = ROOT / "bench" / "results.png"
REPORT = ROOT / "BENCHMARKS.md"


def ti_instructions(rig: Rig) -> dict[str, Any]:
    """Instructions per turn of the proxy and the lean handler (bench/instructions.py)."""
    rig.flush()
    upstream = Upstream(0.0)
    try:
        return instructions.count_all(upstream.url, rig.redis.url, rig.workdir)
    finally:
        upstream.stop()


@dataclass
class Steps:
    """The targets' results as they come in, run by run, and the CPU time stolen meanwhile."""

    only: set[str] | None
    per_run: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    steal: dict[str, list[float]] = field(default_factory=dict)

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        """Run target `name` (unless `--only` leaves it out) and keep its result."""
        if self.only and name[1:] not in self.only:
            return
        t0, ticks = time.perf_counter(), cpu_ticks()
        result = fn()
        self.steal.setdefault(name, []).append(stolen_pct(ticks, cpu_ticks()))
        self.per_run.setdefault(name, []).append(result)
        shown = {k: v for k, v in result.items() if k not in RAW}
        print(f"[{name}] {time.perf_counter() - t0:5.1f} s  {shown}", flush=True)


def measure(rig: Rig, steps: Steps, runs: int, quick: bool) -> None:
    """Every target, `runs` times over (cold start and instruction counts once)."""
    step, per_run = steps.step, steps.per_run
    n1 = 100 if quick else 300
    load_s = 5.0 if quick else 15.0
    ramp_s = 2.0 if quick else 4.0
    n4 = 30 if quick else 100
    n7 = 50 if quick else 150
    for run in range(runs):
        print(f"--- run {run + 1}/{runs}", flush=True)
        step("t0", lambda: t0_floor(rig, n1))
        step("t1", lambda: t1_added_latency(rig, n1))
        direct_ms = per_run["t1"][-1]["direct_median_ms"] if "t1" in per_run else 0.5
        step("t2", lambda: t2_concurrent(rig, 200, load_s, 1.0))
        ramp = partial(t3_saturation, rig, ramp_s, direct_ms)
        step("t3", ramp)
        step("t3b", partial(ramp, 1))
        step("t3n", partial(ramp, None, NAIVE_HANDLER))
        step("t3c", partial(ramp, 1, COROUTINE_HANDLER))
        step("t4", lambda: t4_long_chat(rig, n4, 10_000))
        step("t8", lambda: t8_branches(rig, n4, 1_000, 50))
        step("t9", lambda: t9_resend(rig, n4, 200))
        step("t10", lambda: t10_response_latency(rig, n1))
        step("t11", lambda: t11_response_chain(rig, n1, 1_000))
        step("t12", lambda: t12_item_pages(rig, n1))
        step("t13", lambda: t13_compaction(rig, n1, n4, 1_000))
        step("t6", lambda: t6_rss(rig, 200, 2.0, 4.0 if quick else 6.0))
        step("t7", lambda: t7_stream_ttfb(rig, n7))
        step("t7w", lambda: t7_stream_ttfb(rig, n7, BUSY_STREAM_WORD_S))
    # Once: a peak of memory, and a command that runs for many seconds.
    step("t14", lambda: t14_export_memory(rig, *((200, 2_000) if quick else (1_000, 10_000))))
    step("t15", lambda: t15_cli_import(rig, 200 if quick else 1_000))
    step("t5", lambda: t5_cold_start(rig, 3))  # itself the median of 3 starts
    if instructions.available():  # counted once: the count does not vary
        step("ti", lambda: ti_instructions(rig))


def results_of(
    steps: Steps, args: argparse.Namespace, runs: int, began: float, began_ticks: tuple[int, int]
) -> dict[str, Any]:
    """What results.json holds: the run, the machine, and each target's results over the runs."""
    per_run = steps.per_run
    return {
        "command": "make bench" + (" BENCH_ARGS=--quick" if args.quick else ""),
        "mode": "--quick" if args.quick else "full",
        "runs": runs,
        "workers": args.workers,
        "threads_label": f"THREADS={args.threads}",
        "machine": machine(),
        "versions": versions(),
        "finished": time.time(),
        "elapsed_s": time.time() - began,
        "steal_pct": stolen_pct(began_ticks, cpu_ticks()),
        "steal_by_target": {name: max(values) for name, values in steps.steal.items()},
        "t0": combine(per_run["t0"]),
        "t1": combine(per_run["t1"]),
        "t2": combine(per_run["t2"]),
        "t3": combine_ramp(per_run["t3"]),
        "t3b": combine_ramp(per_run["t3b"]) | {"workers": 1},
        "t3n": combine_ramp(per_run["t3n"]),
        "t3c": combine_ramp(per_run["t3c"]) | {"workers": 1},
        "t4": combine(per_run["t4"]),
        "t5": per_run["t5"][0],
        "t6": combine(per_run["t6"], take_max=("peak_mb", "idle_mb")),
        "t7": combine(per_run["t7"]),
        "t7w": combine(per_run["t7w"]),
        "t8": combine(per_run["t8"]),
        "t9": combine(per_run["t9"]),
        "t10": combine(per_run["t10"]),
        "t11": combine(per_run["t11"]),
        "t12": combine(per_run["t12"]),
        "t13": combine(per_run["t13"]),
        "t14": per_run["t14"][0],
        "t15": per_run["t15"][0],
        "ti": per_run["ti"][0] if "ti" in per_run else None,
        "per_run": {
            k: [{kk: vv for kk, vv in x.items() if kk not in RAW} for x in v]
            for k, v in per_run.items()
        },
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, 1 run (≈ 1-2 min)")
    parser.add_argument("--runs", type=int, help="repeated runs per target (default 3, quick 1)")
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("WORKERS", "0")) or PER_CORE
    )
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("THREADS", "0")) or RUN_THREADS
    )
    parser.add_argument("--only", help="comma-separated targets to run, e.g. 1,3 (no report)")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from bench/results.json"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the proxy: rows 1 and 7 take turns with it (bench/baseline.py)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.report_only:
        report(json.loads(RESULTS_JSON.read_text()))
        return
    runs = args.runs or (1 if args.quick else 3)
    steps = Steps(set(args.only.split(",")) if args.only else None)
    began, began_ticks = time.time(), cpu_ticks()
    with tempfile.TemporaryDirectory(prefix="chatproxy-bench-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir / "redis").start()
        try:
            rig = Rig(workdir, redis, args.threads, args.workers)
            rig.baseline = args.baseline.resolve() / "main.py" if args.baseline else None
            measure(rig, steps, runs, args.quick)
        finally:
            redis.stop()
    if steps.only:
        return
    results = results_of(steps, args, runs, began, began_ticks)
    if args.baseline:
        results["baseline"] = describe(args.baseline)
    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    report(results)


def report(results: dict[str, Any]) -> None:
    """Write the chart and BENCHMARKS.md, and print the table."""
    write_chart(results, CHART)
    write_report(results, REPORT)
    print()
    print_table(results)
    print(f"\nwrote {REPORT.name}, bench/{CHART.name}, bench/{RESULTS_JSON.name}")


if __name__ == "__main__":
    main()
