"""Storage fingerprints and content hashes of a run's inputs: how the plan tells, without
opening any media, whether an input changed.

"Its inputs are the ones it was made from" is decided from storage metadata, never assumed:

- Each input's *fingerprint* comes from fsspec (`fingerprint_inputs`): size + mtime + ctime +
  inode on local disks (ctime cannot be set back, so a rewrite hidden by `os.utime` still
  shows), size + ETag on S3, size + generation + checksum on GCS. Files are listed with one
  `ls(detail=True)` per folder when several inputs share it (`info()` otherwise), so 20,000
  inputs cost a few listings, not 20,000 requests.
- A fingerprint is remembered only once its file has *settled*: a timestamp-based fingerprint
  of a file modified less than `SETTLE_S` before it was listed is not trusted, because a
  second write within the same clock tick (or the 2 s of a FAT/HFS+ timestamp) could leave
  size and timestamps unchanged ("racy git"). Such a file, one whose metadata cannot be read
  (info() fails), or one whose fingerprint differs from the remembered one is *hashed*: its
  bytes are streamed through SHA-256 (`hash_inputs`, each distinct URI once) and the row is
  skipped only if the content key computed from those hashes is the published one; its new
  fingerprint is then remembered. So a changed input is always caught: by its fingerprint,
  or, when the fingerprint cannot be trusted, by its bytes.
- The published entries come from the catalog index, read once; an entry counts only when its
  video and sidecar are in one listing of the catalog's published area. A video deleted from
  the catalog is therefore rendered again, and a row published by a run that was killed
  before its index update (sidecar and video present, no index entry) is found from its
  sidecar, which is read for that row alone.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sonic_model.internals.fsspec import fs_path
from tasks.storage import _local_path, is_local

# A timestamp-based fingerprint is trusted only for a file last changed at least this long
# before it was listed: the coarsest common timestamp granularity (FAT and HFS+: 2 s and 1 s;
# ext4/xfs/btrfs/tmpfs: a kernel tick, a few ms). A younger file is hashed instead, until it settles.
SETTLE_S = 2.0
# Inputs sharing a folder are fingerprinted with one listing of the folder when at least this
# many of them are wanted, else one info() each (a listing of a folder holding 100,000 objects
# to look at 3 of them would cost 100 requests on S3).
BULK_LISTING_MIN = 4
# Threads for listings, info() calls, sidecar reads and hashing (all I/O: network or disk).
IO_THREADS = 8
HASH_CHUNK = 1 << 20


# --- fingerprints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What storage says about one input: `value` to compare with the remembered one, or None
    with `problem` saying why there is none that can be trusted (then the input is hashed)."""

    value: str | None
    problem: str = ""


# Per filesystem: the metadata that changes whenever the content does, and whether it is a
# timestamp (then subject to SETTLE_S). ctime ("created" in fsspec's local info: st_ctime on
# Linux) is set by the kernel on every write and every utime(), so a rewrite whose mtime was
# restored still changes it; the inode tells a file replaced by a rename.
_LOCAL_FIELDS = ("size", "mtime", "created", "ino")
_CONTENT_FIELDS = (
    "etag",
    "md5",
    "md5hash",
    "content_md5",
    "contentmd5",
    "crc32c",
    "checksum",
    "generation",
    "version_id",
    "versionid",
)
_TIME_FIELDS = ("mtime", "lastmodified", "last_modified", "updated", "modified", "created", "mtime_ns")


