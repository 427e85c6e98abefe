"""Back-pressure on Prefect's event backlog (flows/event_backlog.py) and the row driver's hold
(flows/row_driver.py): a first run's memory must not grow with events Prefect has not sent yet
(issue 12), and a stalled backlog must never stop a run."""

from __future__ import annotations

import threading

import pytest
from prefect import flow, task

from flows.event_backlog import EventBacklog, queued_events
from flows.row_driver import run_rows
from tasks.records import PUBLISHED, RowInfo, RowOutcome


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backlog_holds_above_high_water_until_low_water():
    queued = iter([100, 2001, 1500, 600, 501, 500, 1999, 2001])
    backlog = EventBacklog(high=2000, low=500, count=lambda: next(queued), clock=Clock())
    assert [backlog() for _ in range(8)] == [False, True, True, True, True, False, False, True]
    assert backlog.holds == 2 and backlog.stalls == 0


def test_a_backlog_that_stops_shrinking_lets_the_rows_go_on():
    clock = Clock()
    queued = [3000]
    backlog = EventBacklog(high=2000, low=500, stall_s=10, count=lambda: queued[0], clock=clock)
    assert backlog()
    clock.now, queued[0] = 5, 2500  # shrinking: still held
    assert backlog()
    clock.now = 15.5  # no smaller for 10.5 s: the API stopped taking events
    assert not backlog() and backlog.stalls == 1
    clock.now, queued[0] = 100, 9000  # stays let go while the backlog is stuck above low water...
    assert not backlog()
    queued[0] = 400  # ...until it drains; then it holds again when it grows past high water
    assert not backlog()
    queued[0] = 2001
    assert backlog() and backlog.holds == 2


def test_limits_are_checked():
    with pytest.raises(ValueError, match="low <= high"):
        EventBacklog(high=10, low=20)


@task
def add_one(value: int) -> int:
    return value + 1


def _row(index: int):
    value = yield add_one.submit(index)
    value = yield add_one.submit(value)
    return RowOutcome(info=RowInfo(row_id=f"row-{index}"), status=PUBLISHED, reasons=(str(value),))


def test_driver_starts_no_row_while_held_and_finishes_every_row():
    started: list[int] = []
    holds = {"calls": 0}
    lock = threading.Lock()

    def rows():
        for index in range(6):
            started.append(index)
            yield _row(index)

    def hold_back() -> bool:
        # Held for the first 20 questions: meanwhile the rows already started must finish, no other may start.
        with lock:
            holds["calls"] += 1
            if holds["calls"] == 1:
                assert started == []
            if 1 < holds["calls"] <= 20:
                assert len(started) == 1, started
            return holds["calls"] in range(2, 21)

    @flow
    def drive() -> list[RowOutcome]:
        return run_rows(rows(), concurrency=2, hold_back=hold_back)

    outcomes = drive()
    assert [o.info.row_id for o in outcomes] == [f"row-{i}" for i in range(6)]
    assert [o.reasons for o in outcomes] == [(str(i + 2),) for i in range(6)]
    assert holds["calls"] > 20


def test_queued_events_reads_prefects_events_worker():
    @flow
    def a_few_tasks() -> int:
        return sum(add_one.submit(i).result() for i in range(3))

    assert a_few_tasks() == 6
    queued = queued_events()
    assert isinstance(queued, int) and queued >= 0
    from prefect.events.worker import EventsWorker

    workers = [w for w in EventsWorker._instances.values() if isinstance(w, EventsWorker)]
    assert workers and all(hasattr(w._queue, "qsize") for w in workers), (
        "Prefect's events worker registry moved: the back-pressure (flows/event_backlog.py) reads it"
    )
