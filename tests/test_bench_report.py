"""The benchmark's report (`bench/report.py`, `bench/table.py`): runs with and without the
Responses rows (10, 11, 12 and 12b) render, each row judged against its goal, and a conversation
part that was not measured says so instead of a verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.report import render_report
from bench.table import rows, verdicts

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results.json"
RESPONSE_ROWS = ("t10", "t11", "t12")


def earlier_run() -> dict[str, Any]:
    """The committed run's results without the Responses rows, as a run before them had."""
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    for target in RESPONSE_ROWS:
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
