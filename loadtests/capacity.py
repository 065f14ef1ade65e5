"""Find the most terminals the service holds: ``dropprice loadtest`` at rising user counts.

Runs the rush (or any shape) once per user count, each on a fresh service and drop,
and reports the highest count whose verdict passed (every SLO and the books). The
first failing count stops the sweep unless ``--keep-going``. Run from a checkout::

    python loadtests/capacity.py --users 10,20,40,80 --duration 60s \\
        --slo p99_ms=10,error_rate=0.001 --report-dir capacity-report

Each run's full report lands in ``<report-dir>/users-<N>/``; the summary table is
printed and written to ``<report-dir>/capacity.json``. Arguments after ``--`` go to
``dropprice loadtest`` unchanged (e.g. ``-- --host http://10.0.0.5:8000 ...``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def _row(users: int, verdict: dict[str, Any]) -> dict[str, Any]:
    routes = {r["name"]: r for r in verdict["routes"]}
    total = routes.get("Aggregated", {})
    worst_p99 = max((r["p99"] for r in verdict["routes"] if r["p99"] is not None), default=None)
    return {
        "users": users,
        "passed": verdict["passed"],
        "requests": total.get("requests"),
        "rps": total.get("rps"),
        "p50_total": total.get("p50"),
        "p99_total": total.get("p99"),
        "p99_worst_route": worst_p99,
        "failures": total.get("failures"),
        "books_ok": verdict["books"]["ok"],
        "units_sold": verdict["books"]["units_sold"],
        "sold_out_pairs": verdict["books"]["sold_out_pairs"],
        "loadavg_1m_before": verdict.get("machine", {}).get("loadavg_1m_before"),
        "loadavg_1m_after": verdict.get("machine", {}).get("loadavg_1m_after"),
        "routes": verdict["routes"],
        "slos": verdict["slos"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="10,20,40,80", help="comma-separated user counts")
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--shape", default="rush", choices=["rush", "soak", "steady"])
    parser.add_argument("--slo", default="p99_ms=10,error_rate=0.001")
    parser.add_argument("--report-dir", type=Path, default=Path("capacity-report"))
    parser.add_argument("--keep-going", action="store_true", help="run every count")
    args = parser.parse_args(argv)
    counts = sorted({int(u) for u in args.users.split(",") if u.strip()})
    if not counts or counts[0] < 1:
        parser.error(f"--users must list positive counts, got {args.users!r}")
    args.report_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for users in counts:
        out = args.report_dir / f"users-{users}"
        cmd = [
            sys.executable,
            "-m",
            "service.cli",
            "loadtest",
            "--users",
            str(users),
            "--duration",
            args.duration,
            "--shape",
            args.shape,
            "--slo",
            args.slo,
            "--report-dir",
            str(out),
            *passthrough,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        (args.report_dir / f"users-{users}.txt").write_text(proc.stdout + proc.stderr)
        verdict_path = out / "verdict.json"
        if not verdict_path.exists():
            print(f"users={users}: no verdict (exit {proc.returncode})\n{proc.stderr[-2000:]}")
            return 2
        row = _row(users, json.loads(verdict_path.read_text()))
        rows.append(row)
        print(
            f"users={users:5d}  {'PASS' if row['passed'] else 'FAIL'}  "
            f"{row['rps']:8.1f} req/s  p50 {row['p50_total']} ms  p99 total "
            f"{row['p99_total']} ms  p99 worst route {row['p99_worst_route']} ms  "
            f"books {'ok' if row['books_ok'] else 'FAIL'}  load {row['loadavg_1m_before']}",
            flush=True,
        )
        if not row["passed"] and not args.keep_going:
            break
    best = max((r["users"] for r in rows if r["passed"]), default=None)
    (args.report_dir / "capacity.json").write_text(
        json.dumps({"highest_passing_users": best, "runs": rows}, indent=2)
    )
    print(f"highest user count that passed: {best}")
    return 0 if best is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
