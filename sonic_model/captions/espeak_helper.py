"""The helper process that synthesizes speech for `espeak.synthesize`: its request loop, nothing else.

libespeak-ng is loaded afresh for every synthesis (espeak.py: the same text always gives the same
speech), and eSpeak NG 1.51 keeps 3-4 KB of every load (its Terminate does not free the current
voice): a worker that aligned 100,000 rows would grow by ~0.7 GB. The loads happen here instead,
and `espeak._Helper` replaces this process every `HELPER_CALLS` syntheses.

Requests are pickled `(text, voice, words_per_minute)` on stdin; each reply is a pickled
`("ok", Synthesis)` or `("error", exception)` on the stdout the process was started with. Anything
else written to stdout (by the library or Python) goes to stderr instead. EOF on stdin ends it.

What the library itself prints while it speaks is dropped: it is about its own phoneme tables
("No envelope", printed once per sound when a voice reads another script's letters, e.g. Russian
by the Mandarin voice: a wrong-language row, which the match figure fails anyway), and a run of
such rows, each said again for its decoys, filled a log with hundreds of such lines.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from collections.abc import Iterator

from sonic_model.captions import espeak


def main() -> int:
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the library's own printing must not land among the replies
    while True:
        try:
            text, voice, words_per_minute = pickle.load(requests)
        except EOFError:
            return 0
        try:
            with _library_output_dropped():
                reply = ("ok", espeak.engine().synthesize(text, voice, words_per_minute))
        except Exception as error:  # noqa: BLE001 - handed back to the caller, who raises it
            reply = ("error", error)
        pickle.dump(reply, replies)
        replies.flush()


@contextlib.contextmanager
def _library_output_dropped() -> Iterator[None]:
    """stdout and stderr (file descriptors 1 and 2, where C code writes) go to /dev/null inside."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
