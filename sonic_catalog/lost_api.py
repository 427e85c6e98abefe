"""A run whose work is done keeps its verdict when the Prefect API goes away.

The flow records its verdict itself: run.json with stage "finished" and its summary, written
before the flow touches the API again (artifacts, its final state, logs and events still queued).
If the API is gone by then, Prefect's client retries each of those calls with backoff (minutes in
all) and the flow call finally raises a connection error, although every row is published.

So once the flow has announced its summary (`flows.run_record.finished_listener`), the command's
exit code is settled by the rows: `FinishedRunWatch` gives the flow `FLUSH_GRACE_S` to return;
if it has not and the API does not answer, or if the flow call raises, the command says so in
one warning line, marks run.json `api_lost`, prints the summary and exits with the code the rows
earned. Leaving the process at once (`os._exit`, after the lease is released and output flushed)
is what bounds the wait: Prefect's queued logs and events have nowhere to go.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import urllib.request
from collections.abc import Callable

FLUSH_GRACE_S = 5.0  # how long a finished run waits for Prefect to flush before the API is checked
HEALTH_TIMEOUT_S = 2.0


def api_answers(api_url: str | None, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether the Prefect API at `api_url` answers its health check (no url: nothing to lose)."""
    if not api_url:
        return True
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout_s) as response:
            return response.status == 200
    except Exception:  # noqa: BLE001 - refused, reset, timed out: the API is not there
        return False


def lost_api_warning(api_url: str | None) -> str:
    return (
        f"warning: lost the Prefect API at {api_url or '(unknown)'} after the run finished; "
        "its record there may be incomplete"
    )


def mark_api_lost(summary: dict) -> None:
    """Say in run.json that the API was lost (best effort: the rows' verdict is already there)."""
    try:
        from tasks.ledger import read_run_info, write_run_info

        info = read_run_info(summary["catalog"], summary["run_id"])
        write_run_info(summary["catalog"], summary["run_id"], {**info, "api_lost": True})
    except Exception:  # noqa: BLE001 - the record is a courtesy; the verdict stands without it
        pass


class FinishedRunWatch:
    """Holds the summary the flow announced and, if the flow does not return `grace_s` after it
    while the API does not answer, ends the process with the rows' exit code."""

    def __init__(
        self,
        api_url: str | None,
        conclude: Callable[[dict], int],
        release: Callable[[], None] = lambda: None,
        grace_s: float = FLUSH_GRACE_S,
    ) -> None:
        self.api_url, self.conclude, self.release, self.grace_s = api_url, conclude, release, grace_s
        self.summary: dict | None = None
        self._returned = threading.Event()
        self._settled = threading.Lock()

    def finished(self, summary: dict) -> None:
        """The flow's summary is written: start the clock on Prefect's flush."""
        self.summary = summary
        threading.Thread(target=self._watch, name="finished-run-watch", daemon=True).start()

    def returned(self) -> None:
        self._returned.set()

    def _watch(self) -> None:
        while not self._returned.wait(self.grace_s):
            if not api_answers(self.api_url):
                if not self._settled.acquire(blocking=False):
                    return
                self.leave(self.settle())

    def leave(self, code: int) -> None:
        """End the process now: Prefect's exit-time flush of logs and events to a dead API
        would retry for minutes. The catalog's lease is released first; output is flushed."""
        self.release()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def settle(self) -> int:
        """One warning, the record marked, the summary printed: the rows' exit code."""
        logging.raiseExceptions = False  # Prefect's log worker then drops its "--- Error logging to API ---" lines
        print(lost_api_warning(self.api_url), file=sys.stderr)
        assert self.summary is not None
        mark_api_lost(self.summary)
        return self.conclude(self.summary)

    def settle_after_error(self) -> int | None:
        """The flow call raised: the rows' exit code if the flow had finished its work, else None."""
        if self.summary is None or not self._settled.acquire(blocking=False):
            return None
        self._returned.set()
        code = self.settle()
        if not api_answers(self.api_url):
            self.leave(code)
        return code
