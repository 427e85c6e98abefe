"""One writer per catalog: a lease object, `<catalog>/_state/lease.json`.

The lease says who holds the catalog (owner, host, pid, the run's token), when it was last
renewed (`heartbeat_at`) and until when it holds without renewal (`expires_at`). It is taken by a
conditional create, so of two runs starting together exactly one gets it:

- local disks: the lease is written to a hidden temporary and hard-linked onto its name
  (`os.link` fails when the name exists: an exclusive create whose file is never half-written);
- S3: `PutObject` with `If-None-Match: *` (s3fs `pipe_file(..., mode="create")`; AWS S3 and
  moto honour it, answering 412 when the object exists); a stale lease is replaced with
  `If-Match: <its ETag>`, so two runs taking over the same stale lease cannot both win;
- other filesystems: `pipe_file(..., mode="create")` where the filesystem implements it (gcsfs:
  a generation-0 precondition), else check-then-write, which is best effort (said in the docs).

While the run works a thread renews the heartbeat every `ttl / 4`. A second run finds the lease
and stops at once naming the holder (`CatalogLockedError`, exit 1), or waits up to
`--wait-for-lock SECONDS`. A stale lease (its holder's process is gone on this host, or its
heartbeat expired) is taken over, and said so on stderr. The lease is reentrant within a
process: the CLI takes it before Prefect starts, the flow (also run by deployments) takes it
again, and only the outermost holder releases it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from sonic_model.errors import SonicCatalogError
from tasks.catalog import Catalog

LEASE_FILE = "_state/lease.json"
DEFAULT_TTL_S = 60.0
TTL_ENV = "SONIC_CATALOG_LEASE_TTL_S"  # shorter in tests
POLL_S = 1.0


class CatalogLockedError(SonicCatalogError):
    """Another run holds the catalog's lease."""


def _ttl() -> float:
    try:
        return max(1.0, float(os.environ.get(TTL_ENV, DEFAULT_TTL_S)))
    except ValueError:
        return DEFAULT_TTL_S


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)


def describe_holder(holder: dict) -> str:
    age = time.time() - float(holder.get("heartbeat_at") or 0)
    return (
        f"{holder.get('owner', '?')} (host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"{holder.get('command') or 'a run'}, last heartbeat {age:.0f} s ago, "
        f"expires in {float(holder.get('expires_at') or 0) - time.time():.0f} s)"
    )


def is_stale(holder: dict, now: float | None = None) -> str | None:
    """Why a lease no longer holds (None: it holds): its heartbeat expired, or its process is
    gone (only knowable on the holder's own host)."""
    now = time.time() if now is None else now
    try:
        expires_at = float(holder.get("expires_at"))
    except (TypeError, ValueError):
        return "it is unreadable"
    if expires_at < now:
        return f"its heartbeat expired {now - expires_at:.0f} s ago"
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder.get("pid")), 0)
        except ProcessLookupError:
            return f"its process {holder.get('pid')} is gone"
        except (PermissionError, TypeError, ValueError):
            pass
    return None


