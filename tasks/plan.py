"""Plan before work: decide for every row, without opening its media, what a run must do with it.

A nightly renders the same (growing) manifest again and again, and on most nights almost
nothing in it changed. Probing a row costs about half a second of CPU (image decode, face
detection, audio decode, voice activity), and every row's tasks cost Prefect database rows, so
a run first decides, in bulk, which rows need any work at all:

- `skip`: the row is published (its video and sidecar exist), its inputs are the ones it was
  made from, and the run's generator, version and the row's effective parameters give the
  same content key as the published entry. Its verdict is `skipped_cached` straight away.
- `keep_quarantine`: the row was quarantined by an earlier probe and nothing that verdict
  depended on changed (inputs, media limits, generator, parameters, the probe's own code); the
  verdict and its reason are kept without probing again (unless `recheck`).
- `work`: everything else goes the full way (probe, render, QA, publish), as before.

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

Where the remembered facts live: the index's input-memory columns (`tasks.publish.
INPUT_MEMORY_COLUMNS`) for published rows; `_state/quarantines.parquet` under the catalog for
rows a probe refused (`QuarantineMemory`), one file read once and written once per run.

`force` makes every row `work` (the user knows better: a generator fix with the same version,
a suspicion). `recheck` ignores the remembered quarantines (probe them again).

The functions here are pure (no Prefect); `plan_run_task` at the bottom is the thin task.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE

from sonic_model.generators import RenderParams
from sonic_model.renditions import RENDITIONS
from tasks.publish import Catalog, SeenInputs, index_records, now_iso, rendition_key
from tasks.records import QUARANTINED, SKIPPED_CACHED, RowInfo, RowOutcome, content_key
from tasks.storage import DEFAULT_ALLOWED_SCHEMES, _local_path, check_uri_allowed, default_roots, is_local, uri_scheme

SKIP = "skip"
KEEP_QUARANTINE = "keep_quarantine"
WORK = "work"
DECISIONS = (SKIP, KEEP_QUARANTINE, WORK)

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

QUARANTINES_FILE = "_state/quarantines.parquet"
QUARANTINE_COLUMNS = (
    "key",
    "row_id",
    "run_id",
    "reason",
    "conditions",
    "portrait_uri",
    "portrait_fingerprint",
    "audio_uri",
    "audio_fingerprint",
    "quarantined_at",
)

# The code whose verdicts a remembered quarantine is: when any of it changes (a better face
# detector, a new audio check), remembered quarantines are probed again once.
PROBE_MODULES = (
    "tasks.probe",
    "tasks.storage",
    "tasks.limits",
    "sonic_model.image",
    "sonic_model.audio",
    "sonic_model.face",
    "sonic_model.errors",
)


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
        paths = {uri: fs._strip_protocol(uri).rstrip("/") for uri in wanted}
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
    by_name = {fs._strip_protocol(entry["name"]).rstrip("/"): entry for entry in entries}
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


# --- what was remembered ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedEntry:
    """A published row as the index (or its sidecar) remembers it."""

    key: str
    run_id: str | None
    content_key: str | None
    video: str
    poster: str | None
    sidecar: str
    portrait_uri: str | None = None
    portrait_sha256: str | None = None
    portrait_fingerprint: str | None = None
    audio_uri: str | None = None
    audio_sha256: str | None = None
    audio_fingerprint: str | None = None

    @classmethod
    def from_record(cls, record: Mapping) -> PublishedEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {name: record.get(name) for name in names}
        values["sidecar"] = values.get("sidecar") or f"{record['key']}.json"
        return cls(**values)


@dataclass(frozen=True)
class RememberedQuarantine:
    """A probe's verdict and what it depended on (`conditions`: generator, parameters, limits,
    probe code), with the inputs' fingerprints at the time."""

    key: str
    row_id: str
    run_id: str
    reason: str
    conditions: str
    portrait_uri: str | None
    portrait_fingerprint: str | None
    audio_uri: str | None
    audio_fingerprint: str | None
    quarantined_at: str = ""


def read_quarantines(catalog: Catalog) -> dict[str, RememberedQuarantine]:
    """`_state/quarantines.parquet` as {key: RememberedQuarantine} (empty when there is none)."""
    import pandas as pd

    try:
        with catalog.fs.open(catalog.path(QUARANTINES_FILE), "rb") as handle:
            frame = pd.read_parquet(handle, pre_buffer=False)
    except FileNotFoundError:
        return {}
    frame = frame.astype(object).where(pd.notna(frame), None)
    names = [f.name for f in dataclasses.fields(RememberedQuarantine)]
    return {
        record["key"]: RememberedQuarantine(**{name: record.get(name) for name in names})
        for record in frame.to_dict("records")
    }


