"""The report's table of results: each target's goal, what was measured and the verdict. The
table's text is the part ``results`` of ``bench/templates/parts.md``; this module picks the numbers
and judges them against the goals."""

from __future__ import annotations

from typing import Any

from bench.goals import (
    GOAL_ADDED_MS,
    GOAL_ADDED_P99_MS,
    GOAL_BRANCH_RATIO,
    GOAL_CHAIN_RATIO,
    GOAL_CHATS_P99_MS,
    GOAL_CHATS_RATE,
    GOAL_COLD_S,
    GOAL_MEMORY_MB,
    GOAL_PAGE_RATIO,
    GOAL_RATE,
    GOAL_RATIO,
    GOAL_RESEND_RATIO,
    GOAL_RESPONSE_MS,
    GOAL_STREAM_MS,
)
from bench.latency import BUSY_STREAM_WORD_S, STREAM_WORD_S, reply_ms
from bench.memory_rows import memory_rows, memory_verdicts
from bench.render import line, part


def verdicts(r: dict[str, Any]) -> dict[str, bool]:
    """Each row's number (1, 3b, ...) and whether this run met its goal."""
    t1, t2, t4, t6 = r["t1"], r["t2"], r["t4"], r["t6"]
    judged = {
        "1": t1["median_ms"] <= GOAL_ADDED_MS and t1["p99_ms"] <= GOAL_ADDED_P99_MS,
        "2": t2["rate"] >= GOAL_CHATS_RATE
        and t2["errors"] == 0
        and t2["added_p99_ms"] <= GOAL_CHATS_P99_MS,
        "3": r["t3"]["max_rate"] >= GOAL_RATE,
        "3b": r["t3b"]["max_rate"] >= GOAL_RATE,
        "4": t4["post_ratio"] <= GOAL_RATIO,
        "4b": t4["get_ratio"] <= GOAL_RATIO,
        "5": r["t5"]["median_s"] <= GOAL_COLD_S,
        "6": t6["peak_pss_mb"] <= GOAL_MEMORY_MB and t6["errors"] == 0,
        "7": r["t7"]["added_median_ms"] <= GOAL_STREAM_MS,
    }
    if "t8" in r:  # runs from before chats were trees have no row 8
        judged["8"] = r["t8"]["post_ratio"] <= GOAL_BRANCH_RATIO
    if "t9" in r:  # nor, from before /v1 matched resent histories, row 9
        judged["9"] = r["t9"]["post_ratio"] <= GOAL_RESEND_RATIO
    if "t10" in r:  # nor, from before /v1/responses, rows 10-12
        judged["10"] = r["t10"]["median_ms"] <= GOAL_RESPONSE_MS
    if "t11" in r:
        judged["11"] = r["t11"]["post_ratio"] <= GOAL_CHAIN_RATIO
    if "t12" in r:
        judged["12"] = r["t12"]["input_ratio"] <= GOAL_PAGE_RATIO
        if "conversation_ratio" in r["t12"]:  # where the proxy served conversations' items
            judged["12b"] = r["t12"]["conversation_ratio"] <= GOAL_PAGE_RATIO
    return judged | memory_verdicts(r)  # rows 13-15, where the run has them


def missed(r: dict[str, Any]) -> list[str]:
    """The numbers (1, 3b, ...) of the rows that miss their goals in this run."""
    return [row for row, ok in verdicts(r).items() if not ok]


def table_lines(r: dict[str, Any]) -> list[str]:
    """The table's rows, in Markdown."""
    judged = {f"v{row}": line("met" if ok else "not_met") for row, ok in verdicts(r).items()}
    goals = {
        "goal_added": f"{GOAL_ADDED_MS:g}",
        "goal_added_p99": f"{GOAL_ADDED_P99_MS:g}",
        "goal_chats_rate": GOAL_CHATS_RATE,
        "goal_chats_p99": f"{GOAL_CHATS_P99_MS:g}",
        "goal_rate": GOAL_RATE,
        "goal_ratio": f"{GOAL_RATIO:g}",
        "goal_cold": f"{GOAL_COLD_S:.1f}",
        "goal_memory": GOAL_MEMORY_MB,
        "goal_stream": f"{GOAL_STREAM_MS:g}",
    }
    return [
        *part(
            "results", workers=r["workers"], **goals, **judged, **latency(r), **load(r), **chats(r)
        ),
        *ratio_rows(r, judged),
        *response_rows(r, judged),
        *memory_rows(r, judged),
    ]


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table's rows as (target, goal, measured, verdict)."""
    cells = [line.removeprefix("| ").removesuffix(" |").split(" | ") for line in table_lines(r)]
    return [(a, b, c, d) for a, b, c, d in cells]


