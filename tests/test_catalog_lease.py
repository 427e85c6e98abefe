"""One writer per catalog: the lease in `_state/lease.json`, with real processes and a real S3 API
(moto's server on 127.0.0.1, which honours `If-None-Match: *` and `If-Match` on PutObject)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pytest
from cli_runs import run_cli

from tasks.catalog_lease import LEASE_FILE, TTL_ENV, CatalogLease, CatalogLockedError, hold_catalog

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from tasks.catalog_lease import hold_catalog
with hold_catalog(sys.argv[1], command="test holder"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


def start_holder(catalog: str, seconds: float, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, catalog, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        start_new_session=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_a_second_render_exits_1_at_once_naming_the_holder(tmp_path):
    catalog = tmp_path / "catalog"
    holder = start_holder(str(catalog), 60)
    try:
        manifest = tmp_path / "manifest.parquet"  # never read: the lease is taken first
        started = time.monotonic()
        done = run_cli("render", str(manifest), "--catalog", str(catalog), timeout=60)
        elapsed = time.monotonic() - started
        assert done.returncode == 1, done.stdout + done.stderr
        assert "in use by another run" in done.stderr and f"pid {holder.pid}" in done.stderr, done.stderr
        assert "test holder" in done.stderr and "--wait-for-lock" in done.stderr
        assert elapsed < 20  # an interpreter start and imports on a loaded machine, no run
        lease = json.loads((catalog / LEASE_FILE).read_text())
        assert lease["pid"] == holder.pid and lease["host"] == socket.gethostname()
        assert {"owner", "heartbeat_at", "expires_at", "token"} <= set(lease)
    finally:
        stop(holder)


def test_a_dead_holder_is_taken_over_and_said_so(tmp_path, capsys):
    catalog = str(tmp_path / "catalog")
    holder = start_holder(catalog, 60)
    os.killpg(holder.pid, signal.SIGKILL)  # killed: its lease stays behind, unexpired
    holder.wait(timeout=10)
    with hold_catalog(catalog) as lease:
        assert json.loads((tmp_path / "catalog" / LEASE_FILE).read_text())["token"] == lease.token
    err = capsys.readouterr().err
    assert "took over the stale lease" in err and f"its process {holder.pid} is gone" in err, err
    assert not (tmp_path / "catalog" / LEASE_FILE).exists()  # released


def test_the_new_holder_removes_what_a_killed_run_half_wrote_in_state(tmp_path):
    # A run SIGKILLed while renewing its lease or writing a state file leaves hidden temporaries
    # (found by tests/test_hostile_faults.py's killed run under load); the next holder removes them.
    state = tmp_path / "catalog" / "_state"
    state.mkdir(parents=True)
    orphans = [
        ".lease.json.partial-0123456789ab",
        ".lease.json.taken-0123456789ab",
        ".seeds.parquet.partial-ba9876543210",
    ]
    for name in orphans:
        (state / name).write_bytes(b"half")
    (state / "seeds.parquet").write_bytes(b"kept")
    with hold_catalog(str(tmp_path / "catalog")):
        assert sorted(p.name for p in state.iterdir()) == ["lease.json", "seeds.parquet"]
    assert (state / "seeds.parquet").read_bytes() == b"kept"


def test_a_contender_whose_temporary_is_swept_finds_the_lease_held(tmp_path, monkeypatch):
    catalog = str(tmp_path / "catalog")
    with hold_catalog(catalog) as held:
        contender = CatalogLease(catalog)
        real_link = os.link

        def swept_first(source, target):
            os.remove(source)  # the holder's sweep came between the contender's write and link
            return real_link(source, target)

        monkeypatch.setattr(os, "link", swept_first)
        with pytest.raises(CatalogLockedError, match="in use by another run"):
            contender.acquire()
        monkeypatch.undo()
        assert json.loads((tmp_path / "catalog" / LEASE_FILE).read_text())["token"] == held.token


def test_an_expired_heartbeat_is_taken_over(tmp_path, capsys):
    lease_path = tmp_path / "catalog" / LEASE_FILE
    lease_path.parent.mkdir(parents=True)
    now = time.time()
    lease_path.write_text(
        json.dumps(
            {
                "owner": "ops@elsewhere",
                "host": "elsewhere",
                "pid": 1,
                "token": "x",
                "heartbeat_at": now - 300,
                "expires_at": now - 240,
            }
        )
    )
    CatalogLease(str(tmp_path / "catalog")).acquire().release()
    err = capsys.readouterr().err
    assert "held by ops@elsewhere pid 1: its heartbeat expired 24" in err, err


def test_wait_for_lock_waits_for_the_holder_and_the_heartbeat_renews(tmp_path, monkeypatch):
    catalog = str(tmp_path / "catalog")
    holder = start_holder(catalog, 3)
    try:
        with pytest.raises(CatalogLockedError, match="in use by another run"):
            CatalogLease(catalog).acquire(wait_s=0)
        monkeypatch.setenv(TTL_ENV, "1")  # renewed every 0.25 s
        started = time.monotonic()
        lease = CatalogLease(catalog).acquire(wait_s=60)
        assert 0.5 < time.monotonic() - started < 30
        assert holder.stdout.readline().strip() == "released"
    finally:
        stop(holder)
    try:
        first = json.loads((tmp_path / "catalog" / LEASE_FILE).read_text())["heartbeat_at"]
        time.sleep(1.0)
        renewed = json.loads((tmp_path / "catalog" / LEASE_FILE).read_text())
        assert renewed["heartbeat_at"] > first and renewed["token"] == lease.token
    finally:
        lease.release()


def test_the_lease_is_never_absent_while_its_holder_renews_it(tmp_path, monkeypatch):
    # A waiting run that found no lease.json for an instant would create one and hold the
    # catalog beside the running holder (seen once as a lease read failing mid-renewal).
    monkeypatch.setenv(TTL_ENV, "1")  # renewed every 0.25 s
    path = tmp_path / "catalog" / LEASE_FILE
    with hold_catalog(str(tmp_path / "catalog")) as lease:
        first = json.loads(path.read_text())["heartbeat_at"]
        absent, deadline = 0, time.monotonic() + 1.5
        while time.monotonic() < deadline:
            absent += not path.exists()
        assert absent == 0
        assert json.loads(path.read_text())["heartbeat_at"] > first and lease.lost is None


RACER = """
import sys, time
from tasks.catalog_lease import CatalogLease, CatalogLockedError
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every racer tries at the same moment
try:
    lease = CatalogLease(sys.argv[1]).acquire(wait_s=0)
