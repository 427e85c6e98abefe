"""`sonic-catalog worker`: a long-lived render worker on a GPU machine (a Dask worker).

    sonic-catalog worker tcp://SCHEDULER:8786 [--gpus N] [--nthreads T] [--name NAME]
                         [--host IP] [--preload MODULE_OR_FILE ...] [--no-nanny]

Runs the engine's own `dask worker` (`python -m distributed.cli.dask_worker`, same process id,
so signals reach it) with `--resources GPU=N`: a render task asks for half a GPU, so this worker
has two renders in flight per GPU, generating one at a time per GPU (`tasks.render`,
generation slots; set up by `sonic_catalog.worker_setup`), while its other thread takes
CPU-only stages (probe, QA, publish). `--gpus 0` makes a CPU-only worker. The worker process lives between rows, so the
generator it loaded on its first row (tasks/render.py keeps one per process) stays warm.

Every worker must use the same Prefect API as the flow (PREFECT_API_URL): without it each task
would start a private temporary API (~10 s a task) and the UI would show nothing. The Dask
nanny (on by default) restarts a worker process that crashes; the scheduler re-runs the tasks
a dead worker held on the others.
"""

from __future__ import annotations

import argparse
import os
import sys

from sonic_model.errors import ParameterError

WORKER_SETUP = "sonic_catalog.worker_setup"  # Dask preload every worker runs (see that module)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "worker", help="start a render worker (Dask) that joins a scheduler and renders rows on its GPUs"
    )
    parser.add_argument(
        "scheduler",
        nargs="?",
        default=None,
        help="scheduler address, e.g. tcp://10.0.0.5:8786 (default: $SONIC_DASK_ADDRESS)",
    )
    parser.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="GPUs this worker renders on at once (default: 1; 0 = CPU-only worker for probes, QA, publishing)",
    )
    parser.add_argument(
        "--nthreads",
        type=int,
        default=None,
        help="task threads (default: 2 x GPUs + 1: two renders in flight per GPU, and a thread for CPU-only stages)",
    )
    parser.add_argument("--name", default=None, help="worker name shown by the scheduler (default: host and port)")
    parser.add_argument("--host", default=None, help="address to serve on and advertise (default: chosen by Dask)")
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="module or .py file every worker process imports at start (repeatable), e.g. to register a generator",
    )
    parser.add_argument(
        "--no-nanny", action="store_true", help="run without the Dask nanny (no automatic restart after a crash)"
    )
    return parser


def dask_worker_argv(args: argparse.Namespace) -> list[str]:
    """The `dask worker` command line this worker runs (checked)."""
    from flows.task_runners import DASK_ADDRESS_ENV
    from tasks.render import GPU_RESOURCE, RENDERS_PER_GPU

    scheduler = args.scheduler or os.environ.get(DASK_ADDRESS_ENV)
    if not scheduler:
        raise ParameterError(f"give the scheduler address (tcp://HOST:8786) or set {DASK_ADDRESS_ENV}")
    gpus = 1 if args.gpus is None else args.gpus
    if gpus < 0:
        raise ParameterError("--gpus must be 0 or more")
    # A thread per render in flight (two per GPU, see tasks/render.py) and one for CPU stages.
    nthreads = args.nthreads if args.nthreads is not None else RENDERS_PER_GPU * gpus + 1
    if nthreads < 1:
        raise ParameterError("--nthreads must be at least 1")
    argv = [
        sys.executable,
        "-m",
        "distributed.cli.dask_worker",
        scheduler,
        "--nthreads",
        str(nthreads),
        "--nworkers",
        "1",
    ]
    if gpus:
        argv += ["--resources", f"{GPU_RESOURCE}={gpus}"]
    if args.name:
        argv += ["--name", args.name]
    if args.host:
        argv += ["--host", args.host]
    # Our own set-up first (one Prefect API client per worker process), then the user's.
    for preload in [WORKER_SETUP, *args.preload]:
        argv += ["--preload", preload]
    if args.no_nanny:
        argv.append("--no-nanny")
    return argv


def run(args: argparse.Namespace) -> int:
    argv = dask_worker_argv(args)
    if not os.environ.get("PREFECT_API_URL"):
        raise ParameterError(
            "set PREFECT_API_URL to the Prefect server the flows use (e.g. http://prefect:4200/api); "
            "without it every task on this worker would start a private temporary API"
        )
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print("starting: " + " ".join(argv[2:]), file=sys.stderr, flush=True)
    os.execv(argv[0], argv)  # the Dask worker replaces this process: same pid, signals reach it
    return 0  # not reached
