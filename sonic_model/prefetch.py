"""Run an iterator in a background thread, a few items ahead of its consumer.

`render_video` uses it so that a generator makes the next frames while the calling thread
tracks, smooths and pipes the previous ones to ffmpeg. The heavy parts on both sides (OpenCV,
the TFLite face mesh, pipe writes) release the GIL, so on two cores the frame rate is bounded by
the slower side instead of by the sum of both.

Order, exceptions and early stops behave as with the plain iterator: items arrive in order, an
exception raised by the iterator is re-raised in the consumer (after the items before it), and
closing the prefetching iterator (or dropping it) stops the background thread and closes the
source iterator in that thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
# How often a blocked producer checks whether the consumer has gone away.
_POLL_S = 0.05


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable[T], depth: int = 4, *, name: str = "prefetch") -> Iterator[T]:
    """Yield the items of `items`, produced by a background thread at most `depth` items ahead.

    Memory: at most `depth` + 2 items exist at once beyond what the consumer holds.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be at least 1, got {depth}")
    return _prefetched(items, depth, name)


def _prefetched(items: Iterable[T], depth: int, name: str) -> Iterator[T]:
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, who re-raises it
            put(_Raised(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
