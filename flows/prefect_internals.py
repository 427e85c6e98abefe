"""Prefect's internals this project uses, all in one place, each switched off outside the
Prefect releases it was written for (`PREFECT`, below: one warning, then the plain way).

Each hook says why it is used and what happens without it. `tests/test_internals.py` fails
when a Prefect release moves one of them. Nothing here imports Prefect at module level:
`sonic_catalog.temporary_api` reads the server command before the command imports Prefect.

| hook | private to Prefect | used by | without it |
|---|---|---|---|
| `queued_events` | `EventsWorker._instances`, `._queue` | `flows/event_backlog.py` | no back-pressure |
| `cancel_events_of_task_runner` | `ThreadPoolTaskRunner._cancel_events` | `flows/row_driver.py` | nothing freed |
| `task_run_assets` | `FlowRunContext.task_run_assets` | `flows/row_driver.py` | nothing freed |
| `forget_run_results` | `FlowRunContext.run_results` | `flows/row_driver.py` | nothing freed |
| `is_completed_task_run_line` | the text "Finished in state Completed(" | `flows/task_run_logs.py` | lines kept |
| `enter_shared_client` | `SyncClientContext` entered by hand | `sonic_catalog/worker_setup.py` | a client per task |
| `temporary_server_command` | uvicorn command, `PREFECT__SERVER_*` | `sonic_catalog/temporary_api.py` | Prefect's own |
"""

from __future__ import annotations

import logging
from typing import Any

from sonic_model.internals.versions import VersionRange

PREFECT = VersionRange(
    "prefect", "3.8", "3.9", "events backlog, task-run bookkeeping, log filter, shared client, temporary API server"
)


def enabled() -> bool:
    """Whether the hooks run (the installed Prefect is in `PREFECT`'s range; else one warning)."""
    return PREFECT.supported()


# -- the events worker's queue (flows/event_backlog.py) ------------------------------------------


def queued_events() -> int:
    """Events this process's Prefect `EventsWorker`s have not sent yet (0 if that is unknowable).

    Prefect queues every task-run state event in `EventsWorker._queue` (unbounded) and keeps the
    workers in the class's `_instances` registry (`prefect._internal.concurrency.services`)."""
    if not enabled():
        return 0
    try:
        from prefect.events.worker import EventsWorker

        return sum(
            instance._queue.qsize()
            for instance in tuple(EventsWorker._instances.values())
            if isinstance(instance, EventsWorker)
        )
    except Exception:  # noqa: BLE001 - moved within the range: no back-pressure, nothing worse
        return 0


# -- per-task-run bookkeeping the flow run keeps (flows/row_driver.py) ---------------------------


def cancel_events_of_task_runner() -> dict:
    """The flow's thread-pool task runner's cancel events, one per task run submitted (empty
    dict for other runners, or with the hook off).

    Prefect's `ThreadPoolTaskRunner` keeps a `threading.Event` per task run, by task run id, for
    `cancel_all`, and never lets go of it during the flow run: at 3 task runs a row, about 3 KB
    a row for the whole run (measured: 3,000 Events, Conditions, locks and deques more per
    1,000 rows). The driver removes a task run's event once its future is done and handed on."""
    if not enabled():
        return {}
    from prefect.context import FlowRunContext

    events = getattr(getattr(FlowRunContext.get(), "task_runner", None), "_cancel_events", None)
    return events if isinstance(events, dict) else {}


def task_run_assets() -> dict:
    """The flow run's `task_run_assets` (empty dict with the hook off): Prefect records, for every
    task run, the set of data assets it hands downstream, an empty set for tasks without assets
    (ours), kept for the whole flow run (about 1 KB a row). The driver removes a finished task
    run's entry when it is empty (Prefect reads a missing entry as no assets, the same)."""
    if not enabled():
        return {}
    from prefect.context import FlowRunContext

    assets = getattr(FlowRunContext.get(), "task_run_assets", None)
    return assets if isinstance(assets, dict) else {}


def forget_run_results(results: list[Any]) -> None:
    """Drop the flow run's links from a finished row's task results to their task runs.

    Prefect remembers, for the whole flow run, which task run produced each result (and each
    field of a result: `FlowRunContext.run_results`, keyed by `id()`, a copy of the task's final
    state per entry), so that passing a result to another task records the dependency. A row's
    results go to that row's next task only; once the row has its verdict nothing will pass
    them on, and keeping the links for every row of a 20,000-row run cost memory in proportion
    to the rows. The same keys Prefect used are removed (the result and its fields, one level
    deep)."""
    if not results or not enabled():
        return
    from prefect.context import FlowRunContext
    from prefect.utilities.collections import visit_collection

    context = FlowRunContext.get()
    linked = getattr(context, "run_results", None)
    if not isinstance(linked, dict):
        return

    def forget(obj: Any) -> None:
        linked.pop(id(obj), None)

    for result in results:
        visit_collection(expr=result, visit_fn=forget, max_depth=1)


# -- the task engine's log line (flows/task_run_logs.py) -----------------------------------------

# `prefect.task_engine` logs f"Finished in state {display_state}" at INFO for every task run.
COMPLETED_TASK_RUN_LINE = "Finished in state Completed("


def is_completed_task_run_line(record: logging.LogRecord) -> bool:
    """Whether `record` is Prefect's INFO "Finished in state Completed(...)" line of a task run."""
    return (
        record.levelno == logging.INFO
        and isinstance(record.msg, str)
        and record.msg.startswith(COMPLETED_TASK_RUN_LINE)
    )


# -- one API client for a Dask worker's tasks (sonic_catalog/worker_setup.py) -------------------


def current_shared_client_context():
    """The `SyncClientContext` this thread's context holds (None if none, or with the hook off)."""
    if not enabled():
        return None
    from prefect.context import SyncClientContext

    return SyncClientContext.get()


def enter_shared_client():
    """A `SyncClientContext`, entered by hand (not in a `with`) so it stays for the process's
    lifetime and every task thread Dask starts inherits it; None with the hook off.

    Raises what entering raises (it checks the server's API version: the server must answer).
    Close it with `close_shared_client`."""
    if not enabled():
        return None
    from prefect.context import SyncClientContext

    context = SyncClientContext()
    context.__enter__()
    return context


def close_shared_client(context) -> None:
    """Close the client of a context `enter_shared_client` made (the context variable itself was
    set in the set-up's context and goes with the process)."""
    context.client.__exit__(None, None, None)


# -- Prefect's temporary API server (sonic_catalog/temporary_api.py) -----------------------------

# What Prefect's own temporary server gets besides the caller's environment
# (prefect.server.api.server.SubprocessASGIServer._run_uvicorn_command, Prefect 3.8): two of them
# are private settings (`PREFECT__...`).
SERVER_ENVIRONMENT = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
PORT_IN_USE_EXIT = 3  # uvicorn's exit status when its port was taken between our check and its bind


def temporary_server_command(python: str, port: int) -> list[str] | None:
    """The command Prefect runs for its temporary API server, copied from
    `SubprocessASGIServer._run_uvicorn_command`, on `port`; None with the hook off (then
    Prefect starts its own server, the slower way)."""
    if not enabled():
        return None
    return [
        python,
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
