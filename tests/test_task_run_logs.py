"""Prefect's per-task-run "Finished in state Completed()" line is not sent; everything else is."""

from __future__ import annotations

import asyncio
import logging
import time

from prefect import flow, get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from flows.task_run_logs import CompletedTaskRunLines, drop_completed_task_run_lines


@task
def says_something(value: int) -> int:
    get_run_logger().info("our own line %d", value)
    return value


@task
def fails() -> None:
    raise ValueError("this task fails")


@flow
def a_small_run() -> int:
    drop_completed_task_run_lines()
    drop_completed_task_run_lines()  # once per process, however often a flow asks
    says_something.submit(1).result()
    fails.submit().wait()
    return 1


def api_logs(flow_run_id) -> list[str]:
    """The messages the API holds for the flow run's task runs (the flow run's own lines left out)."""

    async def read():
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            return [log.message for log in logs if log.task_run_id is not None]

    return asyncio.run(read())


def test_completed_lines_are_dropped_and_failures_and_our_lines_are_sent():
    state = a_small_run(return_state=True)
    assert state.result() == 1
    flow_run_id = state.state_details.flow_run_id
    deadline = time.monotonic() + 30
    messages = api_logs(flow_run_id)
    while not any("Failed" in message for message in messages) and time.monotonic() < deadline:
        time.sleep(0.5)  # logs reach the API in batches
        messages = api_logs(flow_run_id)
    assert any(message == "our own line 1" for message in messages), messages
    assert any(message.startswith("Finished in state Failed(") for message in messages), messages
    assert not any(message.startswith("Finished in state Completed(") for message in messages), messages
    assert sum(isinstance(f, CompletedTaskRunLines) for f in logging.getLogger("prefect.task_runs").filters) == 1


def test_the_filter_drops_only_the_completed_line():
    keep = CompletedTaskRunLines().filter

    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("prefect.task_runs", level, __file__, 1, msg, None, None)

    assert not keep(record(logging.INFO, "Finished in state Completed()"))
    assert keep(record(logging.ERROR, "Finished in state Failed('boom')"))
    assert keep(record(logging.INFO, "Finished in state Cached(type=COMPLETED)"))
    assert keep(record(logging.INFO, "rendered row a in 3.2 s"))
