"""The chart beside the report: throughput and added latency against concurrent clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.goals import GOAL_RATE


def write_chart(r: dict[str, Any], path: Path) -> None:
    """Draw rows 2, 3 and 3b (and the floors' ramps) to `path` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = [lv["clients"] for lv in r["t3"]["levels"]]
    t2 = r["t2"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    draw_throughput(left, r, clients)
    draw_latency(right, r, clients)
    for ax, columns in ((left, 2), (right, 1)):
        ax.set_xticks([*clients, t2["clients"]], [str(c) for c in [*clients, t2["clients"]]])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", ncol=columns)
    fig.suptitle(f"chatproxy, WORKERS={r['workers']}, {r['threads_label']} ({r['mode']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_throughput(ax: Any, r: dict[str, Any], clients: list[int]) -> None:
    """Turns/s of each ramp (rows 3, 3b, the floors) and of row 2."""
    ax.plot(
        clients,
        [lv["rate"] for lv in r["t3"]["levels"]],
        "o-",
        label=f"the proxy, WORKERS={r['workers']}",
    )
    one_worker = r["t3b"]
    ax.plot(
        clients,
        [lv["rate"] for lv in one_worker["levels"]],
        "o--",
        label=f"the proxy, WORKERS={one_worker['workers']}",
    )
    coroutines = r.get("t3c")
    if coroutines:
        ax.plot(
            clients,
            [lv["rate"] for lv in coroutines["levels"]],
            "d-.",
            label="lean steps as coroutines, WORKERS=1",
        )
    naive = r.get("t3n")
    if naive:
        ax.plot(clients, [lv["rate"] for lv in naive["levels"]], "x:", label="naive handler")
    t2 = r["t2"]
    ax.plot([t2["clients"]], [t2["rate"]], "s", label="the proxy, upstream 1 s")
    ax.axhline(GOAL_RATE, color="grey", ls=":", label=f"goal: {GOAL_RATE} turns/s")
    ax.set(xscale="log", xlabel="concurrent clients", ylabel="turns/s")
    ax.set_title("Throughput (upstream 0 ms unless noted)")
    top = max(max(line.get_ydata()) for line in ax.get_lines())
    ax.set_ylim(0, top * 1.45)  # room above the curves for the legend


def draw_latency(ax: Any, r: dict[str, Any], clients: list[int]) -> None:
    """Added latency of row 3's ramp (and the naive handler's) and of row 2."""
    levels, naive, t2 = r["t3"]["levels"], r.get("t3n"), r["t2"]
    ax.plot(clients, [lv["added_median_ms"] for lv in levels], "o-", label="median")
    ax.plot(clients, [lv["added_p99_ms"] for lv in levels], "o--", label="p99")
    if naive:
        ax.plot(
            clients,
            [lv["added_median_ms"] for lv in naive["levels"]],
            "x:",
            label="naive handler, median",
        )
    ax.plot([t2["clients"]], [t2["added_median_ms"]], "s", label="median, 1 s upstream")
    ax.plot([t2["clients"]], [t2["added_p99_ms"]], "^", label="p99, 1 s upstream")
    ax.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="added latency (ms)")
    ax.set_title("Latency added (upstream 0 ms unless noted)")
