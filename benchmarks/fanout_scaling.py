"""Fan-out scaling of the catalog flow on a Dask cluster (issue 5 targets: >= 90 % scaling
efficiency at 4 workers; <= 100 ms orchestration overhead per row on the distributed path).

Starts, on 127.0.0.1 only, a real `prefect server start`, a `dask scheduler` and 1, 2 and 4
`sonic-catalog worker --gpus 1` processes (stopped at the end, whatever happens), and runs the
real `render-catalog` flow with `--cluster` semantics (DaskTaskRunner, GPU-annotated renders,
shared scratch under the catalog, publish through fsspec, index, ledger, report) on a 32-row
manifest. The generation is a fixed-cost stand-in (sleep 1 s, no CPU) and the media work around
it (probe, QA, poster) is prepared in advance (benchmarks/fanout_stand_ins.py), so only fan-out
and orchestration are timed; materializing the inputs, the generation slot and the scratch
upload are the real ones. Each worker count gets a warm-up run first (worker imports, first
API calls).

Figures:
  wall          wall time of the 32-row run
  ideal         32 rows x 1 s / workers
  efficiency    wall(1 worker) / (workers x wall(N workers))
  overhead/row  (wall - ideal) x workers / rows: time a GPU spends per row on anything but
                generating (start-up, gaps between rows, the index/ledger/report and the flow
                run's end), charged to the rows
  gap           what a GPU waits between two rows in the steady state
  start-up      flow called -> first generation starts; wind-down: last one ends -> flow returns

    .venv/bin/python benchmarks/fanout_scaling.py [--rows 32] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
STAND_INS = "benchmarks/fanout_stand_ins.py"
NAME, VERSION, RENDER_S = "fixed-cost", "1.0-bench", 1.0  # as in fanout_stand_ins.py


def prepare(work: Path, rows: int) -> tuple[Path, dict]:
    import pandas as pd
    from orchestration_overhead import prepare_media  # a sibling script (benchmarks/ is on sys.path)

    from tasks.publish import poster_jpeg

    _, video = prepare_media(work)
    poster = work / "poster.jpg"
    poster.write_bytes(poster_jpeg(video))
    pd.DataFrame(
        [
            {
                "row_id": f"row-{i:03d}",
                "portrait_uri": "media/hopper.jpg",
                "audio_uri": "media/de.wav",
                "language": "de",
                "consent_ref": "release/bench",
                "collection": "bench",
            }
            for i in range(rows)
        ]
    ).to_parquet(work / "manifest.parquet")
    pd.DataFrame(
        [
            {
                "row_id": f"warm-{i}",
                "portrait_uri": "media/hopper.jpg",
                "audio_uri": "media/de.wav",
                "language": "de",
                "consent_ref": "release/bench",
                "collection": "warm",
            }
            for i in range(8)
        ]
    ).to_parquet(work / "warm.parquet")
    return work / "manifest.parquet", {"FANOUT_VIDEO": str(video), "FANOUT_POSTER": str(poster)}


def cpu_by_role(services) -> dict[str, float]:
    """CPU seconds used so far by this process (flow) and each service process tree we started."""
    import psutil

    roles = {"flow": [psutil.Process()]}
    for process in services.processes:
        if process.poll() is None:
            log = Path(process.args[0]).name if isinstance(process.args, list) else "?"
            role = {"prefect": "prefect server", "dask": "scheduler", "sonic-catalog": "workers"}.get(log, log)
            root = psutil.Process(process.pid)
            roles.setdefault(role, []).extend([root, *root.children(recursive=True)])
    totals = {}
    for role, procs in roles.items():
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        totals[role] = total
    return totals


def cpu_seconds(services) -> float:
    return sum(cpu_by_role(services).values())


def render_spans(trace: Path) -> dict[str, list[tuple[float, float]]]:
    """(start, end) wall-clock times of every render, per worker process (the stand-in's trace)."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for line in trace.read_text().splitlines() if trace.exists() else []:
        pid, began, ended = line.split()
        by_worker.setdefault(pid, []).append((float(began), float(ended)))
    return {pid: sorted(spans) for pid, spans in by_worker.items()}


def render_gaps(spans: dict[str, list[tuple[float, float]]]) -> list[float]:
    """Seconds between consecutive renders on the same worker."""
    gaps = []
    for worker_spans in spans.values():
        gaps += [worker_spans[i + 1][0] - worker_spans[i][1] for i in range(len(worker_spans) - 1)]
    return gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    from local_services import LocalServices

    work = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    results = []
    try:
        stand_in_env = {
            "FANOUT_VIDEO": str(work / "prepared.mp4"),
            "FANOUT_POSTER": str(work / "poster.jpg"),
            "FANOUT_MEDIA": str(work / "media"),
            "FANOUT_TRACE": str(work / "trace.txt"),
        }
        os.environ.update(stand_in_env)
        services = LocalServices(work / "services", preload=STAND_INS, worker_env=stand_in_env)
        with services:
            services.start_scheduler()
            # This process runs the flow: it talks to the same server as the workers. Set
            # before anything imports Prefect (it reads its settings on import).
            os.environ.update(
                {
                    "PREFECT_API_URL": services.api_url,
                    "PREFECT_HOME": str(services.prefect_home),
                    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
                    "DO_NOT_TRACK": "1",
                }
            )
            manifest, _ = prepare(work, args.rows)
            # Only the workers patch the media work (every row task runs there). This process
            # needs just the stand-in generator's name and version (for content keys); nothing
            # of the stand-in module may travel in a pickled task (the scheduler lacks it).
            from sonic_model.generators import register_generator

            def fixed_cost_factory():
                raise AssertionError("the flow's process never renders")

            register_generator(NAME, fixed_cost_factory, version=VERSION)

            from flows.render_catalog import render_catalog
            from flows.task_runners import task_runner_for

            flow = render_catalog.with_options(task_runner=task_runner_for(services.scheduler))
            running = 0
            for count in sorted(args.workers):
                while running < count:
                    services.start_worker(running)
                    running += 1
                services.wait_for_workers(count)
                flow(manifest=str(work / "warm.parquet"), catalog=str(work / f"warm-{count}"), generator=NAME)
                (work / "trace.txt").unlink(missing_ok=True)  # trace only the measured run
                roles_before = cpu_by_role(services)
                cpu_before = sum(roles_before.values())
                called = time.time()
                started = time.perf_counter()
                summary = flow(manifest=str(manifest), catalog=str(work / f"catalog-{count}"), generator=NAME)
                wall = time.perf_counter() - started
                returned = time.time()
                roles_after = cpu_by_role(services)
                cpu = sum(roles_after.values()) - cpu_before
                split = ", ".join(
                    f"{role} {(roles_after[role] - roles_before.get(role, 0)) / args.rows * 1000:.0f}"
                    for role in roles_after
                )
                if summary["counts"] != {"published": args.rows}:
                    import pandas as pd

                    reasons = pd.read_parquet(summary["ledger"])["reason"].value_counts().head(3)
                    raise SystemExit(f"not every row published: {summary['counts']}\n{reasons}")
                spans = render_spans(work / "trace.txt")
                first_start = min(span[0] for worker_spans in spans.values() for span in worker_spans)
                last_end = max(span[1] for worker_spans in spans.values() for span in worker_spans)
                results.append((count, wall, render_gaps(spans), cpu, first_start - called, returned - last_end))
                (work / "trace.txt").unlink(missing_ok=True)
                per_worker = sorted(len(worker_spans) for worker_spans in spans.values())
                print(
                    f"{count} worker(s): {wall:.2f} s; rows per worker {per_worker}; CPU ms/row by process: {split}",
                    flush=True,
                )
            # Send this process's queued logs and events while the server is still up.
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)
            EventsWorker.drain_all(timeout=5)
    finally:
        if os.environ.get("FANOUT_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    base = results[0][1] * results[0][0]
    print(
        f"\n{args.rows} rows, fixed-cost generator {RENDER_S:g} s/row, one GPU per worker (two renders in flight, "
        "one generating)"
    )
    print(
        f"{'workers':>7} {'wall s':>8} {'ideal s':>8} {'speed-up':>8} {'efficiency':>10} {'overhead/row ms':>15} "
        f"{'gap median ms':>13} {'gap p90 ms':>10} {'CPU ms/row':>10} {'start-up s':>10} {'wind-down s':>11}"
    )
    for count, wall, gaps, cpu, start_up, wind_down in results:
        ideal = args.rows * RENDER_S / count
        median, p90 = (statistics.median(gaps), statistics.quantiles(gaps, n=10)[-1]) if len(gaps) > 1 else (0.0, 0.0)
        print(
            f"{count:>7} {wall:>8.2f} {ideal:>8.2f} {base / wall:>8.2f} {base / (count * wall):>10.1%} "
            f"{(wall - ideal) * count / args.rows * 1000:>15.0f} {median * 1000:>13.0f} {p90 * 1000:>10.0f} "
            f"{cpu / args.rows * 1000:>10.0f} "
            f"{start_up:>10.2f} {wind_down:>11.2f}"
        )
    print(
        "overhead/row: all non-render time of the run charged to GPU slots (start-up and the index/ledger/report "
        "at the end included);\ngap: steady state, from one generation's end to the next one's start on the same "
        "worker "
        "(what the GPU waits; task runs, hand-offs and storage overlap with generation);\nstart-up: flow called -> "
        "first render starts (flow run, table validation, first probe); "
        "wind-down: last render ends -> flow returns (its QA/publish, index, ledger, report, flow run end);\nCPU "
        "ms/row: CPU time of the flow process, Prefect server, scheduler and workers "
        f"per row (this machine: {os.cpu_count()} cores, shared)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
