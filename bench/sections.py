"""The report's paragraphs that depend on what a run measured: each picks its parts of
``bench/templates/parts.md`` and the numbers they show, or nothing when the run lacks them."""

from __future__ import annotations

from typing import Any

from bench.goals import (
    GOAL_ADDED_MS,
    GOAL_ADDED_P99_MS,
    GOAL_CHATS_RATE,
    GOAL_PAGE_RATIO,
    GOAL_RATE,
    GOAL_RESPONSE_MS,
    GOAL_STREAM_MS,
    ISSUE_NAIVE_MS,
    ISSUE_NAIVE_RATE,
)
from bench.latency import BUSY_STREAM_WORD_S, STREAM_WORD_S, reply_ms
from bench.load import BLOCK_PAIRS, REWARM_PAIRS
from bench.render import part
from bench.table import missed, per_run

HANDLERS = {"proxy": "the proxy", "coroutine": "the coroutine handler", "lean": "the lean handler"}


def stolen_lines(r: dict[str, Any]) -> list[str]:
    """The machine's stolen CPU time during the run, if the run recorded it."""
    if "steal_pct" not in r:
        return []
    worst = ", ".join(f"{k[1:]}: {v:.0f}%" for k, v in r["steal_by_target"].items())
    return part("stolen", steal=f"{r['steal_pct']:.1f}", worst=worst)


def lean_method(r: dict[str, Any]) -> list[str]:
    """How rows 1 and 7 time the two floors, if this run did."""
    if "lean_median_ms" not in r["t1"]:
        return []
    return part("lean_method", block=BLOCK_PAIRS, rewarm=REWARM_PAIRS)


def instruction_lines(r: dict[str, Any]) -> list[str]:
    """The instruction counts, which do not change with the machine's speed or load."""
    counts = r.get("ti")
    if not counts:
        missing = "valgrind was not installed" if "ti" in r else "this run did not count them"
        return part("not_counted", missing=missing)
    cases = [("a turn (row 1's)", ""), ("a streamed turn, to its last event", "_stream")]
    kinds = [name for name in HANDLERS if name in counts]
    rows = [
        f"| {label} | {where} | "
        + " | ".join(f"{counts[kind + suffix][key] / 1e3:,.0f}K" for kind in kinds)
        + " |"
        for label, suffix in cases
        for where, key in (("server process", "server"), ("redis-server", "redis"))
    ]
    heads = " | ".join(HANDLERS[kind] for kind in kinds)
    return part("instructions", heads=heads, columns="---|" * len(kinds), rows=rows)


def machine_speed(r: dict[str, Any]) -> list[str]:
    """How this machine compares with the issue's, by the naive handler run here too."""
    if "naive_median_ms" not in r["t1"] or "t3n" not in r:
        return []
    naive_ms, naive_rate = r["t1"]["naive_median_ms"], r["t3n"]["max_rate"]
    pace = (
        "slower than"
        if naive_ms > ISSUE_NAIVE_MS and naive_rate < ISSUE_NAIVE_RATE
        else "faster than"
        if naive_ms < ISSUE_NAIVE_MS and naive_rate > ISSUE_NAIVE_RATE
        else "neither faster nor slower than"
    )
    numbers = {
        "issue_ms": f"{ISSUE_NAIVE_MS:g}",
        "issue_rate": ISSUE_NAIVE_RATE,
        "naive_ms": f"{naive_ms:.1f}",
        "naive_rate": f"{naive_rate:.0f}",
    }
    lines = part(
        "machine_speed",
        pace=pace,
        share=f"{r['t1']['median_ms'] / naive_ms:.0%}",
        times=f"{r['t3b']['max_rate'] / naive_rate:.1f}",
        **numbers,
    )
    scaled = scaled_rows(r, naive_ms, naive_rate)
    return [*lines, "", *part("scaled", rows=scaled, **numbers)] if scaled else lines


