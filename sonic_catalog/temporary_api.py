"""Start Prefect's temporary local API early, beside the command's own start-up.

Without `PREFECT_API_URL`, a flow run starts Prefect's temporary API server (a uvicorn
subprocess with its own imports and database migrations check) the moment it first needs it,
and waits for it: several seconds of a short run's wall time, spent after this process has
finished its own imports. `start_temporary_api()` starts that same server (Prefect's
`SubprocessASGIServer`, which a flow run then finds running and uses) on a background thread
right away, so its start-up overlaps the command's imports and manifest reading. The caller
waits for it (`wait()`) before starting the flow, so the flow never races the start; if the
start failed, the flow's own attempt raises Prefect's error as before.

Call it after the environment the server should inherit is set (`quiet_prefect`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def start_temporary_api() -> Callable[[], None]:
    """Start the temporary API in the background when this process will use one; returns a
    function that waits until the start has finished (a no-op when no temporary API is used)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None

    def start() -> None:
        try:
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()
        except Exception:  # noqa: BLE001 - the flow run starts it again and reports the failure
            pass

    thread = threading.Thread(target=start, name="prefect-temporary-api-start", daemon=True)
    thread.start()
    return thread.join
