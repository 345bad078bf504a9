"""The table's rows of issue 23 (memory that lasts and moves): 13 and 13b (compaction), 14 (the
server's memory during `GET /export`) and 15 (the command-line import of ChatGPT's export), each
judged against its goal when a run has it. ``table.py`` puts them in its table."""

from __future__ import annotations

from typing import Any

from bench.goals import (
    GOAL_EXPORT_GROWTH_MB,
    GOAL_IMPORT_S,
    GOAL_SUMMARY_RATIO,
    GOAL_UNCHANGED_MS,
)
from bench.render import part


def memory_verdicts(r: dict[str, Any]) -> dict[str, bool]:
    """Whether rows 13, 13b, 14 and 15 met their goals, for those this run has (runs from
    before issue 23 have none of them)."""
    judged = {}
    if "t13" in r:
        t13 = r["t13"]  # "adds nothing": as with compaction off (row 1 holds the ≤ 1 ms)
        judged["13"] = t13["on_added_ms"] <= t13["off_added_ms"] + GOAL_UNCHANGED_MS
        judged["13b"] = r["t13"]["post_ratio"] <= GOAL_SUMMARY_RATIO
    if "t14" in r:
        judged["14"] = r["t14"]["growth_mb"] < GOAL_EXPORT_GROWTH_MB
    if "t15" in r:
        judged["15"] = r["t15"]["import_s"] <= GOAL_IMPORT_S
    return judged


def memory_rows(r: dict[str, Any], judged: dict[str, str]) -> list[str]:
    """Rows 13, 13b, 14 and 15 in Markdown, those this run has; `judged`: each row's verdict as
    the table shows it, by `v<row>`."""
    t13, t14, t15 = r.get("t13"), r.get("t14"), r.get("t15")
    lines = []
    if t13 is not None:
        lines += part(
            "results_compaction",
            slack=f"{GOAL_UNCHANGED_MS:g}",
            turns=t13["turns_per_chat"],
            ratio=f"{t13['added_ratio']:.2f}",
            verdict=judged["v13"],
            **{key: f"{t13[f'{key}_ms']:.2f}" for key in ("on_added", "off_added")},
            **{key: f"{t13[f'{key}_ms']:.2f}" for key in ("on_turn", "off_turn")},
        )
        lines += part(
            "results_compaction_summary",
            goal=f"{GOAL_SUMMARY_RATIO:g}",
            length=f"{t13['length']:,}",
            covered=f"{t13['covered']:,}",
            ratio=f"{t13['post_ratio']:.2f}",
            timed=f"{t13['post_summary_ms']:.2f}",
            compared=f"{t13['post_plain_ms']:.2f}",
            verdict=judged["v13b"],
        )
    if t14 is not None:
        lines += part(
            "results_export", workers=r["workers"], verdict=judged["v14"], **export_cells(t14)
        )
    if t15 is not None:
        lines += part(
            "results_import",
            goal=GOAL_IMPORT_S,
            conversations=f"{t15['conversations']:,}",
            messages=t15["messages"],
            mb=f"{t15['file_mb']:.0f}",
            seconds=f"{t15['import_s']:.1f}",
            rate=f"{t15['chats_per_s']:.0f}",
            message_rate=f"{t15['messages_per_s']:,}",
            verdict=judged["v15"],
        )
    return lines


def export_cells(t14: dict[str, Any]) -> dict[str, str]:
    """Row 14's numbers as its cells show them."""
    cells = {
        "goal": f"{GOAL_EXPORT_GROWTH_MB:g}",
        "messages": str(t14["messages"]),
        "growth": f"{t14['growth_mb']:+.1f}",
    }
    for size in ("few", "many"):
        cells |= {
            size: f"{t14[f'{size}_chats']:,}",
            f"{size}_peak": f"{t14[f'{size}_peak_mb']:.0f}",
            f"{size}_pss": f"{t14[f'{size}_peak_pss_mb']:.0f}",
            f"{size}_s": f"{t14[f'{size}_export_s']:.2f}",
            f"{size}_body": f"{t14[f'{size}_body_mb']:.1f}",
        }
    return cells
