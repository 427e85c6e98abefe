"""A nightly at catalog scale: what a re-run costs when (almost) nothing changed (issue 12).

Runs the real `render-catalog` flow (temporary local Prefect API, the real table validation,
the real plan step with fsspec fingerprints of real files, publishing through fsspec, index,
ledger and report) on a manifest of N rows, each with its own audio file (100 folders) and one
of 20 portraits, with the media work replaced by stand-ins so orchestration is what is timed:
the probe hashes the inputs but decodes nothing, the generator copies one prepared video, QA
passes, the poster is a prepared JPEG. Each run is its own process, as a nightly's is, so the
wall time includes start-up (imports, the temporary Prefect API). Per size:

  1. first run: every row is new (orchestration per row; issue target <= 33 ms);
  2. unchanged re-run (target <= 30 s at 20,000 rows, <= 5 task runs);
  3. 1% of the audio files rewritten with other bytes of the same size: exactly those rows rendered;
  4. report sizes, and each run's peak memory (ru_maxrss of the flow process).

    .venv/bin/python benchmarks/nightly_repeat.py [--rows 20000] [--rows 2000 ...] [--concurrency 8]
    .venv/bin/python benchmarks/nightly_repeat.py --example   # the 6-row example through `sonic-catalog render`

The example mode times the whole command, twice: a first render, then the unchanged re-run
(issue target <= 8 s), and shows where the re-run's start-up goes (`python -X importtime`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures"
PORTRAITS = 20
AUDIO_FOLDERS = 100
AUDIO_BYTES = 2048


def quiet_env(prefect_home: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
            "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        }
    )
    env.pop("PREFECT_API_URL", None)
    return env


# --- the media and manifest ------------------------------------------------------------------------


def audio_bytes(index: int, version: int = 0) -> bytes:
    """Unique bytes of one row's 'script' (the stand-in probe never decodes it), always AUDIO_BYTES long."""
    seed = hashlib.sha256(f"row {index} version {version}".encode()).digest()
    return (seed * (AUDIO_BYTES // len(seed) + 1))[:AUDIO_BYTES]


def audio_path(media: Path, index: int) -> Path:
    return media / "audio" / f"{index % AUDIO_FOLDERS:03d}" / f"row-{index:06d}.wav"


def prepare(work: Path, rows: int) -> Path:
    """Media, a prepared video and poster, and a manifest of `rows` rows; returns the manifest."""
    import pandas as pd

    from benchmarks.orchestration_overhead import prepare_media
    from tasks.publish import poster_jpeg

    media, video = prepare_media(work)
    (work / "prepared.jpg").write_bytes(poster_jpeg(video))
    (media / "portraits").mkdir()
    portrait = (media / "hopper.jpg").read_bytes()
    for number in range(PORTRAITS):
        (media / "portraits" / f"p{number:02d}.jpg").write_bytes(portrait + bytes([number]))  # trailing byte: 20 files
    for folder in range(AUDIO_FOLDERS):
        (media / "audio" / f"{folder:03d}").mkdir(parents=True)
    for index in range(rows):
        audio_path(media, index).write_bytes(audio_bytes(index))
    manifest = work / "manifest.parquet"
    pd.DataFrame(
        [
            {
                "row_id": f"row-{i:06d}",
                "portrait_uri": f"media/portraits/p{i % PORTRAITS:02d}.jpg",
                "audio_uri": str(audio_path(Path("media"), i)),
                "language": "de",
                "consent_ref": "release/bench",
                "collection": "bench",
                "min_resolution": 128,
            }
            for i in range(rows)
        ]
    ).to_parquet(manifest)
    return manifest


# --- one run, in its own process ----------------------------------------------------------------------


def install_stand_ins(work: Path) -> None:
    """Probe without decoding (real hashes of the real files), generation by copying a prepared
    video, QA that passes, a prepared poster. Everything else is the real path."""
    import tasks.probe
    import tasks.publish
    import tasks.qa
    import tasks.render
    from benchmarks.stand_in_results import passing_qa, prepared_render_result
    from manifests.schema import resolve_uri
    from tasks.records import ProbedRow

    def sha256_of(path: str) -> str:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    def probe_without_decoding(row, manifest_url, limits=None, *, defaults=None, **kwargs):
        portrait, audio = resolve_uri(manifest_url, row.portrait_uri), resolve_uri(manifest_url, row.audio_uri)
        return ProbedRow(
            row=row,
            portrait_uri=portrait,
            audio_uri=audio,
            audio_duration_s=4.58,
            face_box=(0.0, 0.0, 1.0, 1.0),
            portrait_sha256=sha256_of(portrait),
            audio_sha256=sha256_of(audio),
            params=row.render_params(defaults) if defaults is not None else row.render_params(),
        )

    video = work / "prepared.mp4"

    def copy_prepared_video(generator, portrait_path, audio_path_, out_path, params=None, **kwargs):
        shutil.copy(video, out_path)
        return prepared_render_result(generator, out_path, 0.0)

    poster = (work / "prepared.jpg").read_bytes()
    tasks.probe.probe_media = probe_without_decoding
    tasks.render.render_video = copy_prepared_video
    tasks.qa.check_rendered = passing_qa
    tasks.publish.poster_jpeg = lambda path, **kw: poster


def count_task_runs(flow_run_id: str, settle_s: float = 10.0, limit_s: float = 300.0) -> int | str | None:
    """Task runs the flow run created, from the Prefect API (`POST /task_runs/count`).

    The API records task runs from events, a little after they happen: count until the figure
    stops changing for `settle_s`. A count still growing after `limit_s` (a first run's tens of
    thousands of task runs) comes back as text that says so."""
    if not flow_run_id:
        return None
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + limit_s
    last = None
    with get_client(sync_client=True) as client:
        while True:
            response = client._client.post("/task_runs/count", json={"flow_runs": {"id": {"any_": [flow_run_id]}}})
            count = int(response.json())
            if count == last:
                return count
            if time.monotonic() > deadline:
                return f"{count} recorded after {limit_s:g} s, the API still recording"
            last = count
            time.sleep(settle_s)


def child(args: argparse.Namespace) -> int:
    """One run of the flow; prints one JSON line of figures."""
    import inspect
    import resource

    started = time.perf_counter()
    work = Path(args.work)
    # As `sonic-catalog render` does: Prefect's temporary API starts while the modules are imported.
    from sonic_catalog.temporary_api import start_temporary_api

    temporary_api = start_temporary_api()
    install_stand_ins(work)
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.render_catalog import render_catalog

    flow = render_catalog.with_options(task_runner=ThreadPoolTaskRunner(max_workers=args.concurrency))
    accepted = inspect.signature(render_catalog.fn).parameters
    extra = {name: True for name in ("force", "recheck") if getattr(args, name) and name in accepted}
    if (
        "signing" in accepted
    ):  # signing's own cost is benchmarks/signing_cost.py; here it would be most of a stand-in row
        extra["signing"] = {"mode": "off"}
    temporary_api.use()
    imported = time.perf_counter()
    sampler = None
    listening = contextlib.nullcontext()
    if getattr(args, "sample_memory", None):
        from benchmarks.flow_memory_probe import MemorySampler
        from flows.run_record import outcome_listener

        sampler = MemorySampler(args.sample_memory, args.snapshot_at or [], args.tracemalloc)
        sampler.start()
        listening = outcome_listener(sampler.on_outcome)
    with listening:
        state = flow(
            manifest=str(work / "manifest.parquet"),
            catalog=str(work / "catalog"),
            concurrency=args.concurrency,
            defaults={"min_resolution": 128},
            return_state=True,
            **extra,
        )
    summary = state.result()
    ran = time.perf_counter()
    if sampler is not None:
        sampler.stop()
    task_runs = None if args.no_task_count else count_task_runs(str(state.state_details.flow_run_id or ""))
    counting = time.perf_counter() - ran
    print(
        "FIGURES "
        + json.dumps(
            {
                "run_id": summary["run_id"],
                "counts": summary["counts"],
                "plan": summary.get("plan"),
                "import_s": round(imported - started, 2),
                "flow_s": round(ran - imported, 2),
                "task_runs": task_runs,
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "counting_s": round(counting, 2),
            }
        ),
        flush=True,
    )
    return 0


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(work: Path, prefect_home: Path, concurrency: int, *flags: str, sampling: tuple[str, ...] = ()) -> dict:
    """One run in its own process; its figures, with `wall_s` and `cpu_s`: the CPU of the run's
    processes (the flow's and its temporary API server's, start-up and task counting included)."""
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--work",
            str(work),
            "--concurrency",
            str(concurrency),
            *flags,
            *sampling,
        ],
        capture_output=True,
        text=True,
        env=quiet_env(prefect_home),
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    for line in result.stdout.splitlines():
        if line.startswith("MEMORY "):
            print(line[len("MEMORY ") :], flush=True)
    line = next((line for line in result.stdout.splitlines() if line.startswith("FIGURES ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    figures = json.loads(line[len("FIGURES ") :])
    cpu = _children_cpu_s() - cpu_before
    # the benchmark's own counting left out of the wall time
    return {**figures, "wall_s": round(wall - figures["counting_s"], 2), "cpu_s": round(cpu, 1)}


def rendered_rows(work: Path, run_id: str) -> list[str]:
    import pandas as pd

    ledger = pd.read_parquet(work / "catalog" / "_runs" / run_id / "ledger.parquet")
    return sorted(ledger[ledger.status == "published"].row_id)


def report_sizes(work: Path, run_id: str) -> str:
    run_dir = work / "catalog" / "_runs" / run_id
    report = (run_dir / "report.html").stat().st_size
    pages = list(run_dir.glob("report-*.html"))
    biggest = max((page.stat().st_size for page in pages), default=0)
    return f"report.html {report / 1024:.1f} KiB, {len(pages)} list pages (largest {biggest / 1024:.1f} KiB)"


def one_size(rows: int, concurrency: int, keep: bool, sampling: tuple[str, ...] = (), first_only: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"bench-nightly-{rows}-"))
    prefect_home = work / "prefect-home"
    try:
        started = time.perf_counter()
        prepare(work, rows)
        print(
            f"\n== {rows} rows (prepared in {time.perf_counter() - started:.1f} s; load average "
            f"{os.getloadavg()[0]:.1f}) =="
        )
        warm = run_child(work, prefect_home, concurrency, "--warm-up")  # the API's database, created once
        print(f"warm-up run (fresh PREFECT_HOME, 1 row): {warm['wall_s']} s")

        first = run_child(work, prefect_home, concurrency, sampling=sampling)
        per_row = 1000 * first["flow_s"] / rows
        print(
            f"first run:      wall {first['wall_s']} s (flow {first['flow_s']} s, start-up {first['import_s']} s) -> "
            f"{per_row:.1f} ms per row (target <= 33); {first['counts']}; task runs {first['task_runs']}; "
            f"peak RSS {first['max_rss_mb']} MB"
        )
        print(
            f"                CPU of the run's processes (flow and API server, start-up included): {first['cpu_s']} s "
            f"-> {1000 * first['cpu_s'] / rows:.1f} ms per row"
            + (" (with the API's task-run counting)" if first["task_runs"] is not None else "")
        )
        print(f"                {report_sizes(work, first['run_id'])}")
        if first_only:
            return

        second = run_child(work, prefect_home, concurrency)
        print(
            f"unchanged:      wall {second['wall_s']} s (flow {second['flow_s']} s, start-up {second['import_s']} s; "
            f"target <= 30 s at 20,000 rows); {second['counts']}; plan {second['plan']}; task runs "
            f"{second['task_runs']} (target <= 5); peak RSS {second['max_rss_mb']} MB"
        )
        print(f"                {report_sizes(work, second['run_id'])}")

        changed = list(range(0, rows, 100))  # 1%
        media = work / "media"
        for index in changed:
            audio_path(media, index).write_bytes(audio_bytes(index, version=1))  # same size, other bytes
        third = run_child(work, prefect_home, concurrency)
        rendered = rendered_rows(work, third["run_id"])
        expected = [f"row-{i:06d}" for i in changed]
        print(
            f"1% rewritten:   wall {third['wall_s']} s (flow {third['flow_s']} s); rendered {len(rendered)} rows "
            f"({'exactly the rewritten ones' if rendered == expected else 'NOT the rewritten ones'}); "
            f"{third['counts']}; task runs {third['task_runs']}; peak RSS {third['max_rss_mb']} MB"
        )
        print(f"                {report_sizes(work, third['run_id'])}")
    finally:
        if keep:
            print(f"(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


# --- the 6-row example through the command line ------------------------------------------------------


def example() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-nightly-example-"))
    prefect_home = work / "prefect-home"
    env = quiet_env(prefect_home)
    command = [
        str(Path(sys.executable).with_name("sonic-catalog")),
        "render",
        str(ROOT / "manifests/examples/catalog.parquet"),
        "--catalog",
        str(work / "catalog"),
    ]
    try:
        for label in ("first render", "unchanged re-run", "unchanged re-run (again)"):
            started = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work)
            wall = time.perf_counter() - started
            summary = result.stdout.splitlines()[0] if result.stdout else result.stderr[-500:]
            print(f"{label}: {wall:.1f} s (exit {result.returncode}): {summary}")
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "sonic_catalog.cli", *command[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
        )
        wall = time.perf_counter() - started
        print(f"unchanged re-run under -X importtime: {wall:.1f} s; the slowest top-level imports (cumulative):")
        imports = []
        for line in result.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                parts = [part.strip() for part in line[len("import time:") :].split("|")]
                if parts[1].isdigit() and not parts[2].startswith(" "):
                    name = parts[2]
                    if not name.startswith(" ") and "." not in name.strip():
                        imports.append((int(parts[1]), name.strip()))
        for micros, name in sorted(imports, reverse=True)[:12]:
            print(f"  {micros / 1e6:6.2f} s  {name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="manifest rows (repeatable; default 20000)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--example", action="store_true", help="time the 6-row example through `sonic-catalog render`")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--sample-memory",
        type=float,
        metavar="SECONDS",
        help="first run: print the flow process's memory and Prefect's queue lengths every SECONDS "
        "(benchmarks/flow_memory_probe.py)",
    )
    parser.add_argument(
        "--snapshot-at",
        type=int,
        action="append",
        metavar="ROWS",
        help="with --sample-memory: object counts (and tracemalloc) when ROWS rows have a verdict (repeatable)",
    )
    parser.add_argument("--tracemalloc", action="store_true", help="with --sample-memory: trace allocations (slow)")
    parser.add_argument("--first-only", action="store_true", help="stop after the first run")
    parser.add_argument(
        "--no-task-count", action="store_true", help="don't wait for the API to count the task runs (saves minutes)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--recheck", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.warm_up:
            return warm_up(args)
        return child(args)
    if args.example:
        example()
        return 0
    sampling: tuple[str, ...] = ()
    if args.sample_memory:
        sampling = ("--sample-memory", str(args.sample_memory))
        sampling += tuple(f"--snapshot-at={rows}" for rows in args.snapshot_at or [])
        sampling += ("--tracemalloc",) if args.tracemalloc else ()
    if args.no_task_count:
        sampling += ("--no-task-count",)
    for rows in args.rows or [20_000]:
        one_size(rows, args.concurrency, args.keep, sampling, args.first_only)
    return 0


def warm_up(args: argparse.Namespace) -> int:
    """A 1-row run in a scratch folder: creates the temporary API's database in PREFECT_HOME."""
    work = Path(tempfile.mkdtemp(prefix="bench-nightly-warm-"))
    try:
        prepare_small = work / "manifest.parquet"
        shutil.copytree(Path(args.work) / "media", work / "media", ignore=shutil.ignore_patterns("audio"))
        shutil.copy(Path(args.work) / "prepared.mp4", work / "prepared.mp4")
        shutil.copy(Path(args.work) / "prepared.jpg", work / "prepared.jpg")
        (work / "media" / "a.wav").write_bytes(audio_bytes(0))
        import pandas as pd

        pd.DataFrame(
            [
                {
                    "row_id": "warm",
                    "portrait_uri": "media/hopper.jpg",
                    "audio_uri": "media/a.wav",
                    "language": "de",
                    "consent_ref": "release/bench",
                }
            ]
        ).to_parquet(prepare_small)
        args.work = str(work)
        return child(args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
