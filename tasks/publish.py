"""Publishing: a checked video -> the catalog, through fsspec, atomically and idempotently.

Catalog layout (any fsspec URL: local path, file://, s3://, gs://, memory://):

    <catalog>/<collection>/<language>/<row_id>.mp4    the video (the master)
    <catalog>/<collection>/<language>/<row_id>.<rendition>.mp4   each rendition (vertical, square, landscape)
    <catalog>/<collection>/<language>/<row_id>.jpg    its poster
    <catalog>/<collection>/<language>/<row_id>.json   the sidecar (written last: the commit mark)
    <catalog>/index.parquet, index.json               every published video
    <catalog>/_runs/<run_id>/...                      ledger, report, QA plots, rejected videos

Atomic: every object is written under a hidden temporary name in its final folder and then
moved onto its final name (a rename on local disks, a server-side copy on object stores, both
all-or-nothing), so a reader never finds half an object under a final name. The sidecar goes
last, so a video without its sidecar is simply not published, and the index is rebuilt only
from sidecars whose video exists.

Idempotent: the sidecar stores the content key (hash of input hashes + generator + version +
parameters); a row whose key is already published is reported `skipped_cached`, not rendered
(`tasks.lookup`).
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fsspec.core import url_to_fs

from sonic_model.cells import is_missing
from sonic_model.encode import AI_DISCLOSURE
from sonic_model.renditions import RENDITIONS
from tasks.records import FAILED_QA, PUBLISHED, SKIPPED_CACHED, CheckedVideo, RowOutcome, postprocess_figures
from tasks.scratch import discard_scratch
from tasks.signing import sign_rendered, sign_renditions

INDEX_PARQUET = "index.parquet"
INDEX_JSON = "index.json"
RUNS_DIR = "_runs"
SIDECAR_VERSION = 1


# --- the catalog as a filesystem -------------------------------------------------------------


class Catalog:
    """A catalog root on some fsspec filesystem, with atomic writes."""

    def __init__(self, url: str | os.PathLike) -> None:
        url = str(url)
        self.url = url.rstrip("/") or url
        self.fs, root = url_to_fs(self.url)
        self.local = "file" in _protocols(self.fs)
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def uri(self, path: str) -> str:
        """A URI a person (or the next run) can open: plain paths for local catalogs."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def relative(self, path: str) -> str:
        return path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path

    def exists(self, path: str) -> bool:
        try:
            return self.fs.exists(path)
        except OSError:
            return False

    def published_objects(self) -> set[str]:
        """Relative paths of every object in the catalog's published area, from one listing.

        The published area is every top-level folder except `_runs` and other `_`-folders (keys
        never start with `_` or `.`: `safe_key_part`); hidden names (`.x.partial-...`
        temporaries) are left out. One recursive listing per collection folder (on an object
        store: one paginated LIST, 1,000 keys a request) instead of a request per entry, so
        checking that 100,000 entries still have their video and sidecar costs seconds.
        """
        self.fs.invalidate_cache(self.root)  # s3fs/gcsfs cache listings: a stale one could hide a deletion
        found: set[str] = set()
        if self.local:
            if not os.path.isdir(self.root):
                return found
            for top in os.scandir(self.root):
                if top.name.startswith(("_", ".")) or not top.is_dir(follow_symlinks=False):
                    continue
                for folder, subfolders, files in os.walk(top.path):
                    subfolders[:] = [name for name in subfolders if not name.startswith(".")]
                    relative = self.relative(folder)
                    found.update(f"{relative}/{name}" for name in files if not name.startswith("."))
            return found
        try:
            top_entries = self.fs.ls(self.root, detail=True)
        except (FileNotFoundError, OSError):
            return found
        for entry in top_entries:
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if name.startswith(("_", ".")) or entry.get("type") != "directory":
                continue
            for path in self.fs.find(entry["name"]):
                relative = self.relative(self.fs._strip_protocol(path).rstrip("/"))
                if not any(part.startswith(".") for part in relative.split("/")):
                    found.add(relative)
        return found

    def read_json(self, path: str) -> dict | None:
        try:
            with self.fs.open(path, "rb") as handle:
                return json.loads(handle.read().decode("utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def _temporary_sibling(self, final: str) -> str:
        folder, name = final.rsplit("/", 1)
        return f"{folder}/.{name}.partial-{uuid.uuid4().hex[:12]}"

    def _discard(self, temporary: str) -> None:
        try:
            self.fs.rm(temporary)
        except (OSError, FileNotFoundError):
            pass

    def _write_atomically(self, final: str, upload) -> str:
        """Write with `upload(temporary)` beside `final`, then move it onto `final`.

        Whatever fails (the upload or the move), the temporary object is removed and the error
        re-raised, so nothing half-written is left under either name.
        """
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        temporary = self._temporary_sibling(final)
        try:
            upload(temporary)
            self.fs.mv(temporary, final)
        except BaseException:
            self._discard(temporary)
            raise
        return final

    def put_file(self, local_path: str | Path, final: str) -> str:
        """Copy a local file to `final` atomically; returns `final`."""
        return self._write_atomically(final, lambda temporary: self.fs.put_file(str(local_path), temporary))

    def write_bytes(self, data: bytes, final: str) -> str:
        """Write `data` to `final` atomically; returns `final`."""
        return self._write_atomically(final, lambda temporary: self.fs.pipe_file(temporary, data))


def withdraw(catalog: Catalog, sidecar_path: str) -> None:
    """Remove a published entry's sidecar (the video stays until it is replaced)."""
    try:
        if catalog.exists(sidecar_path):
            catalog.fs.rm(sidecar_path)
    except FileNotFoundError:
        pass


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rendition_key(prefix: str, name: str) -> str:
    """A rendition's key beside its master's: `<collection>/<language>/<row_id>.<name>`."""
    return f"{prefix}.{name}"


# --- poster and plot ----------------------------------------------------------------------------


def poster_jpeg(video_path: str | Path, *, max_side: int = 640) -> bytes:
    """A JPEG of the frame a third of the way in (past any opening blink or still start)."""
    from PIL import Image

    from sonic_model.video_reader import iter_video_frames, probe_video

    frames = max(1, probe_video(video_path).num_frames)
    wanted = frames // 3
    chosen = None
    for index, frame in iter_video_frames(video_path):
        chosen = frame
        if index >= wanted:
            break
    if chosen is None:
        raise ValueError(f"video has no frames: {video_path}")
    image = Image.fromarray(chosen)
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def sync_plot_png(checked: CheckedVideo) -> bytes | None:
    """Mouth opening vs audio envelope over time (what a person checks lip sync with)."""
    if not checked.envelope_series:
        return None
    import tempfile

    from sonic_model.qa import QAResult, plot_sync

    result = QAResult(
        checked.passed,
        list(checked.failures),
        dict(checked.figures),
        mouth_series=list(checked.mouth_series),
        envelope_series=list(checked.envelope_series),
        speech_series=list(checked.speech_series),
    )
    with tempfile.TemporaryDirectory() as scratch:
        return Path(plot_sync(result, Path(scratch) / "sync.png")).read_bytes()


# --- publish or reject --------------------------------------------------------------------------


def sidecar_for(
    checked: CheckedVideo,
    catalog: Catalog,
    run_id: str,
    timings: dict,
    credentials: dict | None = None,
    rendition_credentials: dict | None = None,
) -> dict:
    """The published row's sidecar. `credentials` is the master's C2PA record,
    `rendition_credentials` {rendition name: record} each rendition's (None: not signed)."""
    rendered = checked.rendered
    info = rendered.info
    prefix = info.key_prefix
    qa_of = {
        r["name"]: {"passed": r["passed"], "failures": list(r["failures"]), "figures": r["figures"]}
        for r in checked.renditions
    }
    return {
        "sidecar_version": SIDECAR_VERSION,
        "row_id": info.row_id,
        "collection": info.collection,
        "language": info.language,
        "item_id": info.item_id,
        "title": info.title,
        "video": prefix + ".mp4",
        "poster": prefix + ".jpg",
        "content_key": rendered.content_key,
        "inputs": {
            "portrait_uri": rendered.portrait_uri,
            "portrait_sha256": rendered.portrait_sha256,
            "audio_uri": rendered.audio_uri,
            "audio_sha256": rendered.audio_sha256,
            "audio_duration_s": rendered.audio_duration_s,
        },
        "generator": {"name": rendered.generator, "version": rendered.generator_version, "params": rendered.params},
        "video_facts": {
            k: rendered.render.get(k)
            for k in ("frames", "fps", "width", "height", "video_duration_s", "audio_duration_s")
        },
        "preset": rendered.params.get("preset"),
        "renditions": [
            {
                "name": rendition["name"],
                "video": rendition_key(prefix, rendition["name"]) + ".mp4",
                "width": rendition["width"],
                "height": rendition["height"],
                "qa": qa_of.get(rendition["name"], {}),
                "credentials": (rendition_credentials or {}).get(rendition["name"]),
            }
            for rendition in rendered.renditions
        ],
        "loudness": rendered.render.get("loudness"),
        "postprocess": postprocess_figures(rendered.render, rendered.params),
        "qa": {"passed": checked.passed, "failures": list(checked.failures), "figures": checked.figures},
        "consent_ref": info.consent_ref,
        "ai_generated": True,
        "disclosure": AI_DISCLOSURE,
        "credentials": credentials,  # the C2PA manifest label and signer (None: not signed)
        "timings": timings,
        "run_id": run_id,
        "published_at": now_iso(),
    }


def publish_or_reject(checked: CheckedVideo, catalog_url: str, run_id: str, signing: dict | None = None) -> RowOutcome:
    """Publish a video that passed QA; keep one that failed under the run (for the report).

    Either way the QA plot goes under `_runs/<run_id>/plots/` and the local scratch is removed.
    `signing` (`tasks.signing`): the published file is the signed copy, checked to validate
    before anything is replaced; None or mode off publishes the render unsigned.
    """
    started = time.perf_counter()
    catalog = Catalog(catalog_url)
    rendered = checked.rendered
    info = rendered.info
    prefix = info.key_prefix
    try:
        plot = sync_plot_png(checked)
        plot_path = (
            catalog.write_bytes(plot, catalog.path(RUNS_DIR, run_id, "plots", prefix + ".png")) if plot else None
        )
        poster = poster_jpeg(rendered.video_path)
        timings = {**rendered.timings, **checked.timings}
        passed_of = {r["name"]: r["passed"] for r in checked.renditions}
        if not checked.passed:
            rejected = catalog.path(RUNS_DIR, run_id, "rejected", prefix)
            video_path = catalog.put_file(rendered.video_path, rejected + ".mp4")
            poster_path = catalog.write_bytes(poster, rejected + ".jpg")
            renditions = tuple(
                {
                    "name": r["name"],
                    "uri": catalog.uri(catalog.put_file(r["path"], f"{rejected}.{r['name']}.mp4")),
                    "width": r["width"],
                    "height": r["height"],
                    "passed": passed_of.get(r["name"], False),
                }
                for r in rendered.renditions
            )
            return RowOutcome(
                info=info,
                status=FAILED_QA,
                reasons=checked.failures or ("failed QA",),
                output_uri=catalog.uri(video_path),
                poster_uri=catalog.uri(poster_path),
                plot_uri=catalog.uri(plot_path) if plot_path else None,
                content_key=rendered.content_key,
                qa_figures=checked.figures,
                timings={**timings, "publish_s": round(time.perf_counter() - started, 3)},
                postprocess=postprocess_figures(rendered.render, rendered.params),
                renditions=renditions,
            )
        # Signed first (and checked to validate): a signing failure leaves the old entry alone.
        video_file, credentials = sign_rendered(rendered, signing)
        signed_renditions = sign_renditions(rendered, signing)
        # Video and poster first, sidecar last: the sidecar is what makes a video "published".
        # A previous entry under this key is withdrawn first (its sidecar removed): should the
        # replacement fail half-way, no old sidecar describes the new video, and the index
        # (which needs the sidecar) drops the entry until a rerun publishes it again.
        withdraw(catalog, catalog.path(prefix + ".json"))
        video_path = catalog.put_file(video_file, catalog.path(prefix + ".mp4"))
        # Each rendition, signed on its own, under its own name beside the master, before the
        # sidecar that lists it.
        renditions = tuple(
            {
                "name": r["name"],
                "uri": catalog.uri(
                    catalog.put_file(
                        signed_renditions[r["name"]][0], catalog.path(rendition_key(prefix, r["name"]) + ".mp4")
                    )
                ),
                "width": r["width"],
                "height": r["height"],
                "passed": True,
            }
            for r in rendered.renditions
        )
        poster_path = catalog.write_bytes(poster, catalog.path(prefix + ".jpg"))
        timings["publish_s"] = round(time.perf_counter() - started, 3)
        sidecar = sidecar_for(
            checked,
            catalog,
            run_id,
            timings,
            credentials,
            {name: record for name, (_, record) in signed_renditions.items()},
        )
        sidecar_path = catalog.write_bytes(
            json.dumps(sidecar, indent=2, default=str).encode("utf-8"), catalog.path(prefix + ".json")
        )
        return RowOutcome(
            info=info,
            status=PUBLISHED,
            output_uri=catalog.uri(video_path),
            poster_uri=catalog.uri(poster_path),
            sidecar_uri=catalog.uri(sidecar_path),
            plot_uri=catalog.uri(plot_path) if plot_path else None,
            content_key=rendered.content_key,
            qa_figures=checked.figures,
            timings=timings,
            postprocess=postprocess_figures(rendered.render, rendered.params),
            renditions=renditions,
        )
    finally:
        discard_scratch(rendered)


# --- the catalog index ---------------------------------------------------------------------------

INDEX_COLUMNS = (
    "key",
    "row_id",
    "collection",
    "language",
    "item_id",
    "title",
    "video",
    "poster",
    "sidecar",
    "content_key",
    "generator",
    "generator_version",
    "duration_s",
    "width",
    "height",
    "rendition",
    "consent_ref",
    "ai_generated",
    "run_id",
    "published_at",
)
# What the next run's plan (tasks/plan.py) needs to tell, without opening any media, whether a
# published row's inputs changed: the inputs it was made from and their SHA-256s (from the
# sidecar), and the storage fingerprint each input had when that run listed it (size + mtime/
# ctime/inode, ETag, generation: `tasks.plan.fingerprint_inputs`), or None when it had none
# that could be trusted. Only in index.parquet; index.json (for web pages) keeps INDEX_COLUMNS.
INPUT_MEMORY_COLUMNS = (
    "portrait_uri",
    "portrait_sha256",
    "portrait_fingerprint",
    "audio_uri",
    "audio_sha256",
    "audio_fingerprint",
)
INDEX_PARQUET_COLUMNS = INDEX_COLUMNS + INPUT_MEMORY_COLUMNS


@dataclass(frozen=True)
class SeenInputs:
    """A row's inputs as a run's plan saw them before anything read them: the resolved URIs
    and their storage fingerprints (None: none that could be trusted); for a row the plan
    found unchanged, also the SHA-256s it checked the content against."""

    portrait_uri: str | None = None
    portrait_fingerprint: str | None = None
    audio_uri: str | None = None
    audio_fingerprint: str | None = None
    portrait_sha256: str | None = None
    audio_sha256: str | None = None


def index_entries(catalog: Catalog, sidecar_path: str, sidecar: dict) -> list[dict]:
    """The index entries of one published row: its master, then one per rendition (own key,
    video, width, height and rendition name; the rest as the master's, except the input memory,
    which the master's entry alone keeps)."""
    master = index_entry(catalog, sidecar_path, sidecar)
    entries = [master]
    for rendition in sidecar.get("renditions", []):
        entries.append(
            {
                **master,
                **{name: None for name in INPUT_MEMORY_COLUMNS},
                "key": rendition["video"][: -len(".mp4")],
                "video": rendition["video"],
                "width": rendition.get("width"),
                "height": rendition.get("height"),
                "rendition": rendition["name"],
            }
        )
    return entries


def index_entry(catalog: Catalog, sidecar_path: str, sidecar: dict) -> dict:
    """The master's index entry of one published row."""
    facts = sidecar.get("video_facts", {})
    generator = sidecar.get("generator", {})
    inputs = sidecar.get("inputs", {})
    return {
        "key": sidecar["video"][: -len(".mp4")],
        "row_id": sidecar.get("row_id"),
        "collection": sidecar.get("collection"),
        "language": sidecar.get("language"),
        "item_id": sidecar.get("item_id"),
        "title": sidecar.get("title"),
        "video": sidecar["video"],
        "poster": sidecar.get("poster"),
        "sidecar": catalog.relative(sidecar_path),
        "content_key": sidecar.get("content_key"),
        "generator": generator.get("name"),
        "generator_version": generator.get("version"),
        "duration_s": facts.get("video_duration_s"),
        "width": facts.get("width"),
        "height": facts.get("height"),
        "rendition": "master",
        "consent_ref": sidecar.get("consent_ref"),
        "ai_generated": bool(sidecar.get("ai_generated", True)),
        "run_id": sidecar.get("run_id"),
        "published_at": sidecar.get("published_at"),
        "portrait_uri": inputs.get("portrait_uri"),
        "portrait_sha256": inputs.get("portrait_sha256"),
        "portrait_fingerprint": inputs.get("portrait_fingerprint"),
        "audio_uri": inputs.get("audio_uri"),
        "audio_sha256": inputs.get("audio_sha256"),
        "audio_fingerprint": inputs.get("audio_fingerprint"),
    }


def _read_index_table(catalog: Catalog):
    """index.parquet as a pyarrow Table with every index column (None if there is no index yet).

    An index written before the input-memory columns existed gets them, empty (its rows are
    then hashed once by the next plan, and remembered from then on).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with catalog.fs.open(catalog.path(INDEX_PARQUET), "rb") as handle:
            table = pq.read_table(handle, pre_buffer=False)  # see manifests.schema.read_manifest
    except FileNotFoundError:
        return None
    for name in INDEX_PARQUET_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def read_index(catalog_url: str):
    """The catalog index as a DataFrame (empty, with the index columns, if there is none yet)."""
    import pandas as pd

    table = _read_index_table(Catalog(catalog_url))
    if table is None:
        return pd.DataFrame({name: pd.Series(dtype="object") for name in INDEX_PARQUET_COLUMNS})
    return table.to_pandas()


def index_records(catalog_url: str) -> dict[str, dict]:
    """The index as {key: entry} with plain Python values (None for missing), read once."""
    table = _read_index_table(Catalog(catalog_url))
    if table is None:
        return {}
    return {record["key"]: record for record in table.to_pylist()}


def update_index(catalog_url: str, outcomes: list[RowOutcome], seen: Mapping[str, SeenInputs] | None = None) -> dict:
    """Merge this run's catalog rows into the index; keep only entries whose video and sidecar exist.

    Costs what changed, not what the catalog holds: the index is read once; a sidecar is read
    only for a row published by this run (or one in the catalog but missing from the index,
    e.g. published by a run that was killed before its index update); whether every entry's
    video and sidecar still exist comes from one listing (`Catalog.published_objects`); the
    index is written once as Parquet (for data tools and the next plan) and once as JSON (for
    web pages), each atomically.

    `seen` (catalog key -> `SeenInputs`, from the run's plan): the input fingerprints to
    remember with each entry. For a row skipped as unchanged they replace the remembered ones
    (the plan checked the content is the same); for a row published by this run they are kept
    only when the plan saw the same input URIs the render used (the render hashed the inputs
    after the plan listed them, so fingerprint and hash cannot describe different contents
    without the fingerprint changing too).
    """
    import pandas as pd

    catalog = Catalog(catalog_url)
    entries = index_records(catalog_url)
    seen = seen or {}
    for outcome in outcomes:
        if not outcome.in_catalog or not outcome.sidecar_uri:
            continue
        key = outcome.info.key_prefix
        entry = entries.get(key)
        fresh = outcome.status == PUBLISHED or entry is None or entry.get("content_key") != outcome.content_key
        if fresh:
            sidecar_path = catalog.path(key + ".json")
            sidecar = catalog.read_json(sidecar_path)
            if not sidecar or not sidecar.get("video"):
                continue
            # The row's entries are replaced as a whole (a rendition it no longer has leaves the
            # index): its master's key and the keys its renditions can have, nothing else looked at.
            for name in RENDITIONS:
                entries.pop(rendition_key(key, name), None)
            master, *renditions = index_entries(catalog, sidecar_path, sidecar)
            entry = entries[key] = master
            for rendition in renditions:
                entries[rendition["key"]] = rendition
        inputs = seen.get(key)
        if inputs is not None:
            for name in ("portrait", "audio"):
                uri, fingerprint = getattr(inputs, f"{name}_uri"), getattr(inputs, f"{name}_fingerprint")
                if outcome.status == SKIPPED_CACHED or entry.get(f"{name}_uri") == uri:
                    entry[f"{name}_uri"], entry[f"{name}_fingerprint"] = uri, fingerprint
                    if outcome.status == SKIPPED_CACHED and getattr(inputs, f"{name}_sha256"):
                        entry[f"{name}_sha256"] = getattr(inputs, f"{name}_sha256")
                else:
                    entry[f"{name}_fingerprint"] = None  # the render read another URI than the plan saw
    # The index must never list a video that is not there (deleted by hand, a failed write),
    # nor one whose sidecar is gone (withdrawn by a replacement that did not finish).
    present = catalog.published_objects()
    live = [
        entry
        for entry in entries.values()
        if entry.get("video") in present and (entry.get("sidecar") or entry["key"] + ".json") in present
    ]
    for entry in live:
        if entry.get("rendition") is None:
            entry["rendition"] = "master"  # an index written before renditions existed
    live.sort(key=lambda entry: entry["key"])
    frame = pd.DataFrame(live, columns=list(INDEX_PARQUET_COLUMNS))
    for name in INPUT_MEMORY_COLUMNS:
        frame[name] = frame[name].astype("string")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    parquet_path = catalog.write_bytes(buffer.getvalue(), catalog.path(INDEX_PARQUET))
    payload = {
        "updated_at": now_iso(),
        "videos": [{name: _plain(entry.get(name)) for name in INDEX_COLUMNS} for entry in live],
    }
    json_path = catalog.write_bytes(json.dumps(payload, indent=1).encode("utf-8"), catalog.path(INDEX_JSON))
    return {"index_parquet": catalog.uri(parquet_path), "index_json": catalog.uri(json_path), "videos": len(live)}


def _plain(value):
    """A JSON-ready Python value: NaN and pandas' NA become None, numpy values Python ones."""
    if is_missing(value):
        return None
    if hasattr(value, "tolist"):  # a numpy scalar or array
        return value.tolist()
    return value