def write_quarantines(catalog: Catalog, quarantines: Mapping[str, RememberedQuarantine]) -> str:
    """Write the quarantine memory (atomically, one object); returns its URI."""
    import io

    import pandas as pd

    frame = pd.DataFrame(
        [dataclasses.asdict(q) for q in sorted(quarantines.values(), key=lambda q: q.key)],
        columns=list(QUARANTINE_COLUMNS),
    ).astype("string")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return catalog.uri(catalog.write_bytes(buffer.getvalue(), catalog.path(QUARANTINES_FILE)))


# --- the plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSettings:
    """What a run's verdicts depend on besides the rows' inputs."""

    generator: str
    generator_version: str
    defaults: RenderParams = field(default_factory=RenderParams)
    limits: Mapping = field(default_factory=dict)  # MediaLimits.as_dict()
    max_file_bytes: int = 256 * 1024 * 1024
    force: bool = False
    recheck: bool = False
    allowed_schemes: tuple[str, ...] = DEFAULT_ALLOWED_SCHEMES
    allowed_roots: tuple[str, ...] | None = None  # default: the manifest's folder tree


@dataclass(frozen=True)
class RowPlan:
    """The plan's decision for one row, and why. `outcome` is the row's verdict when the plan
    settled it (`skip`, `keep_quarantine`); `work` rows go the full way."""

    row: object  # ManifestRow
    info: RowInfo
    key: str  # the row's catalog key (`RowInfo.key_prefix`)
    decision: str
    why: str
    seen: SeenInputs
    conditions: str = ""
    outcome: RowOutcome | None = None


@dataclass
class RunPlan:
    """Every row's decision, in manifest order, and what the plan measured."""

    rows: list[RowPlan]
    timings: dict = field(default_factory=dict)
    hashed_inputs: int = 0
    sidecars_read: int = 0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(DECISIONS, 0)
        for row in self.rows:
            counts[row.decision] += 1
        return counts

    def work(self) -> list[RowPlan]:
        return [row for row in self.rows if row.decision == WORK]

    def settled(self) -> list[RowOutcome]:
        """The verdicts the plan reached by itself (skipped and kept-quarantine rows)."""
        return [row.outcome for row in self.rows if row.outcome is not None]

    def seen_inputs(self) -> dict[str, SeenInputs]:
        """Catalog key -> the inputs the plan saw, for `tasks.publish.update_index`."""
        return {row.key: row.seen for row in self.rows}

    def by_key(self) -> dict[str, RowPlan]:
        return {row.key: row for row in self.rows}


def probe_code_version(modules: Iterable[str] = PROBE_MODULES) -> str:
    """A hash of the probe's source files (found without importing them)."""
    digest = hashlib.sha256()
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            continue
        with open(spec.origin, "rb") as handle:
            digest.update(name.encode() + b"\0" + handle.read())
    return digest.hexdigest()[:16]


_PROBE_CODE_VERSION: list[str] = []


def _probe_version() -> str:
    if not _PROBE_CODE_VERSION:
        _PROBE_CODE_VERSION.append(probe_code_version())
    return _PROBE_CODE_VERSION[0]


def resolve_inputs(rows, manifest_url: str, settings: PlanSettings) -> dict[int, tuple[str, str] | str]:
    """Row position -> (portrait URI, audio URI), resolved and normalised to exactly the string
    the probe uses (`check_uri_allowed(resolve_uri(...))`), or why not (that row goes the full
    way, and the probe refuses it with the real reason).

    The rows come from `validate_table`, which has already checked every URI against the
    allow-list and the allowed roots (symlinks resolved); here local paths take a fast path
    (join + normpath, a few microseconds instead of a full check, which matters at 100,000
    rows) with the lexical roots check kept as a guard. Other URIs get the full check.
    """
    from manifests.schema import resolve_uri

    roots = list(settings.allowed_roots) if settings.allowed_roots is not None else default_roots(manifest_url)
    local_manifest = is_local(manifest_url)
    base = os.path.dirname(resolve_uri(manifest_url, "x")) if local_manifest else ""
    local_roots = [os.path.normpath(os.path.abspath(_local_path(root))) for root in roots if is_local(root)]
    realpath_cache: dict[str, str] = {}
    resolved: dict[str, str | Exception] = {}

    def one(written: str):
        if written in resolved:
            return resolved[written]
        text = str(written).strip()
        try:
            if local_manifest and uri_scheme(text) == "" and "::" not in text:
                path = os.path.normpath(text if os.path.isabs(text) else os.path.join(base, text))
                if not any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in local_roots):
                    raise ValueError(f"path {path} is outside the allowed roots")
                resolved[written] = path
            else:
                resolved[written] = check_uri_allowed(
                    resolve_uri(manifest_url, text), settings.allowed_schemes, roots, realpath_cache=realpath_cache
                )
        except Exception as exc:  # noqa: BLE001 - the probe gives the real reason
            resolved[written] = exc
        return resolved[written]

    out: dict[int, tuple[str, str] | str] = {}
    for position, row in enumerate(rows):
        portrait, audio = one(row.portrait_uri), one(row.audio_uri)
        problems = [
            f"{name}: {value}"
            for name, value in (("portrait_uri", portrait), ("audio_uri", audio))
            if isinstance(value, Exception)
        ]
        out[position] = "; ".join(problems) if problems else (portrait, audio)
    return out


