"""`prefetch`: a background thread runs an iterator ahead of its consumer (render_video's frames)."""

from __future__ import annotations

import threading

import pytest

from sonic_model.prefetch import prefetch


def test_items_arrive_in_order_and_are_made_in_another_thread():
    makers = []

    def numbers():
        for number in range(50):
            makers.append(threading.current_thread())
            yield number

    assert list(prefetch(numbers(), depth=3)) == list(range(50))
    assert set(makers) == {makers[0]} and makers[0] is not threading.current_thread()


def test_an_error_in_the_source_reaches_the_consumer_after_the_items_before_it():
    def failing():
        yield 1
        yield 2
        raise ValueError("frame 3 failed")

    received = []
    with pytest.raises(ValueError, match="frame 3 failed"):
        for item in prefetch(failing(), depth=2):
            received.append(item)
    assert received == [1, 2]


def test_closing_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()
    made = []

    def endless():
        try:
            number = 0
            while True:
                made.append(number)
                yield number
                number += 1
        finally:
            closed.set()

    before = threading.active_count()
    items = prefetch(endless(), depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()
    assert closed.is_set()  # closed in its own thread, before close() returned
    assert threading.active_count() == before
    assert len(made) <= 5 + 2 + 1  # never more than `depth` (+ the one being put) ahead


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be at least 1"):
        prefetch(iter([1]), depth=0)
