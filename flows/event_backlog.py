"""Back-pressure on Prefect's event backlog: the row driver starts no new row while this
process has too many task-run events still waiting to be sent to the API.

Prefect records task runs from events: each state a task run enters (pending, running,
completed...) is an event, queued in this process by Prefect's `EventsWorker` and sent to the
API over a websocket by a background thread. The queue is unbounded, and each queued event
keeps a copy of the task run's context alive (its `TaskRunContext`, result store, parameters:
about 18 KB an event), until it is sent. On a busy machine the flow submits task runs faster
than the worker sends their events (measured on 2 cores: the queue grew by about 5 events a
row, 10,000 events at 2,000 rows), so the flow process's memory grew with the rows of a first
run (about 80 KB a row: 2.3 GB at 20,000 rows) although nothing of the finished rows was kept.

Dropping events (`PREFECT_EVENTS_WORKER_MAX_QUEUE_SIZE`) would lose task runs from the API, so
instead the driver waits: once more than `high` events are queued it starts no further row
until the queue is down to `low` (rows already in flight go on). The events have to be sent
before the run is over anyway; waiting only stops the backlog (and its memory) from piling up.
A backlog that does not shrink for `stall_s` (an API that stopped answering) lets the rows go
on, without further holds until it is down to `low` again: a run is never stopped by its events.

The backlog is read from Prefect's private events worker (`flows/prefect_internals.py`,
`queued_events`); if a Prefect release changes it, the backlog reads as empty and the driver
never waits.
"""

from __future__ import annotations

import time

from flows.prefect_internals import queued_events

# ~18 KB an event: at most about 40 MB of backlog before the driver holds new rows back.
HIGH_WATER_EVENTS = 2000
LOW_WATER_EVENTS = 500
STALL_S = 10.0


class EventBacklog:
    """Callable: whether the event backlog is too long to start another row (with hysteresis:
    once over `high` it stays too long until it is down to `low`, or until it has not shrunk
    for `stall_s` seconds)."""

    def __init__(
        self,
        high: int = HIGH_WATER_EVENTS,
        low: int = LOW_WATER_EVENTS,
        stall_s: float = STALL_S,
        count=queued_events,
        clock=time.monotonic,
    ) -> None:
        if not 0 <= low <= high:
            raise ValueError(f"event backlog limits must satisfy 0 <= low <= high, got low={low}, high={high}")
        self.high, self.low, self.stall_s, self.count, self.clock = high, low, stall_s, count, clock
        self.holding = self.stalled = False
        self.holds = 0  # how many times the driver was held back, and how often a stalled backlog let it go
        self.stalls = 0
        self._lowest = 0
        self._shrunk_at = 0.0

    def __call__(self) -> bool:
        queued = self.count()
        if self.stalled:
            self.stalled = queued > self.low
        elif self.holding:
            now = self.clock()
            if queued < self._lowest:
                self._lowest, self._shrunk_at = queued, now
            if queued <= self.low:
                self.holding = False
            elif now - self._shrunk_at > self.stall_s:
                self.holding, self.stalled = False, True
                self.stalls += 1
        elif queued > self.high:
            self.holding = True
            self.holds += 1
            self._lowest, self._shrunk_at = queued, self.clock()
        return self.holding