def fingerprint_from_info(protocol: str, info: Mapping, listed_at: float, settle_s: float = SETTLE_S) -> Fingerprint:
    """The fingerprint of one object from its fsspec `info()` / `ls(detail=True)` entry.

    `listed_at`: when the metadata was read (time.time() just before the call).
    """
    if info.get("type") not in (None, "file"):
        return Fingerprint(None, f"is a {info.get('type')}, not a file")
    size = info.get("size")
    if size is None:
        return Fingerprint(None, "storage reports no size")
    if protocol in ("file", "local"):  # (fingerprint_inputs stats local files itself: local_fingerprint)
        values = {name: info.get(name) for name in _LOCAL_FIELDS}
        if any(value is None for value in values.values()):
            return Fingerprint(None, "storage reports no modification time")
        return _settled(f"file:{_pairs(values)}", (values["mtime"], values["created"]), listed_at, settle_s)
    if protocol in ("s3", "s3a"):
        # The ETag is the MD5 of the bytes (or of the parts of a multipart upload): it changes
        # with the content and reads the same in a listing and a HEAD (LastModified does not:
        # milliseconds in one, seconds in the other).
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
        return Fingerprint(f"s3:{_pairs({'size': size, 'etag': etag})}") if etag else Fingerprint(None, "no ETag")
    if protocol in ("gs", "gcs"):
        # The generation changes on every write of the object; the checksums on every content.
        values = {
            "size": size,
            "generation": info.get("generation"),
            "crc32c": info.get("crc32c"),
            "md5": info.get("md5Hash"),
        }
        if values["generation"] is None and values["crc32c"] is None and values["md5"] is None:
            return Fingerprint(None, "no generation or checksum")
        return Fingerprint(f"gs:{_pairs(values)}")
    lowered = {str(name).lower(): value for name, value in info.items()}
    content = {name: lowered[name] for name in _CONTENT_FIELDS if lowered.get(name) not in (None, "")}
    if content:
        return Fingerprint(f"{protocol}:{_pairs({'size': size, **content})}")
    times = {name: lowered[name] for name in _TIME_FIELDS if lowered.get(name) not in (None, "")}
    if not times:
        return Fingerprint(None, f"{protocol} storage reports nothing that changes with the content")
    return _settled(f"{protocol}:{_pairs({'size': size, **times})}", tuple(times.values()), listed_at, settle_s)


def _pairs(values: Mapping) -> str:
    return ";".join(f"{name}={_text(value)}" for name, value in values.items())