@dataclass
class _Store:
    """The lease object on one catalog's filesystem: conditional create, read, replace, remove."""

    catalog: Catalog
    path: str = field(init=False)

    def __post_init__(self) -> None:
        self.path = self.catalog.path(LEASE_FILE)
        self.fs = self.catalog.fs
        protocols = _protocols(self.fs)
        self.kind = "local" if self.catalog.local else "s3" if {"s3", "s3a"} & set(protocols) else "other"

    def _write_temporary(self, data: bytes) -> str:
        """`data` on disk, complete, under a hidden name beside the local lease (`sweep_orphans`
        removes one a killed run left)."""
        folder = os.path.dirname(self.path)
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".lease.json.partial-{uuid.uuid4().hex[:12]}")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temporary

    def create(self, data: bytes) -> str | None:
        """Create the lease if there is none; its version (ETag on S3) or "" when created, None if taken."""
        if self.kind == "local":
            temporary = self._write_temporary(data)
            try:
                os.link(temporary, self.path)
                return ""
            except FileExistsError:
                return None
            except FileNotFoundError:
                return None  # the holder's sweep (`sweep_orphans`) took our temporary: it is held
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(temporary)
        try:
            # A filesystem with real folders (a local-like one under another protocol, a mounted
            # share) needs `_state/` before an exclusive create; object stores ignore it.
            self.fs.makedirs(self.path.rsplit("/", 1)[0], exist_ok=True)
        except OSError:
            pass
        try:
            answer = self.fs.pipe_file(self.path, data, mode="create")
        except FileExistsError:
            return None
        except TypeError:  # a filesystem without exclusive create: best effort
            if self.fs.exists(self.path):
                return None
            answer = self.fs.pipe_file(self.path, data)
        self.fs.invalidate_cache(self.path)
        return (answer or {}).get("ETag", "") if isinstance(answer, dict) else ""

    def read(self) -> tuple[dict | None, str]:
        """The lease (None: there is none) and its version (S3 ETag; "" elsewhere)."""
        self.fs.invalidate_cache(self.path)
        try:
            if self.kind == "s3":
                for _ in range(3):  # the version and the content must be of the same object
                    before = self.fs.info(self.path).get("ETag", "")
                    data = self.fs.cat_file(self.path)
                    self.fs.invalidate_cache(self.path)
                    if self.fs.info(self.path).get("ETag", "") == before:
                        break
                version = before
            else:
                data, version = self.fs.cat_file(self.path), ""
        except FileNotFoundError:
            return None, ""
        try:
            holder = json.loads(data.decode("utf-8"))
            return (holder if isinstance(holder, dict) else {}), version
        except ValueError:
            return {}, version  # garbage: stale ("unreadable")

    def renew(self, data: bytes, version: str, token: str) -> str | None:
        """The holder, having just read its own `token` in the lease, writes it again.

        On a local disk that is one atomic rename over the name, which never leaves it absent
        (`replace`'s move-away-then-create would, for an instant in which a waiting run could
        create the lease and hold it beside us). Elsewhere it is `replace`.
        """
        if self.kind != "local":
            return self.replace(data, version, token)
        temporary = self._write_temporary(data)
        try:
            os.replace(temporary, self.path)
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)
            raise
        return ""

    def replace(self, data: bytes, version: str, expected_token: str | None) -> str | None:
        """Overwrite the lease only if it is still the one read (`version` / `expected_token`);
        the new version, or None when someone else changed it meanwhile."""
        if self.kind == "s3" and version:
            try:
                answer = self.fs.pipe_file(self.path, data, IfMatch=version)
            except OSError:
                return None  # 412: changed since it was read
            self.fs.invalidate_cache(self.path)
            return answer.get("ETag", "") if isinstance(answer, dict) else ""
        if self.kind == "local":
            folder = os.path.dirname(self.path)
            tomb = os.path.join(folder, f".lease.json.taken-{uuid.uuid4().hex[:12]}")
            try:
                os.rename(self.path, tomb)  # of two takers, one moves it; the other finds nothing
            except FileNotFoundError:
                return None
            try:
                moved = json.loads(open(tomb, "rb").read().decode("utf-8"))
            except (OSError, ValueError):
                moved = {}
            if expected_token is not None and isinstance(moved, dict) and moved.get("token") != expected_token:
                with contextlib.suppress(FileExistsError):
                    os.link(tomb, self.path)  # not the one we judged: put it back
                os.remove(tomb)
                return None
            with contextlib.suppress(FileNotFoundError):
                os.remove(tomb)
            return self.create(data)
        holder, _ = self.read()
        if holder is not None and expected_token is not None and holder.get("token") != expected_token:
            return None
        self.fs.pipe_file(self.path, data)
        return ""

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.rm(self.path)

    def sweep_orphans(self) -> int:
        """Remove the hidden temporaries in `_state/` that a killed run left (a lease or state
        file half-written when SIGKILL came: `.NAME.partial-*`, `.lease.json.taken-*`).

        Called by the new holder only: one writer per catalog, so none of them is in use. A
        contender's own temporary lives for one create; if swept, its link fails and it finds
        the lease held, as it would have anyway.
        """
        folder = self.path.rsplit("/", 1)[0]
        try:
            names = [path.rsplit("/", 1)[-1] for path in self.fs.ls(folder, detail=False)]
        except (FileNotFoundError, OSError):
            return 0
        removed = 0
        for name in names:
            if name.startswith(".") and (".partial-" in name or name.startswith(".lease.json.taken-")):
                with contextlib.suppress(FileNotFoundError, OSError):
                    self.fs.rm(f"{folder}/{name}")
                    removed += 1
        return removed


