"""Set-up of every `sonic-catalog worker` process: a Dask preload that the command always passes.

1. Generation slots: one per GPU the worker offers (`--gpus`, the Dask `GPU` resource). Two
   render tasks are in flight per GPU; the slot lets one generate at a time while the other
   gets ready (`tasks.render.generation_slot`).
2. One Prefect API client per worker process, shared by every task it runs.

Why: Prefect runs each task on a Dask worker in a fresh context and, finding no API client
there, builds new ones for it (two per task), each loading the CA bundle into a new SSL
context. Measured with py-spy on `benchmarks/fanout_scaling.py`: about 30 ms of CPU a task,
the largest single share of a worker's orchestration cost (Prefect's own tracking of the
problem: PrefectHQ/prefect#14986, #19106). A `SyncClientContext` entered here (by hand: a hook
into Prefect's internals, `flows/prefect_internals.py`), before the worker
first talks to the scheduler, is inherited by every task the worker runs (Dask copies the
worker's context into its task threads), and Prefect's `get_client` hands out its client
instead of building one. The client is shared by the worker's task threads, as Prefect itself
shares a flow's client with the tasks of its thread pool.

A worker serves the one Prefect server named by its PREFECT_API_URL (which `sonic-catalog
worker` requires); flows sending it tasks must use the same server.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("sonic_catalog.worker")

# The context entered at set-up, kept for the worker's lifetime (closed at teardown).
_client_context = None


def dask_setup(worker) -> None:
    from tasks.render import GPU_RESOURCE, set_generation_slots

    gpus = int(worker.state.total_resources.get(GPU_RESOURCE, 0))
    set_generation_slots(gpus)
    logger.info("generation slots: %d (one per GPU)", gpus)
    _share_one_prefect_client()


def _share_one_prefect_client() -> None:
    global _client_context
    from flows import prefect_internals

    if prefect_internals.current_shared_client_context() is not None:
        return  # someone already provides a client here
    try:
        context = prefect_internals.enter_shared_client()  # checks the server's API version: it must answer
    except Exception as exc:  # noqa: BLE001 - the worker still works, only slower
        logger.warning(
            "could not open a shared Prefect API client (%s: %s); each task will open its own "
            "(about 30 ms of CPU a task). Is PREFECT_API_URL right and the server up?",
            type(exc).__name__,
            exc,
        )
        return
    if context is None:  # a Prefect release the hook was not written for: each task opens its own
        return
    _client_context = context
    logger.info("one Prefect API client for this worker's tasks: %s", context.client.api_url)


def dask_teardown(worker) -> None:  # noqa: ARG001 - Dask's preload hook
    global _client_context
    if _client_context is None:
        return
    # Close the client itself: the context variable was set in the set-up's context and is
    # dropped with the process.
    from flows import prefect_internals

    try:
        prefect_internals.close_shared_client(_client_context)
    except Exception:  # noqa: BLE001 - the process is going away; nothing to save
        pass
    _client_context = None


def shared_client():
    """The client this worker process shares between its tasks (None before set-up)."""
    return None if _client_context is None else _client_context.client