def latency(r: dict[str, Any]) -> dict[str, str]:
    """Rows 1 and 7."""
    t1, t7 = r["t1"], r["t7"]
    return {
        "t1_median": f"{t1['median_ms']:.2f}",
        "t1_runs": per_run(r, "t1", "median_ms"),
        "t1_p99": f"{t1['p99_ms']:.2f}",
        "t1_apart": f"{t1['p99_apart_ms']:.2f}",
        "t1_proxy": f"{t1['proxy_median_ms']:.2f}",
        "t1_direct": f"{t1['direct_median_ms']:.2f}",
        "naive_median": f"{t1['naive_median_ms']:.2f}",
        "naive_p99": f"{t1['naive_p99_ms']:.2f}",
        "t1_floors": floors(t1),
        "t7_median": f"{t7['added_median_ms']:.2f}",
        "t7_runs": per_run(r, "t7", "added_median_ms"),
        "t7_p99": f"{t7['added_p99_ms']:.2f}",
        "t7_proxy": f"{t7['proxy_median_ms']:.2f}",
        "t7_direct": f"{t7['direct_median_ms']:.2f}",
        "t7_floors": floors(t7),
        "t7_busy": busy_stream(r),
    }


def load(r: dict[str, Any]) -> dict[str, str]:
    """Rows 2, 3, 3b and 6."""
    t2, t3, t3b, t6 = r["t2"], r["t3"], r["t3b"], r["t6"]
    return {
        "t2_clients": str(t2["clients"]),
        "t2_rate": f"{t2['rate']:.1f}",
        "t2_errors": str(t2["errors"]),
        "t2_p99": f"{t2['added_p99_ms']:.1f}",
        "t2_median": f"{t2['added_median_ms']:.1f}",
        "t3_rate": f"{t3['max_rate']:.0f}",
        "t3_ramp": ramp(t3),
        "naive_rate": f"{r['t3n']['max_rate']:.0f}",
        "t3b_workers": str(t3b["workers"]),
        "t3b_rate": f"{t3b['max_rate']:.0f}",
        "t3b_ramp": ramp(t3b),
        "t6_clients": str(t6["clients"]),
        "t6_errors": f"{t6['errors']:.0f}",
        "t6_peak_pss": f"{t6['peak_pss_mb']:.0f}",
        "t6_idle_pss": f"{t6['idle_pss_mb']:.0f}",
        "t6_peak": f"{t6['peak_mb']:.0f}",
        "t6_idle": f"{t6['idle_mb']:.0f}",
    }


def chats(r: dict[str, Any]) -> dict[str, str]:
    """Rows 4, 4b and 5."""
    t4, t5 = r["t4"], r["t5"]
    return {
        "t4_messages": f"{t4['messages']:,}",
        "t4_post_ratio": f"{t4['post_ratio']:.2f}",
        "t4_post_big": f"{t4['post_big_ms']:.2f}",
        "t4_post_empty": f"{t4['post_empty_ms']:.2f}",
        "t4_get_ratio": f"{t4['get_ratio']:.2f}",
        "t4_get_big": f"{t4['get_big_ms']:.2f}",
        "t4_get_small": f"{t4['get_small_ms']:.2f}",
        "t5_median": f"{t5['median_s']:.2f}",
        "t5_all": ", ".join(f"{x:.2f}" for x in t5["all_s"]),
    }


def ratio_rows(r: dict[str, Any], judged: dict[str, str]) -> list[str]:
    """Rows 8 and 9, each if this run has it."""
    t8, t9 = r.get("t8"), r.get("t9")
    lines = []
    if t8 is not None:
        cases = ("post_branch_ms", "post_empty_ms")
        shown = {"siblings": t8["siblings"], "depth": f"{t8['depth']:,}"}
        lines += ratio_row("results_branches", t8, GOAL_BRANCH_RATIO, cases, judged["v8"], shown)
    if t9 is not None:
        cases = ("post_full_ms", "post_single_ms")
        shown = {"resent": t9["resent"], "kb": f"{t9['body_kb']:.0f}"}
        lines += ratio_row("results_resend", t9, GOAL_RESEND_RATIO, cases, judged["v9"], shown)
    return lines


