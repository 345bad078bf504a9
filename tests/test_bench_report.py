"""The benchmark's report (`bench/report.py`, `bench/table.py`): runs with and without the
Responses rows (10, 11, 12 and 12b) and issue 23's rows (13-15) render, each row judged against
its goal, and a conversation part that was not measured says so instead of a verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.report import render_report
from bench.table import rows, verdicts

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results.json"
RESPONSE_ROWS = ("t10", "t11", "t12")
MEMORY_ROWS = ("t13", "t14", "t15")


def earlier_run() -> dict[str, Any]:
    """The committed run's results without the Responses rows (nor issue 23's), as a run before
    them had."""
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    for target in (*RESPONSE_ROWS, *MEMORY_ROWS):
        results.pop(target, None)
    return results


def with_responses(results: dict[str, Any], chain_ratio: float, **pages: Any) -> dict[str, Any]:
    """`results` with rows 10-12 as a run measures them (row 12's conversation part: `pages`)."""
    return results | {
        "t10": {
            "median_ms": 1.4,
            "p99_ms": 3.0,
            "proxy_median_ms": 1.9,
            "direct_median_ms": 0.5,
            "turn_median_ms": 1.1,
        },
        "t11": {
            "length": 1000,
            "post_chain_ms": 2.0 * chain_ratio,
            "post_fresh_ms": 2.0,
            "post_short_ms": 2.3,
            "post_ratio": chain_ratio,
        },
        "t12": {
            "items": 241,
            "limit": 2,
            "page": 100,
            "input_first_ms": 0.7,
            "input_deep_ms": 0.72,
            "input_ratio": 1.03,
            "input_one_item_ms": 0.6,
            **pages,
        },
    }


def table_row(results: dict[str, Any], number: str) -> tuple[str, str, str, str]:
    (row,) = [row for row in rows(results) if row[0].startswith(f"{number}. ")]
    return row


def test_a_run_from_before_the_responses_rows_renders_without_them() -> None:
    results = earlier_run()
    report = render_report(results)
    assert "| 9. " in report
    assert "| 10. " not in report
    assert "/v1/responses` after" not in report
    assert not {"10", "11", "12", "12b"} & set(verdicts(results))


def test_responses_rows_are_judged_against_their_goals() -> None:
    measured = {"conversation_first_ms": 0.6, "conversation_deep_ms": 0.9}
    measured |= {"conversation_ratio": 1.5, "conversation_items": 242}
    results = with_responses(earlier_run(), 1.3, **measured)
    judged = verdicts(results)
    assert (judged["10"], judged["11"], judged["12"], judged["12b"]) == (True, False, True, False)
    assert table_row(results, "11")[2].startswith("1.30x (2.60 ms vs 2.00 ms")
    assert table_row(results, "12b")[2] == "1.50x (0.90 ms vs 0.60 ms)"
    assert "**NOT MET**" in table_row(results, "12b")[3]
    assert "**Rows 10 and 11 (`/v1/responses`).**" in render_report(results)


@pytest.mark.parametrize("chain_ratio", [1.1, 1.3])
def test_conversation_pages_not_measured_are_said_so_and_not_judged(chain_ratio: float) -> None:
    missing = "answered 404 (no route for /v1/conversations/{id}/items)"
    results = with_responses(earlier_run(), chain_ratio, conversation_missing=missing)
    assert "12b" not in verdicts(results)
    _, _, measured, verdict = table_row(results, "12b")
    assert measured == f"not measured: the route {missing} for a chat that exists"
    assert verdict == "not measured"
    report = render_report(results)
    assert ("**Rows 10 and 11" in report) == (chain_ratio > 1.2)


def with_memory(
    results: dict[str, Any],
    added_ms: float,
    summary_ratio: float,
    growth_mb: float,
    import_s: float,
) -> dict[str, Any]:
    """`results` with rows 13-15 as a run measures them."""
    return results | {
        "t13": {
            "turns_per_chat": 8,
            "on_added_ms": added_ms,
            "off_added_ms": 0.8,
            "added_ratio": round(added_ms / 0.8, 3),
            "on_turn_ms": added_ms + 0.5,
            "off_turn_ms": 1.3,
            "length": 1000,
            "covered": 980,
            "post_summary_ms": 2.0 * summary_ratio,
            "post_plain_ms": 2.0,
            "post_ratio": summary_ratio,
        },
        "t14": {
            "messages": 4,
            **{f"few_{key}": value for key, value in EXPORT_FEW.items()},
            "many_chats": 10000,
            "many_idle_mb": 170.0,
            "many_peak_mb": 190.0 + growth_mb,
            "many_peak_pss_mb": 95.0 + growth_mb,
            "many_export_s": 4.2,
            "many_body_mb": 9.6,
            "growth_mb": growth_mb,
            "growth_pss_mb": growth_mb,
        },
        "t15": {
            "conversations": 1000,
            "messages": 50,
            "file_mb": 31.0,
            "import_s": import_s,
            "chats_per_s": round(1000 / import_s, 1),
            "messages_per_s": round(50_000 / import_s),
        },
    }


EXPORT_FEW = {
    "chats": 1000,
    "idle_mb": 170.0,
    "peak_mb": 190.0,
    "peak_pss_mb": 95.0,
    "export_s": 0.45,
    "body_mb": 0.96,
}


def test_a_run_from_before_issue_23_renders_without_its_rows() -> None:
    results = with_responses(earlier_run(), 1.1, conversation_missing="answered 404 (gone)")
    report = render_report(results)
    assert "| 12. " in report
    assert not {"| 13. ", "| 13b. ", "| 14. ", "| 15. "} & {line[:7] for line in report.split("\n")}
    assert not {"13", "13b", "14", "15"} & set(verdicts(results))


@pytest.mark.parametrize(
    ("measured", "met"),
    [
        ((0.84, 1.1, 12.0, 25.0), (True, True, True, True)),
        ((1.3, 1.4, 61.0, 75.0), (False, False, False, False)),
    ],
)
def test_issue_23_rows_are_judged_against_their_goals(
    measured: tuple[float, float, float, float], met: tuple[bool, ...]
) -> None:
    added, ratio, growth, seconds = measured
    results = with_memory(earlier_run(), added, ratio, growth, seconds)
    judged = verdicts(results)
    assert (judged["13"], judged["13b"], judged["14"], judged["15"]) == met
    for row, ok in zip(("13", "13b", "14", "15"), met, strict=True):
        assert ("**NOT MET**" in table_row(results, row)[3]) == (not ok)
    assert table_row(results, "13")[2].startswith(f"median {added:.2f} ms vs 0.80 ms")
    assert table_row(results, "13b")[2] == f"{ratio:.2f}x ({2 * ratio:.2f} ms vs 2.00 ms)"
    assert table_row(results, "14")[2].startswith(
        f"+{growth:.1f} MB (peak {190 + growth:.0f} MB vs 190 MB"
    )
    assert table_row(results, "15")[2].startswith(f"{seconds:.1f} s ({1000 / seconds:.0f} chats/s")
    report = render_report(results)
    assert "| 13. added latency, COMPACTION=summary" not in report  # not an absolute goal
    assert "10,000 chats vs 1,000" in report
    assert "1,000 conversations, 50 messages each (31 MB)" in report