def _text(value) -> str:
    if isinstance(value, float):
        return repr(value)  # exact: 1700000000.1234567 stays itself
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _seconds(value) -> float | None:
    """A timestamp as seconds since the epoch (float, datetime or ISO text), None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) / 1e9 if value > 1e14 else float(value)  # *_ns fields
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _settled(value: str, timestamps: Iterable, listed_at: float, settle_s: float) -> Fingerprint:
    seconds = [_seconds(stamp) for stamp in timestamps]
    if any(second is None for second in seconds):
        return Fingerprint(None, "unreadable modification time")
    age = listed_at - max(seconds)
    if age < settle_s:
        return Fingerprint(None, f"modified {max(age, 0):.1f} s before it was listed (hashed until it settles)")
    return Fingerprint(value)


def local_fingerprint(path: str, listed_at: float | None = None, settle_s: float = SETTLE_S) -> Fingerprint:
    """A local file's fingerprint from `os.stat` (following symlinks to the file itself).

    Straight from the kernel, not fsspec's local `info()`: that reports `st_birthtime` as
    "created" where the platform has one, which does not change on writes, while `st_ctime` does
    (on every write and every utime(); nothing can set it back). Nanoseconds, not float seconds.
    On Linux a folder listing saves nothing here (each entry needs its own stat anyway).
    """
    listed_at = time.time() if listed_at is None else listed_at
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Fingerprint(None, "not found")
    except OSError as exc:
        return Fingerprint(None, f"stat failed ({exc.strerror or type(exc).__name__})")
    if not stat.S_ISREG(st.st_mode):
        return Fingerprint(None, "not a regular file")
    value = (
        f"local:size={st.st_size};mtime_ns={st.st_mtime_ns};ctime_ns={st.st_ctime_ns};ino={st.st_ino};dev={st.st_dev}"
    )
    return _settled(value, (st.st_mtime_ns / 1e9, st.st_ctime_ns / 1e9), listed_at, settle_s)


def _folder_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0]


def fingerprint_inputs(
    uris: Iterable[str],
    *,
    settle_s: float = SETTLE_S,
    bulk_min: int = BULK_LISTING_MIN,
    threads: int = IO_THREADS,
    clock: Callable[[], float] = time.time,
) -> dict[str, Fingerprint]:
    """Fingerprint every distinct URI (resolved and allowed: see `resolve_inputs`), in bulk.

    Local files: one `os.stat` each (`local_fingerprint`). Other storage: URIs are grouped by
    folder; a folder with at least `bulk_min` wanted inputs is listed once (`ls(detail=True)`,
    one paginated request per 1,000 objects on S3), the others get one `info()` per input.
    Listing caches are bypassed (a stale s3fs listing must not hide a change). Whatever cannot
    be read gives a Fingerprint without a value (and the input is hashed), never an exception.
    """
    import fsspec

    results: dict[str, Fingerprint] = {}
    groups: dict[str, list[str]] = {}
    for uri in dict.fromkeys(uris):
        if is_local(uri):
            results[uri] = local_fingerprint(os.path.abspath(_local_path(uri)), clock(), settle_s)
        else:
            groups.setdefault(_folder_of(uri), []).append(uri)

    def one_group(folder_url: str) -> dict[str, Fingerprint]:
        wanted = groups[folder_url]
        try:
            fs, folder = fsspec.core.url_to_fs(folder_url)
        except Exception as exc:  # noqa: BLE001 - an unknown protocol: hashed (and the probe says why)
            return {uri: Fingerprint(None, f"cannot open its storage ({type(exc).__name__})") for uri in wanted}
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        paths = {uri: fs_path(fs, uri).rstrip("/") for uri in wanted}
        found: dict[str, Fingerprint] = {}
        if len(wanted) >= bulk_min:
            found.update(_list_folder(fs, protocol, folder, paths, settle_s, clock) or {})
        for uri in wanted:
            if uri not in found:
                found[uri] = _info_one(fs, protocol, paths[uri], settle_s, clock)
        return found

    if groups:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(groups)))) as pool:
            for found in pool.map(one_group, list(groups)):
                results.update(found)
    return results


def _list_folder(fs, protocol, folder, paths: Mapping[str, str], settle_s, clock) -> dict[str, Fingerprint] | None:
    """Fingerprints of the wanted objects of one folder from one listing (None: listing failed)."""
    try:
        fs.invalidate_cache(folder)
        listed_at = clock()
        entries = fs.ls(folder, detail=True)
    except Exception:  # noqa: BLE001 - fall back to info() per object
        return None
    by_name = {fs_path(fs, entry["name"]).rstrip("/"): entry for entry in entries}
    found = {}
    for uri, path in paths.items():
        entry = by_name.get(path)
        if entry is None:
            found[uri] = Fingerprint(None, "not found")
        elif not entry.get("islink"):  # a link's own entry does not describe its target: info() follows it
            found[uri] = fingerprint_from_info(protocol, entry, listed_at, settle_s)
    return found


def _info_one(fs, protocol, path, settle_s, clock) -> Fingerprint:
    try:
        fs.invalidate_cache(path)
        listed_at = clock()
        info = fs.info(path)
    except FileNotFoundError:
        return Fingerprint(None, "not found")
    except Exception as exc:  # noqa: BLE001 - unreadable metadata: hash the bytes instead
        return Fingerprint(None, f"info() failed ({type(exc).__name__})")
    return fingerprint_from_info(protocol, info, listed_at, settle_s)


def _filesystem(uri: str):
    """(filesystem, path) for a resolved URI; local names are never parsed by fsspec."""
    import fsspec

    if is_local(uri):
        return fsspec.filesystem("file"), os.path.abspath(_local_path(uri))
    return fsspec.core.url_to_fs(uri)


# --- hashing --------------------------------------------------------------------------------------


def hash_input(uri: str, max_bytes: int) -> str | None:
    """SHA-256 of an input's bytes, streamed (never the whole file in memory); None when it
    cannot be read or is over `max_bytes` (the probe then reports the problem)."""
    try:
        fs, path = _filesystem(uri)
        digest = hashlib.sha256()
        total = 0
        with fs.open(path, "rb") as handle:
            while block := handle.read(HASH_CHUNK):
                total += len(block)
                if total > max_bytes:
                    return None
                digest.update(block)
        return digest.hexdigest()
    except Exception:  # noqa: BLE001 - unreadable: the row goes the full way and the probe says why
        return None


def hash_inputs(uris: Iterable[str], max_bytes: int, threads: int = IO_THREADS) -> dict[str, str | None]:
    """`hash_input` for every distinct URI, `threads` at a time (hashlib releases the GIL)."""
    distinct = list(dict.fromkeys(uris))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return dict(zip(distinct, pool.map(lambda uri: hash_input(uri, max_bytes), distinct), strict=False))