except CatalogLockedError:
    print("refused", flush=True)
else:
    print("held", flush=True)
    time.sleep(3)
    lease.release()
"""


def test_of_many_processes_starting_together_exactly_one_holds_the_catalog(tmp_path):
    catalog = str(tmp_path / "catalog")
    start_at = time.time() + 6  # after every racer has imported what it needs
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, catalog, str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        for _ in range(4)
    ]
    verdicts = sorted(racer.communicate(timeout=60)[0].strip() for racer in racers)
    assert verdicts == ["held", "refused", "refused", "refused"]


# --- S3: the conditional create, on a real S3 API ---------------------------------------------------


@pytest.fixture
def moto_catalog(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(
        fsspec.config.conf,
        "s3",
        {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}, "skip_instance_cache": True},
    )
    fsspec.filesystem("s3").mkdir("lease-bucket")
    try:
        yield "s3://lease-bucket/catalog"
    finally:
        server.stop()


def test_s3_lease_is_a_conditional_create_and_a_conditional_takeover(moto_catalog, capsys):
    lease = CatalogLease(moto_catalog).acquire()
    try:
        assert lease.version.startswith('"')  # the ETag of the object If-None-Match created
        # Eight takers at once against a held lease: every one refused by the 412 of If-None-Match.
        with ThreadPoolExecutor(8) as pool:
            refused = list(pool.map(lambda _: _refused(moto_catalog), range(8)))
        assert refused == [True] * 8
    finally:
        lease._stop.set()  # stop renewing: let it go stale without releasing it
    fs = fsspec.filesystem("s3")
    stale = json.loads(fs.cat_file("lease-bucket/catalog/" + LEASE_FILE))
    stale.update(expires_at=time.time() - 100, host="elsewhere")
    fs.pipe_file("lease-bucket/catalog/" + LEASE_FILE, json.dumps(stale).encode())
    # Four takers of the same stale lease at once: If-Match lets exactly one replace it.
    with ThreadPoolExecutor(4) as pool:
        takers = list(pool.map(lambda _: _take(moto_catalog), range(4)))
    winners = [t for t in takers if t is not None]
    assert len(winners) == 1, takers
    assert json.loads(fs.cat_file("lease-bucket/catalog/" + LEASE_FILE))["token"] == winners[0]
    assert "took over the stale lease" in capsys.readouterr().err


def _refused(catalog: str) -> bool:
    try:
        CatalogLease(catalog).acquire(wait_s=0).release()
    except CatalogLockedError:
        return True
    return False


def _take(catalog: str) -> str | None:
    """Take the lease (no waiting); its token, or None if another taker got it."""
    lease = CatalogLease(catalog)
    try:
        lease.acquire(wait_s=0)
    except CatalogLockedError:
        return None
    lease._stop.set()  # keep it held (not released) for the check
    return lease.token