def scaled_rows(r: dict[str, Any], naive_ms: float, naive_rate: float) -> list[str]:
    """The rows that miss their goals, scaled to the issue's machine by the naive handler."""
    t1, t7 = r["t1"], r["t7"]
    ms_rows = [
        ("1. added latency, median", GOAL_ADDED_MS, t1["median_ms"]),
        ("1. added latency, p99", GOAL_ADDED_P99_MS, t1["p99_ms"]),
        ("7. first streamed text, median", GOAL_STREAM_MS, t7["added_median_ms"]),
    ]
    if "t10" in r:
        ms_rows.append(
            ("10. a response after another, median", GOAL_RESPONSE_MS, r["t10"]["median_ms"])
        )
    rate_rows = (
        (f"3. saturation, WORKERS={r['workers']}", r["t3"]["max_rate"]),
        (f"3b. saturation, WORKERS={r['t3b']['workers']}", r["t3b"]["max_rate"]),
    )
    return [
        *(
            f"| {name} | ≤ {goal:g} ms | {value:.2f} ms "
            f"| {value * ISSUE_NAIVE_MS / naive_ms:.2f} ms |"
            for name, goal, value in ms_rows
            if value > goal
        ),
        *(
            f"| {name} | ≥ {GOAL_RATE} turns/s | {value:.0f} turns/s "
            f"| {value * ISSUE_NAIVE_RATE / naive_rate:.0f} turns/s |"
            for name, value in rate_rows
            if value < GOAL_RATE
        ),
    ]


def floor_lines(r: dict[str, Any]) -> list[str]:
    """Rows 1, 7 and 3b beside the floors: what the design costs, and what the proxy adds."""
    t1, t7, t3b, t3c = r["t1"], r["t7"], r["t3b"], r.get("t3c")
    if "coroutine_median_ms" not in t1 or "coroutine_median_ms" not in t7 or not t3c:
        return []
    numbers: dict[str, str] = {}
    for name, row, key, goal in (
        ("plain", t1, "median_ms", GOAL_ADDED_MS),
        ("stream", t7, "added_median_ms", GOAL_STREAM_MS),
    ):
        numbers |= {
            f"{name}_proxy": f"{row[key]:.2f}",
            f"{name}_coroutine": f"{row['coroutine_median_ms']:.2f}",
            f"{name}_runs": per_run(r, "t1" if name == "plain" else "t7", "coroutine_median_ms"),
            f"{name}_lean": f"{row['lean_median_ms']:.2f}",
            f"{name}_gap": f"{row[key] - row['coroutine_median_ms']:.2f}",
            f"{name}_goal": f"{goal:g}",
        }
    return [
        *part(
            "floor",
            proxy_rate=f"{t3b['max_rate']:.0f}",
            coroutine_rate=f"{t3c['max_rate']:.0f}",
            goal_rate=GOAL_RATE,
            ramp=", ".join(f"{lv['clients']}: {lv['rate']:.0f}" for lv in t3c["levels"]),
            gap=gap_counts(r),
            **numbers,
        ),
        "",
    ]


def gap_counts(r: dict[str, Any]) -> list[str]:
    """Where proxy - floor goes, by this run's instruction counts (none if not counted)."""
    counts = r.get("ti")
    if not counts or "coroutine" not in counts:
        return []
    server = counts["proxy"]["server"] / counts["coroutine"]["server"] - 1
    redis = counts["proxy"]["redis"] / counts["coroutine"]["redis"]
    than = f"{abs(server):.0%} {'more' if server >= 0 else 'fewer instructions'}"
    return part("gap_counts", server=than, redis=f"{redis:.0f}")


def cost_lines(r: dict[str, Any]) -> list[str]:
    """Rows 1 and 7: what a turn's CPU goes to, and the floor under any handler, measured here."""
    t1 = r["t1"]
    if "server_cpu_ms" not in t1 or "app_cpu_ms" not in t1 or "t0" not in r:
        return []
    t0, total = r["t0"], t1["server_cpu_ms"]
    request, app, turn = t1["request_cpu_ms"], t1["app_cpu_ms"], t1["turn_cpu_ms"]
    upstream, begin, save = t1["upstream_cpu_ms"], t1["begin_cpu_ms"], t1["save_cpu_ms"]
    steps = {
        "uvicorn": total - request,
        "framework": request - app,
        "http": app - turn,
        "upstream": upstream,
        "begin": begin,
        "save": save,
        "rest": turn - upstream - begin - save,
    }
    floor = {
        f"{server}_{measure}": f"{t0[f'{server}_{measure}_ms']:.2f}"
        for server in ("wsgi", "asgi_async", "asgi_thread")
        for measure in ("median", "p99", "cpu")
    }
    return [
        *part(
            "costs",
            total=f"{total:.2f}",
            added=f"{t1['median_ms']:.2f}",
            **{name: f"{value:.2f}" for name, value in steps.items()},
            **floor,
        ),
        *stream_lines(r),
    ]