class CatalogLease:
    """This process's lease on one catalog (see the module docstring)."""

    def __init__(self, catalog_url: str, command: str = "") -> None:
        self.catalog = Catalog(catalog_url)
        self.store = _Store(self.catalog)
        self.command = command
        self.ttl = _ttl()
        self.token = uuid.uuid4().hex
        self.version = ""
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _payload(self) -> bytes:
        now = time.time()
        return json.dumps(
            {
                "owner": f"{_user()}@{socket.gethostname()}",
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "token": self.token,
                "command": self.command,
                "heartbeat_at": now,
                "expires_at": now + self.ttl,
                "ttl_s": self.ttl,
            },
            indent=1,
        ).encode("utf-8")

    def acquire(self, wait_s: float = 0.0) -> CatalogLease:
        deadline = time.monotonic() + max(0.0, wait_s)
        waited = False
        while True:
            created = self.store.create(self._payload())
            if created is not None:
                self.version = created
                break
            holder, version = self.store.read()
            if holder is None:
                continue  # released between our create and read: try again
            why = is_stale(holder)
            if why is not None:
                replaced = self.store.replace(self._payload(), version, holder.get("token"))
                if replaced is not None:
                    self.version = replaced
                    _say(
                        f"warning: took over the stale lease of {self.catalog.uri(self.store.path)} "
                        f"held by {holder.get('owner', '?')} pid {holder.get('pid', '?')}: {why}"
                    )
                    break
                continue
            if time.monotonic() >= deadline:
                raise CatalogLockedError(
                    f"the catalog {self.catalog.url} is in use by another run: {describe_holder(holder)}; "
                    f"one run writes to a catalog at a time. Wait for it (--wait-for-lock SECONDS), or, if "
                    f"that run is gone, remove {self.catalog.uri(self.store.path)} (it expires by itself)"
                )
            if not waited:
                _say(f"waiting for the catalog lease held by {describe_holder(holder)}")
                waited = True
            time.sleep(min(POLL_S, max(0.05, deadline - time.monotonic())))
        self.store.sweep_orphans()
        self._thread = threading.Thread(target=self._heartbeat, name="catalog-lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                holder, version = self.store.read()
                if holder is None or holder.get("token") != self.token:
                    self.lost = "the lease was taken over by another run (this run's heartbeat was late)"
                    _say(f"warning: {self.lost}")
                    return
                replaced = self.store.renew(self._payload(), version or self.version, self.token)
                if replaced is not None:
                    self.version = replaced
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: try again next beat
                _say(f"warning: could not renew the catalog lease: {type(exc).__name__}: {exc}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            holder, _ = self.store.read()
            if holder is not None and holder.get("token") == self.token:
                self.store.remove()


_held: dict[str, tuple[CatalogLease, int]] = {}
_held_lock = threading.Lock()


@contextlib.contextmanager
def hold_catalog(catalog_url: str, *, wait_s: float = 0.0, command: str = "") -> Iterator[CatalogLease]:
    """Hold the catalog's lease for the block (reentrant within this process)."""
    key = Catalog(catalog_url).uri(Catalog(catalog_url).root)
    with _held_lock:
        if key in _held:
            lease, depth = _held[key]
            _held[key] = (lease, depth + 1)
            outer = False
        else:
            outer = True
    if outer:
        lease = CatalogLease(catalog_url, command).acquire(wait_s)
        with _held_lock:
            _held[key] = (lease, 1)
    try:
        yield lease
    finally:
        with _held_lock:
            lease, depth = _held[key]
            if depth > 1:
                _held[key] = (lease, depth - 1)
            else:
                del _held[key]
                lease.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in a container
        return "unknown"


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
