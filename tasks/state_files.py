"""Reading a catalog state file that may be damaged (truncated, garbage, wrong schema).

The catalog's truth is its sidecars and videos; the index (`index.parquet`) and the remembered
quarantines (`_state/quarantines.parquet`) are derived from them and only save work. So a state
file that cannot be read never stops a run: the caller rebuilds it (the index from the
sidecars) or drops it (a quarantine is probed again), and says so in one line on stderr,
naming the file and what was done. Written straight to stderr (not `print`): inside a flow,
Prefect turns prints into log records, which the CLI keeps off the terminal.
"""

from __future__ import annotations

import sys
import threading

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


def warn_unreadable(uri: str, error: BaseException, remedy: str) -> None:
    """One line per file and remedy per process: the plan and the index update both read the index."""
    with _lock:
        if (uri, remedy) in _warned:
            return
        _warned.add((uri, remedy))
    detail = f"{type(error).__name__}: {error}".replace("\n", " ")[:200]
    sys.stderr.write(f"warning: catalog state file {uri} is unreadable ({detail}); {remedy}\n")
    sys.stderr.flush()
