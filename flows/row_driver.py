"""The row driver: many rows through their stages at once, from the flow's one thread.

A row's stages are written as a generator (`flows/row_stages.py`): it yields the future of the
task it submitted and gets that task's result back (or its exception thrown in), until it
returns the row's verdict. `run_rows` drives any number of them with at most `concurrency`
rows in flight, so one row's QA overlaps another's render.

Why generators and not a thread or a Prefect flow per row: on a cluster every row is in flight
at once (thousands), and each row spends its life waiting on remote tasks. A generator waiting
costs nothing; a thread per row would cost a thread stack each, and a subflow per row a flow run
on the API (tens of milliseconds of CPU in the flow, the server and the worker each). Prefect's
own `wait`/`as_completed` take a fixed set of futures, while here each finished future adds
the row's next one, so the loop below keeps its own queue of finished futures.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable, Generator, Iterable
from typing import Any

from prefect.futures import PrefectFuture

from flows import prefect_internals
from tasks.records import RowOutcome

RowPipeline = Generator[PrefectFuture, Any, RowOutcome]


# How long the driver waits for a finished task, at most, while `hold_back` keeps new rows back.
HOLD_BACK_POLL_S = 0.05


def run_rows(
    pipelines: Iterable[RowPipeline],
    concurrency: int | None,
    on_outcome: Callable[[RowOutcome], None] = lambda _: None,
    hold_back: Callable[[], bool] = lambda: False,
) -> list[RowOutcome]:
    """Drive row pipelines, at most `concurrency` rows in flight (None or < 1: all at once);
    outcomes in input order. `on_outcome` hears each row's verdict the moment it is known.
    While `hold_back()` is true no further row is started (rows in flight go on): the flow's
    back-pressure on Prefect's event backlog (`flows/event_backlog.py`).

    A finished task's result is sent into its row's pipeline, which answers with the next
    task's future or its final verdict; a failed task's exception is thrown into the pipeline.
    Rows already under way come first: every finished task is handed on before another row is
    started, so the first renders are submitted as soon as their probes finish, not after the
    flow has submitted every row's probe (about 25 ms of flow CPU each on a cluster).
    """
    pending = iter(enumerate(pipelines))
    if concurrency is None or concurrency < 1:
        concurrency = sys.maxsize
    outcomes: dict[int, RowOutcome] = {}
    in_flight: dict[PrefectFuture, tuple[int, RowPipeline]] = {}
    finished: queue.SimpleQueue[PrefectFuture] = queue.SimpleQueue()  # filled by the futures' callbacks
    results_of: dict[int, list[Any]] = {}  # each row's task results so far, forgotten by Prefect when it ends
    # Prefect's per-task-run bookkeeping, freed as rows finish (flows/prefect_internals.py)
    cancel_events = prefect_internals.cancel_events_of_task_runner()
    task_run_assets = prefect_internals.task_run_assets()

    def advance(position: int, pipeline: RowPipeline, value: Any = None, error: BaseException | None = None) -> bool:
        try:
            future = pipeline.throw(error) if error is not None else pipeline.send(value)
        except StopIteration as done:
            outcomes[position] = done.value
            prefect_internals.forget_run_results(results_of.pop(position, []))
            on_outcome(done.value)
            return False
        in_flight[future] = (position, pipeline)
        future.add_done_callback(finished.put)
        return True

    def hand_on(future: PrefectFuture) -> None:
        position, pipeline = in_flight.pop(future)
        cancel_events.pop(future.task_run_id, None)  # a finished task run has nothing left to cancel
        if not task_run_assets.get(future.task_run_id, True):  # no assets to hand downstream: forget it
            del task_run_assets[future.task_run_id]
        try:
            value = future.result()
        except Exception as exc:  # noqa: BLE001 - handed to the row, which records it
            advance(position, pipeline, error=exc)
        else:
            results_of.setdefault(position, []).append(value)
            advance(position, pipeline, value)

    rows_left = True
    while True:
        try:  # everything finished so far first
            while True:
                hand_on(finished.get_nowait())
        except queue.Empty:
            pass
        if rows_left and len(in_flight) < concurrency:  # a row has one task in flight at a time
            if hold_back():
                try:
                    hand_on(finished.get(timeout=HOLD_BACK_POLL_S))
                except queue.Empty:
                    pass
                continue
            next_row = next(pending, None)
            if next_row is None:
                rows_left = False
            else:
                advance(*next_row)
            continue
        if not in_flight:
            break
        hand_on(finished.get())
    return [outcomes[position] for position in sorted(outcomes)]