def stream_lines(r: dict[str, Any]) -> list[str]:
    """Row 7: the same first text after a long reply and after a short one."""
    t7, busy, t1 = r["t7"], r.get("t7w"), r["t1"]
    if not busy or busy["added_median_ms"] >= t7["added_median_ms"]:
        return []
    slower = t7["added_median_ms"] > t1["median_ms"]
    added = f"{t7['added_median_ms']:.2f}"
    if "coroutine_median_ms" in t7:
        coroutine = f"{t7['coroutine_median_ms']:.2f}"
        instead = part("stream_instead_floor", added=added, coroutine=coroutine)
    else:
        instead = part("stream_instead", added=added)
    return [
        *part("stream_intro_slower" if slower else "stream_intro"),
        *part(
            "stream",
            word_ms=f"{STREAM_WORD_S * 1000:g}",
            reply_ms=f"{reply_ms(STREAM_WORD_S):.0f}",
            busy_word_ms=f"{BUSY_STREAM_WORD_S * 1000:g}",
            busy_reply_ms=f"{reply_ms(BUSY_STREAM_WORD_S):.0f}",
            busy_ms=f"{busy['added_median_ms']:.2f}",
            busy_p99=f"{busy['added_p99_ms']:.2f}",
            instead=instead,
        ),
    ]


def load_lines(r: dict[str, Any]) -> list[str]:
    """Rows 2, 3 and 3b: one event loop per worker, at this run's CPU per turn."""
    t1, t2, t3, t3b = r["t1"], r["t2"], r["t3"], r["t3b"]
    cpu = "server_cpu_ms" in t1
    busy, need = [], []
    if cpu:
        share = GOAL_CHATS_RATE * t1["server_cpu_ms"] / 1000
        busy = part(
            "load_busy", goal=GOAL_CHATS_RATE, cpu=f"{t1['server_cpu_ms']:.2f}", busy=f"{share:.0%}"
        )
    if "3b" in missed(r) and cpu:
        name = "load_need" if "3" in missed(r) else "load_need_two"
        need = part(name, goal=GOAL_RATE, need=f"{1 - t3b['max_rate'] / GOAL_RATE:.0%}")
    return part(
        "load",
        workers=r["workers"],
        rate=f"{t2['rate']:.1f}",
        p99=f"{t2['added_p99_ms']:.0f}",
        max_rate=f"{t3['max_rate']:.0f}",
        one_rate=f"{t3b['max_rate']:.0f}",
        busy=busy,
        need=need,
    )


def response_lines(r: dict[str, Any]) -> list[str]:
    """Rows 10 and 11 when either misses, row 12 when a long input's first page costs more
    than a short one's: where a response's time goes."""
    t10, t11, t12 = r.get("t10"), r.get("t11"), r.get("t12")
    lines = []
    if t10 and t11 and {"10", "11"} & set(missed(r)):
        lines += part(
            "responses",
            response=f"{t10['median_ms']:.2f}",
            turn=f"{t10['turn_median_ms']:.2f}",
            length=f"{t11['length']:,}",
            **{key: f"{t11[f'post_{key}_ms']:.2f}" for key in ("fresh", "short", "chain")},
        )
    if t12 and t12["input_first_ms"] > GOAL_PAGE_RATIO * t12["input_one_item_ms"]:
        lines += part(
            "responses_pages",
            page=t12["page"],
            items=t12["items"],
            first=f"{t12['input_first_ms']:.2f}",
            one_item=f"{t12['input_one_item_ms']:.2f}",
        )
    return lines
