"""Start Prefect's temporary local API first thing, beside the command's own start-up.

Without a Prefect server configured, a flow run starts Prefect's temporary API (a uvicorn
subprocess serving `prefect.server.api.server:create_app` on 127.0.0.1) the moment it first
needs it, and waits for it. That start is most of a short run's wall time (about 6 s on a
2-core machine: the server imports its whole API, then checks the database's migrations), and
Prefect's own way of starting it first imports that same server code into *this* process too
(another ~2.5 s, holding the GIL while our own modules import).

`start_temporary_api()` launches the same server, the same way (same command, same
environment flags), before this process has imported Prefect at all, so the server's start-up
runs on the other core while the command imports its modules and reads the manifest. Then
`TemporaryAPI.use()`, called once Prefect is imported and just before the flow:
- if Prefect's settings name a server (`PREFECT_API_URL` from a profile or `prefect.toml`) or
  turn the temporary API off, stops ours: the run goes where the user said;
- else waits until ours answers `/api/health` and points Prefect at it (`PREFECT_API_URL` in
  this process's environment and Prefect's global settings, so every thread and client Prefect
  makes finds it, while settings a caller entered itself still win);
- if ours failed to start, stops it and changes nothing: the flow starts Prefect's own as
  before, and a failure there is reported by Prefect.
The server is stopped when the process exits (or by `stop()`), as Prefect stops its own.

Set the environment the server should inherit first (`commands.render.quiet_prefect_env`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Prefect's command and private settings for its temporary server, copied: flows/prefect_internals.py.
from flows.prefect_internals import PORT_IN_USE_EXIT, SERVER_ENVIRONMENT, temporary_server_command

DEFAULT_STARTUP_TIMEOUT_S = 20.0  # Prefect's default for PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryAPI:
    """One temporary Prefect API server of this process (module docstring)."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.api_url: str | None = None  # set once Prefect uses it
        self._previous_env: str | None = None
        atexit.register(self.stop)  # once, however often `launch` runs (a taken port relaunches)

    def launch(self) -> None:
        self.port = free_port()
        command = temporary_server_command(sys.executable, self.port)
        if command is None:  # a Prefect release the copied command was not written for: Prefect starts its own
            self.process = None
            return
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **SERVER_ENVIRONMENT},
            stdin=subprocess.DEVNULL,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def use(self) -> None:
        """Point Prefect at this server, or stop it where Prefect should not use it (module docstring)."""
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_SERVER_EPHEMERAL_ENABLED,
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        )

        configured = PREFECT_API_URL.value()
        if self.api_url is not None and configured == self.api_url and self.running:
            return  # already in use (a second command in the same process)
        if (configured and configured != self.api_url) or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            self.stop()
            return
        timeout = float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value() or DEFAULT_STARTUP_TIMEOUT_S)
        if not self._wait_healthy(timeout):
            self.stop()  # the flow starts Prefect's own, and reports its failure
            return
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self._previous_env = os.environ.get("PREFECT_API_URL")
        self._point_prefect_at(self.api_url)

    @staticmethod
    def _point_prefect_at(api_url: str | None) -> None:
        """`PREFECT_API_URL` for this process: its environment (subprocesses, settings built anew)
        and Prefect's global settings, which every thread without settings of its own reads."""
        from prefect.context import refresh_global_settings_context

        if api_url is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = api_url
        refresh_global_settings_context()

    def _wait_healthy(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None:
                return False
            status = self.process.poll()
            if status == PORT_IN_USE_EXIT:
                self.launch()  # the port was taken meanwhile: another one
                continue
            if status is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the server (after Prefect has sent it the logs still queued) and give Prefect back
        the settings it had."""
        if self.api_url is not None and self.running:
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            for worker in (APILogWorker, EventsWorker):
                with contextlib.suppress(Exception):  # what cannot be sent must not fail the stop
                    worker.drain_all(timeout=5)
        if self.api_url is not None:
            ours = os.environ.get("PREFECT_API_URL") == self.api_url
            self._point_prefect_at(self._previous_env if ours else os.environ.get("PREFECT_API_URL"))
            self.api_url = None
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        global _current
        if _current is self:
            _current = None


_current: TemporaryAPI | None = None


class _NothingToStart:
    def use(self) -> None:
        pass

    def stop(self) -> None:
        pass


def start_temporary_api() -> TemporaryAPI | _NothingToStart:
    """Launch the temporary API now unless the environment names a server or turns it off; call
    `.use()` on the result once Prefect is imported, before the flow (module docstring)."""
    global _current
    if os.environ.get("PREFECT_API_URL") or os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "").lower() in (
        "0",
        "false",
        "no",
        "off",
    ):
        return _NothingToStart()
    if _current is not None and _current.running:
        return _current  # one server per process, as Prefect's own
    _current = TemporaryAPI()
    _current.launch()
    return _current