def ratio_row(
    name: str,
    target: dict[str, Any],
    goal: float,
    cases: tuple[str, str],
    verdict: str,
    shown: dict[str, Any],
    ratio: str = "post_ratio",
) -> list[str]:
    """The part `name`: a row whose target times one case against another (`cases`, the keys
    of their medians) and is judged by the ratio of the two (the key `ratio`) against `goal`."""
    timed, compared = cases
    return part(
        name,
        goal=f"{goal:g}",
        ratio=f"{target[ratio]:.2f}",
        timed=f"{target[timed]:.2f}",
        compared=f"{target[compared]:.2f}",
        verdict=verdict,
        **shown,
    )


def response_rows(r: dict[str, Any], judged: dict[str, str]) -> list[str]:
    """Rows 10, 11, 12 and 12b, each if this run has it (12b: or why it has not)."""
    t10, t11, t12 = r.get("t10"), r.get("t11"), r.get("t12")
    lines = []
    if t10 is not None:
        lines += part(
            "results_responses",
            goal=f"{GOAL_RESPONSE_MS:g}",
            runs=per_run(r, "t10", "median_ms"),
            verdict=judged["v10"],
            **{key: f"{t10[f'{key}_ms']:.2f}" for key in ("median", "p99", "turn_median")},
            **{key: f"{t10[f'{key}_median_ms']:.2f}" for key in ("proxy", "direct")},
        )
    if t11 is not None:
        cases = ("post_chain_ms", "post_fresh_ms")
        shown = {"length": f"{t11['length']:,}", "short": f"{t11['post_short_ms']:.2f}"}
        lines += ratio_row("results_chain", t11, GOAL_CHAIN_RATIO, cases, judged["v11"], shown)
    if t12 is not None:
        lines += page_rows(t12, judged)
    return lines


def page_rows(t12: dict[str, Any], judged: dict[str, str]) -> list[str]:
    """Rows 12 and 12b: the deep page against the first, of a response's input items and of
    its conversation's items (or why that was not measured)."""
    pages = {"page": t12["page"], "limit": t12["limit"], "before": t12["page"] - 1}
    shown = pages | {"items": t12["items"], "one_item": f"{t12['input_one_item_ms']:.2f}"}
    cases = ("input_deep_ms", "input_first_ms")
    verdict = judged["v12"]
    lines = ratio_row("results_pages", t12, GOAL_PAGE_RATIO, cases, verdict, shown, "input_ratio")
    if "conversation_ratio" not in t12:
        missing = t12.get("conversation_missing", "was not asked")
        goal = f"{GOAL_PAGE_RATIO:g}"
        return lines + part("results_conversation_unmeasured", goal=goal, missing=missing, **pages)
    cases = ("conversation_deep_ms", "conversation_first_ms")
    shown = pages | {"items": t12["conversation_items"]}
    verdict, ratio = judged["v12b"], "conversation_ratio"
    return lines + ratio_row(
        "results_conversation_pages", t12, GOAL_PAGE_RATIO, cases, verdict, shown, ratio
    )


def ramp(target: dict[str, Any]) -> str:
    """'1: 500, 4: 900, ...': clients and turns/s at each level of a ramp."""
    return ", ".join(f"{lv['clients']}: {lv['rate']:.0f}" for lv in target["levels"])


def per_run(r: dict[str, Any], target: str, key: str) -> str:
    """' (runs: a, b, c)': a median's values in each run, when there were several."""
    values = [run[key] for run in r.get("per_run", {}).get(target, [])]
    return f" (runs: {', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""


def floors(target: dict[str, Any]) -> str:
    """'; the coroutine handler: ...': the floors of rows 1 and 7, if this run has them."""
    if "coroutine_median_ms" not in target:
        return ""
    return line(
        "row_floors",
        coroutine=f"{target['coroutine_median_ms']:.2f}",
        coroutine_p99=f"{target['coroutine_p99_ms']:.2f}",
        lean=f"{target['lean_median_ms']:.2f}",
    )


def busy_stream(r: dict[str, Any]) -> str:
    """Row 7 measured with short replies, if this run did (results from before it did not)."""
    busy = r.get("t7w")
    if not busy:
        return ""
    return line(
        "row_busy_stream",
        busy_word_ms=f"{BUSY_STREAM_WORD_S * 1000:g}",
        busy_reply_ms=f"{reply_ms(BUSY_STREAM_WORD_S):.0f}",
        reply_ms=f"{reply_ms(STREAM_WORD_S):.0f}",
        busy_ms=f"{busy['added_median_ms']:.2f}",
        busy_p99=f"{busy['added_p99_ms']:.2f}",
    )
