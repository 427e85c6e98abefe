"""One log line fewer per task run: Prefect's "Finished in state Completed()".

Prefect's task engine logs, at INFO, "Finished in state Completed()" for every task run that
completes; each such record is queued in the flow's process and sent to the API, which stores it
as a log row. A nightly's first run makes three or four task runs a row, so that is tens of
thousands of log rows saying what the task runs' states already say (the UI shows the state of
every task run). The filter drops exactly those records; every other line, failures, retries
and crashes ("Finished in state Failed(...)" is an ERROR), and every log of our own tasks, still
goes to the API and the console.
"""

from __future__ import annotations

import logging

from flows import prefect_internals

TASK_RUN_LOGGER = "prefect.task_runs"


class CompletedTaskRunLines(logging.Filter):
    """Drops Prefect's INFO "Finished in state Completed(...)" line of each completed task run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not prefect_internals.is_completed_task_run_line(record)


def drop_completed_task_run_lines() -> None:
    """Install the filter on Prefect's task-run logger of this process (once); not with a Prefect
    release the match was not written for (`flows/prefect_internals.py`: the lines are kept)."""
    if not prefect_internals.enabled():
        return
    logger = logging.getLogger(TASK_RUN_LOGGER)
    if not any(isinstance(existing, CompletedTaskRunLines) for existing in logger.filters):
        logger.addFilter(CompletedTaskRunLines())
