"""What holds the flow process's memory while a catalog run is under way (issue 12's peak-RSS target).

Used by `benchmarks/nightly_repeat.py --sample-memory SECONDS`: a daemon thread in the flow's
process prints, every SECONDS and at chosen row counts, one line with the rows that have a
verdict, the process's resident memory (/proc/self/statm), the length of every Prefect
background queue (`prefect._internal.concurrency.services`: the events worker, the API log
worker, ...) and of the events worker's per-event context cache, and the flow run's
`run_results`. At the chosen row counts (`--snapshot-at`) it also prints the most numerous
object types (gc) and, when tracemalloc is on (`--tracemalloc`), where the memory allocated
since the previous snapshot was allocated. The lines start with `MEMORY ` so the parent can
show them.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def prefect_queues() -> dict[str, int]:
    """Items waiting in each of Prefect's background services, by class name."""
    from prefect._internal.concurrency.services import _QueueServiceBase

    sizes: dict[str, int] = collections.Counter()
    for cls in _all_subclasses(_QueueServiceBase):
        for instance in list(getattr(cls, "_instances", {}).values()):
            if type(instance) is not cls:
                continue
            sizes[cls.__name__] += instance._queue.qsize()
            cache = getattr(instance, "_context_cache", None)
            if cache is not None:
                sizes[cls.__name__ + "._context_cache"] += len(cache)
    return dict(sizes)


def _all_subclasses(cls):
    seen = set()
    todo = [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return seen


class MemorySampler:
    """Samples every `every_s` seconds and at each row count in `snapshot_at` (see module doc)."""

    def __init__(self, every_s: float, snapshot_at: list[int], trace: bool, out=sys.stdout):
        self.every_s = every_s
        self.snapshot_at = sorted(snapshot_at)
        self.trace = trace
        self.out = out
        self.rows = 0
        self.started = time.perf_counter()
        self.flow_context = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_snapshot = None
        self._last_types: collections.Counter | None = None
        self._lock = threading.Lock()
        if trace:
            import tracemalloc

            tracemalloc.start(12)

    def _print(self, text: str) -> None:
        # Not print(): the flow's `log_prints=True` would send it to Prefect's logger from the flow's thread.
        self.out.write(text + "\n")
        self.out.flush()

    def on_outcome(self, outcome) -> None:
        """An outcome listener: counts verdicts; wakes the sampler at a snapshot row count."""
        if self.flow_context is None:
            from prefect.context import FlowRunContext

            self.flow_context = FlowRunContext.get()
        self.rows += 1
        if self.snapshot_at and self.rows >= self.snapshot_at[0]:
            self.snapshot_at.pop(0)
            self.snapshot()  # in the flow's thread: the run waits while it is taken, as it should

    def start(self) -> None:
        threading.Thread(target=self._loop, name="memory-sampler", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.sample("end")

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample("tick")

    def sample(self, why: str) -> None:
        context = self.flow_context
        run_results = len(context.run_results) if context is not None else None
        with self._lock:
            self._print(
                f"MEMORY {why} t={time.perf_counter() - self.started:7.1f}s rows={self.rows} rss={rss_mb():7.1f}MB "
                f"run_results={run_results} queues={prefect_queues()} load={os.getloadavg()[0]:.2f} "
                f"cpu={sum(os.times()[:2]):.1f}s"
            )

    def snapshot(self) -> None:
        self.sample(f"snapshot@{self.rows}")
        gc.collect()
        types = collections.Counter(type(obj).__qualname__ for obj in gc.get_objects())
        with self._lock:
            if self._last_types is not None:
                grown = (types - self._last_types).most_common(25)
                self._print(f"MEMORY   gc objects grown since last snapshot: {grown}")
            else:
                self._print(f"MEMORY   gc objects, most numerous: {types.most_common(25)}")
            self._last_types = types
            if self.trace:
                import tracemalloc

                snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                if self._last_snapshot is not None:
                    diffs = snap.compare_to(self._last_snapshot, "traceback")[:12]
                    self._print("MEMORY   tracemalloc, grown since last snapshot (by traceback):")
                    for stat in diffs:
                        self._print(f"MEMORY     +{stat.size_diff / 2**20:.2f} MB, +{stat.count_diff} blocks")
                        for line in stat.traceback.format()[-12:]:
                            self._print(f"MEMORY       {line}")
                else:
                    top = snap.statistics("filename")[:10]
                    self._print("MEMORY   tracemalloc by file:")
                    for stat in top:
                        self._print(f"MEMORY     {stat}")
                self._last_snapshot = snap
            self.out.flush()