def quarantine_conditions(params: Mapping, settings: PlanSettings) -> str:
    """What a probe verdict depends on besides the inputs' bytes."""
    material = json.dumps(
        {
            "generator": settings.generator,
            "generator_version": settings.generator_version,
            "params": params,
            "limits": dict(settings.limits),
            "probe_code": _probe_version(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def plan_rows(
    rows,
    manifest_url: str,
    catalog_url: str,
    settings: PlanSettings,
    *,
    settle_s: float = SETTLE_S,
    threads: int = IO_THREADS,
) -> RunPlan:
    """Decide for every validated row whether it needs work (see the module docstring).

    Cost: one read of the index and of the quarantine memory, one listing of the catalog's
    published area, one listing per input folder (or info() per input in sparse folders), a
    sidecar read per row published but missing from the index, and the bytes of the inputs
    whose fingerprint changed or cannot be trusted (each distinct URI once). No media decode.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    catalog = Catalog(catalog_url)
    infos = [RowInfo.from_row(row) for row in rows]
    keys = [info.key_prefix for info in infos]
    uris = resolve_inputs(rows, manifest_url, settings)
    timings["resolve_s"] = _lap(started)

    mark = time.perf_counter()
    wanted = [uri for pair in uris.values() if isinstance(pair, tuple) for uri in pair]
    fingerprints = fingerprint_inputs(wanted, settle_s=settle_s, threads=threads)
    timings["fingerprint_s"] = _lap(mark)

    mark = time.perf_counter()
    entries = {key: PublishedEntry.from_record(record) for key, record in index_records(catalog_url).items()}
    quarantines = read_quarantines(catalog)
    present = catalog.published_objects()
    # Published but not in the index (a run killed before its index update): its sidecar says.
    unindexed = [key for key in keys if key not in entries and f"{key}.json" in present and f"{key}.mp4" in present]
    sidecars_read = 0
    if unindexed:
        from tasks.publish import index_entry

        def from_sidecar(key: str):
            sidecar = catalog.read_json(catalog.path(key + ".json"))
            if not sidecar or not sidecar.get("video"):
                return None
            return PublishedEntry.from_record(index_entry(catalog, catalog.path(key + ".json"), sidecar))

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for key, entry in zip(unindexed, pool.map(from_sidecar, unindexed), strict=False):
                if entry is not None:
                    entries[key] = entry
        sidecars_read = len(unindexed)
    timings["catalog_s"] = _lap(mark)

    mark = time.perf_counter()
    params_cache: dict[tuple, tuple] = {}
    plans: list[RowPlan | None] = []
    to_hash: list[tuple[int, RowPlan, PublishedEntry, _KeyMaker]] = []
    for position, (row, info, key) in enumerate(zip(rows, infos, keys, strict=False)):
        pair = uris[position]
        if isinstance(pair, str):
            plans.append(RowPlan(row, info, key, WORK, f"inputs need the probe: {pair}", SeenInputs()))
            continue
        portrait, audio = (fingerprints.get(uri, Fingerprint(None, "not listed")) for uri in pair)
        seen = SeenInputs(pair[0], portrait.value, pair[1], audio.value)
        key_of, conditions = _params(row, settings, params_cache)
        if isinstance(key_of, Exception):
            plans.append(RowPlan(row, info, key, WORK, "parameters need the probe's check", seen))
            continue
        if settings.force:
            plans.append(RowPlan(row, info, key, WORK, "--force", seen, conditions))
            continue
        remembered = quarantines.get(key)
        if remembered is not None and not settings.recheck and _same_quarantine(remembered, seen, conditions):
            why = f"quarantined by run {remembered.run_id}, nothing changed since"
            outcome = RowOutcome(
                info=info,
                status=QUARANTINED,
                reasons=(
                    f"quarantine kept: {remembered.reason} (inputs, limits and parameters unchanged since run "
                    f"{remembered.run_id}; --recheck to probe again)",
                ),
                plan=why,
            )
            plans.append(RowPlan(row, info, key, KEEP_QUARANTINE, why, seen, conditions, outcome))
            continue
        entry = entries.get(key)
        if entry is None:
            why = (
                "new row"
                if remembered is None
                else (
                    "--recheck"
                    if settings.recheck
                    else f"quarantined by run {remembered.run_id}; something it depended on changed"
                )
            )
            plans.append(RowPlan(row, info, key, WORK, why, seen, conditions))
            continue
        if entry.video not in present or entry.sidecar not in present:
            missing = "video" if entry.video not in present else "sidecar"
            why = f"published {missing} is missing from the catalog: rendering again"
            plans.append(RowPlan(row, info, key, WORK, why, seen, conditions))
            continue
        gone = [name for name in key_of.renditions if f"{rendition_key(key, name)}.mp4" not in present]
        if gone:
            why = f"published {gone[0]} rendition is missing from the catalog: rendering again"
            plans.append(RowPlan(row, info, key, WORK, why, seen, conditions))
            continue
        if entry.portrait_sha256 and entry.audio_sha256:
            expected = key_of(entry.portrait_sha256, entry.audio_sha256)
            if expected != entry.content_key:
                why = f"generator or parameters changed since run {entry.run_id}"
                plans.append(RowPlan(row, info, key, WORK, why, seen, conditions))
                continue
            if _unchanged(entry, seen):
                seen = SeenInputs(
                    seen.portrait_uri,
                    seen.portrait_fingerprint,
                    seen.audio_uri,
                    seen.audio_fingerprint,
                    entry.portrait_sha256,
                    entry.audio_sha256,
                )
                plans.append(
                    RowPlan(
                        row,
                        info,
                        key,
                        SKIP,
                        f"unchanged since run {entry.run_id}",
                        seen,
                        conditions,
                        _skipped(catalog, info, entry, f"unchanged since run {entry.run_id}", key_of),
                    )
                )
                continue
        plans.append(None)  # decided below, from the inputs' bytes
        to_hash.append((position, RowPlan(row, info, key, WORK, "", seen, conditions), entry, key_of))
    timings["decide_s"] = _lap(mark)

    mark = time.perf_counter()
    hashed: dict[str, str | None] = {}
    if to_hash:
        needed = []
        for _, plan, entry, _ in to_hash:
            for name in ("portrait", "audio"):
                uri = getattr(plan.seen, f"{name}_uri")
                if not _known_sha(entry, plan.seen, name):
                    needed.append(uri)
        hashed = hash_inputs(needed, settings.max_file_bytes, threads=threads)
    for position, plan, entry, key_of in to_hash:
        shas = {}
        for name in ("portrait", "audio"):
            shas[name] = (
                getattr(entry, f"{name}_sha256")
                if _known_sha(entry, plan.seen, name)
                else hashed.get(getattr(plan.seen, f"{name}_uri"))
            )
        if shas["portrait"] is None or shas["audio"] is None:
            plans[position] = dataclasses.replace(plan, why="inputs could not be read in full: the probe will say why")
        elif key_of(shas["portrait"], shas["audio"]) == entry.content_key:
            reason = f"unchanged since run {entry.run_id} (content re-hashed: {_what_changed(entry, plan.seen)})"
            seen = dataclasses.replace(plan.seen, portrait_sha256=shas["portrait"], audio_sha256=shas["audio"])
            plans[position] = dataclasses.replace(
                plan, decision=SKIP, why=reason, seen=seen, outcome=_skipped(catalog, plan.info, entry, reason, key_of)
            )
        else:
            changed = [name for name in ("portrait", "audio") if shas[name] != getattr(entry, f"{name}_sha256")]
            what = " and ".join(changed) if changed and entry.portrait_sha256 else "content"
            plans[position] = dataclasses.replace(plan, why=f"{what} changed since run {entry.run_id}")
    timings["hash_s"] = _lap(mark)
    timings["total_s"] = _lap(started)
    return RunPlan(rows=plans, timings=timings, hashed_inputs=len(hashed), sidecars_read=sidecars_read)


def _lap(since: float) -> float:
    return round(time.perf_counter() - since, 4)


class _KeyMaker:
    """`tasks.records.content_key` for one run's generator and one set of parameters, with the
    part that is the same for every row serialised once (a nightly computes 100,000 keys).

    The material is the same JSON text `content_key` hashes, keys sorted (the test
    `test_content_keys_match_the_renderer_s` holds the two together), so the keys are equal.
    """

    def __init__(self, settings: PlanSettings, params: dict) -> None:
        # What content_key hashes: which parameters were explicit is not part of the video.
        params = {name: value for name, value in params.items() if name != "explicit"}
        self.settings, self.params = settings, params
        # The renditions a published row with these parameters has beside its master.
        self.renditions = tuple(name for name in params.get("renditions") or () if name != "master")
        fixed = {"generator": settings.generator, "generator_version": settings.generator_version, "params": params}
        self.template = (
            '{"audio_sha256": "%s", '
            + json.dumps(fixed, sort_keys=True)[1:-1].replace("%", "%%")
            + ', "portrait_sha256": "%s"}'
        )

    def __call__(self, portrait_sha256: str, audio_sha256: str) -> str:
        if not (_HEX.fullmatch(portrait_sha256 or "") and _HEX.fullmatch(audio_sha256 or "")):
            return content_key(
                portrait_sha256=portrait_sha256,
                audio_sha256=audio_sha256,
                generator=self.settings.generator,
                generator_version=self.settings.generator_version,
                params=self.params,
            )
        return hashlib.sha256((self.template % (audio_sha256, portrait_sha256)).encode("utf-8")).hexdigest()


_HEX = re.compile(r"[0-9a-f]{64}")


def _params(row, settings: PlanSettings, cache: dict) -> tuple[_KeyMaker | Exception, str]:
    """The content-key maker for the row's effective parameters, and its quarantine conditions;
    computed once per distinct set of overrides (most rows have none)."""
    from manifests.schema import OVERRIDE_COLUMNS, PRESET_COLUMN

    overrides = tuple(getattr(row, name, None) for name in (*OVERRIDE_COLUMNS, PRESET_COLUMN))
    if overrides not in cache:
        try:
            params = dataclasses.asdict(row.render_params(settings.defaults))
            cache[overrides] = (_KeyMaker(settings, params), quarantine_conditions(params, settings))
        except Exception as exc:  # noqa: BLE001 - the probe reports a bad parameter
            cache[overrides] = (exc, "")
    return cache[overrides]


def _known_sha(entry: PublishedEntry, seen: SeenInputs, name: str) -> bool:
    """Whether the remembered hash of one input still describes it (same URI, same trusted fingerprint)."""
    fingerprint = getattr(seen, f"{name}_fingerprint")
    return (
        bool(getattr(entry, f"{name}_sha256"))
        and fingerprint is not None
        and getattr(entry, f"{name}_uri") == getattr(seen, f"{name}_uri")
        and getattr(entry, f"{name}_fingerprint") == fingerprint
    )


def _unchanged(entry: PublishedEntry, seen: SeenInputs) -> bool:
    return _known_sha(entry, seen, "portrait") and _known_sha(entry, seen, "audio")


def _what_changed(entry: PublishedEntry, seen: SeenInputs) -> str:
    parts = []
    for name in ("portrait", "audio"):
        if _known_sha(entry, seen, name):
            continue
        if getattr(entry, f"{name}_uri") != getattr(seen, f"{name}_uri") and getattr(entry, f"{name}_uri"):
            parts.append(f"{name} now read from another URI")
        elif getattr(seen, f"{name}_fingerprint") is None:
            parts.append(f"{name} fingerprint not trusted")
        elif getattr(entry, f"{name}_fingerprint") is None:
            parts.append(f"{name} had no fingerprint yet")
        else:
            parts.append(f"{name} touched, same bytes")
    return ", ".join(parts) or "fingerprints refreshed"


def _same_quarantine(remembered: RememberedQuarantine, seen: SeenInputs, conditions: str) -> bool:
    return (
        remembered.conditions == conditions
        and seen.portrait_fingerprint is not None
        and seen.audio_fingerprint is not None
        and (
            remembered.portrait_uri,
            remembered.portrait_fingerprint,
            remembered.audio_uri,
            remembered.audio_fingerprint,
        )
        == (seen.portrait_uri, seen.portrait_fingerprint, seen.audio_uri, seen.audio_fingerprint)
    )


def _skipped(catalog: Catalog, info: RowInfo, entry: PublishedEntry, reason: str, key_of: _KeyMaker) -> RowOutcome:
    # A rendition's size is fixed by its name (RENDITIONS): listed as a rendered row lists it.
    renditions = tuple(
        {
            "name": name,
            "uri": catalog.uri(catalog.path(f"{rendition_key(entry.key, name)}.mp4")),
            "width": RENDITIONS[name].width,
            "height": RENDITIONS[name].height,
            "passed": True,
        }
        for name in key_of.renditions
    )
    return RowOutcome(
        renditions=renditions,
        info=info,
        status=SKIPPED_CACHED,
        reasons=(reason,),
        plan=reason,
        output_uri=catalog.uri(catalog.path(entry.video)),
        poster_uri=catalog.uri(catalog.path(entry.poster)) if entry.poster else None,
        sidecar_uri=catalog.uri(catalog.path(entry.sidecar)),
        content_key=entry.content_key,
    )


# --- remembering quarantines --------------------------------------------------------------------------


def remember_quarantines(
    catalog_url: str,
    plan: RunPlan,
    outcomes: Iterable[RowOutcome],
    run_id: str,
    *,
    lasting: Callable[[RowOutcome], bool] = lambda outcome: not outcome.transient,
) -> dict:
    """Update `_state/quarantines.parquet` after a run: read once, merge, write once.

    A planned row quarantined by this run's probe is remembered (with the fingerprints and
    conditions the plan saw) when `lasting(outcome)` says its verdict comes from the inputs'
    content (default: the outcome is not `transient`, as a storage read that failed is) and
    both fingerprints are trusted; a kept
    quarantine stays as it was; any other verdict of a planned row forgets the row. Rows the
    run did not plan are left alone.
    """
    catalog = Catalog(catalog_url)
    remembered = read_quarantines(catalog)
    before = dict(remembered)
    planned = plan.by_key()
    for outcome in outcomes:
        key = outcome.info.key_prefix
        row = planned.get(key)
        if row is None or row.info.row_id != outcome.info.row_id:
            continue
        if row.decision == KEEP_QUARANTINE:
            continue
        seen = row.seen
        if (
            outcome.status == QUARANTINED
            and lasting(outcome)
            and row.conditions
            and seen.portrait_fingerprint is not None
            and seen.audio_fingerprint is not None
        ):
            remembered[key] = RememberedQuarantine(
                key=key,
                row_id=outcome.info.row_id,
                run_id=run_id,
                reason=outcome.reason,
                conditions=row.conditions,
                portrait_uri=seen.portrait_uri,
                portrait_fingerprint=seen.portrait_fingerprint,
                audio_uri=seen.audio_uri,
                audio_fingerprint=seen.audio_fingerprint,
                quarantined_at=now_iso(),
            )
        else:
            remembered.pop(key, None)
    if remembered == before:
        return {"quarantines": len(remembered), "written": False}
    write_quarantines(catalog, remembered)
    return {"quarantines": len(remembered), "written": True}


# --- the Prefect task ------------------------------------------------------------------------------


@task(name="plan-run", task_run_name="plan-run", cache_policy=NO_CACHE)
def plan_run_task(rows, manifest_url: str, catalog_url: str, settings: PlanSettings) -> RunPlan:
    """`plan_rows` as one task for the whole run (no task per row)."""
    plan = plan_rows(rows, manifest_url, catalog_url, settings)
    counts = plan.counts()
    get_run_logger().info(
        "plan: %d rows to work on, %d unchanged and skipped, %d quarantines kept (%d inputs hashed, %.2f s)",
        counts[WORK],
        counts[SKIP],
        counts[KEEP_QUARANTINE],
        plan.hashed_inputs,
        plan.timings.get("total_s", 0.0),
    )
    return plan


@task(name="update-catalog-index", task_run_name="update-catalog-index", cache_policy=NO_CACHE)
def update_catalog_state_task(catalog_url: str, outcomes: list[RowOutcome], plan: RunPlan | None, run_id: str) -> dict:
    """After a run: the catalog index (with the input fingerprints the plan saw) and the
    remembered quarantines, each read once and written once (one task for both)."""
    from tasks.publish import update_index

    index = update_index(catalog_url, outcomes, plan.seen_inputs() if plan is not None else None)
    if plan is not None:
        index["quarantines_kept"] = remember_quarantines(catalog_url, plan, outcomes, run_id)["quarantines"]
    return index
