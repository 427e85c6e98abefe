"""Test-session set-up shared by every test module (and by every pytest-xdist worker: each
imports this file, so each gets its own PREFECT_HOME and temporary API).

Prefect reads its settings when it is first imported, so the environment is set here, at the
top of conftest (which pytest imports before any test module): a throwaway PREFECT_HOME (its
own SQLite database for the ephemeral API), no analytics or telemetry, and a startup timeout
long enough for a loaded 2-core CI machine (ARCHITECTURE.md, machine facts).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

# Under pytest-xdist (`make test` runs `-n 2`) each worker gets an equal share of the cores for
# torch's and ffmpeg's thread pools: two workers each spinning two OpenMP threads on a 2-core
# machine made the Sonic tests 5-10x slower than running them one after the other.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

_PREFECT_HOME = tempfile.mkdtemp(prefix="sonic-catalog-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
# Tests never talk to a server someone left configured in the shell.
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Content Credentials: tests never sign with a key someone configured in the shell, and the
# development certificate of render-one / calibrate goes to a temporary folder, not ~/.local.
os.environ.pop("SONIC_SIGNING_CERT", None)
os.environ.pop("SONIC_SIGNING_KEY", None)
_DEV_CREDENTIALS = tempfile.mkdtemp(prefix="sonic-catalog-dev-credentials-")
os.environ["SONIC_DEV_CREDENTIALS_DIR"] = _DEV_CREDENTIALS

import pytest  # noqa: E402


def _stop_temporary_prefect_servers() -> None:
    """Stop the temporary API servers tests started, while pytest's output streams are open
    (Prefect's own exit hook would log "Stopping temporary server" into closed streams)."""
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is None:
        return
    handlers = sys.modules.get("prefect.logging.handlers")
    if handlers is not None:  # logs of the last flow still queued for the API: send them while it is up
        handlers.APILogWorker.drain_all(timeout=10)
    for server in list(server_module.SubprocessASGIServer._instances.values()):
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def prefect_home():
    """The session's temporary PREFECT_HOME, removed when the session ends."""
    yield _PREFECT_HOME
    _stop_temporary_prefect_servers()
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)
    shutil.rmtree(_DEV_CREDENTIALS, ignore_errors=True)
