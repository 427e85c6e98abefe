"""Where a run's tasks run: a thread pool in the flow's process, or the workers of a Dask cluster.

The caller chooses, when it starts a run: the CLI with `--cluster ADDRESS` (or
`$SONIC_DASK_ADDRESS`) through `task_runner_for`, a deployment through its entrypoint
(`flows/deployed.py`, which reads `$SONIC_DASK_ADDRESS` in the worker's flow-run process).
The flows themselves default to the thread pool, whatever the environment of the process that
imports them.
"""

from __future__ import annotations

import os

from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

DASK_ADDRESS_ENV = "SONIC_DASK_ADDRESS"
LOCAL_THREADS = 4


def cluster_address(cluster: str | None = None) -> str | None:
    """The Dask scheduler to use: the explicit address, else $SONIC_DASK_ADDRESS, else None (local)."""
    return (cluster or os.environ.get(DASK_ADDRESS_ENV) or "").strip() or None


def local_task_runner(threads: int = LOCAL_THREADS) -> ThreadPoolTaskRunner:
    """A thread pool in this process."""
    return ThreadPoolTaskRunner(max_workers=max(1, threads))


def task_runner_for(cluster: str | None = None, threads: int = LOCAL_THREADS):
    """A `DaskTaskRunner` connected to `cluster` (default: $SONIC_DASK_ADDRESS), or a thread pool
    of `threads` in this process when there is no address."""
    address = cluster_address(cluster)
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    return local_task_runner(threads)


def on_cluster() -> bool:
    """Whether the flow run in progress sends its tasks to a Dask cluster."""
    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None)
    return type(runner).__name__ == "DaskTaskRunner"
