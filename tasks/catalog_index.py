"""The catalog index (index.parquet for tools and the next night's plan, index.json for web
pages): every published video, rebuilt only from sidecars whose video exists."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

from sonic_model.cells import is_missing
from sonic_model.renditions import RENDITIONS
from tasks.catalog import INDEX_JSON, INDEX_PARQUET, Catalog, now_iso, rendition_key
from tasks.records import CAPTIONS_UPDATED, PUBLISHED, SKIPPED_CACHED, RowOutcome
from tasks.state_files import warn_unreadable

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
    "captions",  # the WebVTT beside the video (its .srt has the same stem), None: no captions
)
# What the next run's plan (tasks/plan.py) needs to tell, without opening any media, whether a
# published row's inputs changed: the inputs it was made from and their SHA-256s (from the
# sidecar), and the storage fingerprint each input had when that run listed it (size + mtime/
# ctime/inode, ETag, generation: `tasks.fingerprints.fingerprint_inputs`), or None when it had none
# that could be trusted. Only in index.parquet; index.json (for web pages) keeps INDEX_COLUMNS.
INPUT_MEMORY_COLUMNS = (
    "portrait_uri",
    "portrait_sha256",
    "portrait_fingerprint",
    "audio_uri",
    "audio_sha256",
    "audio_fingerprint",
    # The content key without the captions (`tasks.records.frames_key`), and the row's captions_uri
    # file as it was published: with them the plan tells a captions-only change from a new video.
    "frames_key",
    "script_sha256",
    "captions_uri",
    "captions_sha256",
    "captions_fingerprint",
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
    # The row's captions_uri file (None: the row has none), like the two inputs above.
    captions_uri: str | None = None
    captions_fingerprint: str | None = None
    captions_sha256: str | None = None


# The inputs whose storage fingerprints the index remembers.
REMEMBERED_INPUTS = ("portrait", "audio", "captions")


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
        "captions": (sidecar.get("captions") or {}).get("vtt"),
        "portrait_uri": inputs.get("portrait_uri"),
        "portrait_sha256": inputs.get("portrait_sha256"),
        "portrait_fingerprint": inputs.get("portrait_fingerprint"),
        "audio_uri": inputs.get("audio_uri"),
        "audio_sha256": inputs.get("audio_sha256"),
        "audio_fingerprint": inputs.get("audio_fingerprint"),
        "frames_key": sidecar.get("frames_key"),
        "script_sha256": (sidecar.get("captions") or {}).get("script_sha256"),
        "captions_uri": inputs.get("captions_uri"),
        "captions_sha256": inputs.get("captions_sha256"),
        "captions_fingerprint": inputs.get("captions_fingerprint"),
    }


def _read_index_table(catalog: Catalog):
    """index.parquet as a pyarrow Table with every index column (None if there is no index yet).

    An index written before the input-memory columns existed gets them, empty (its rows are
    then hashed once by the next plan, and remembered from then on).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = catalog.path(INDEX_PARQUET)
    try:
        with catalog.fs.open(path, "rb") as handle:
            table = pq.read_table(handle, pre_buffer=False)  # see manifests.schema.read_manifest
        if "key" not in table.column_names:
            raise ValueError("it has no 'key' column")
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, wrong schema: rebuilt from the sidecars
        warn_unreadable(
            catalog.uri(path), exc, "the index is rebuilt from the sidecars (nothing published is rendered again)"
        )
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
        fresh = (
            outcome.status in (PUBLISHED, CAPTIONS_UPDATED)
            or entry is None
            or entry.get("content_key") != outcome.content_key
        )
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
            # A skipped row's inputs, and a captions update's, were checked by the plan (and the
            # update) against the hashes the entry keeps: their fingerprints replace the old ones.
            checked = outcome.status in (SKIPPED_CACHED, CAPTIONS_UPDATED)
            for name in REMEMBERED_INPUTS:
                uri, fingerprint = getattr(inputs, f"{name}_uri"), getattr(inputs, f"{name}_fingerprint")
                if uri is None and name == "captions":
                    continue  # no captions file: nothing to remember
                if checked or entry.get(f"{name}_uri") == uri:
                    entry[f"{name}_uri"], entry[f"{name}_fingerprint"] = uri, fingerprint
                    if checked and getattr(inputs, f"{name}_sha256"):
                        entry[f"{name}_sha256"] = getattr(inputs, f"{name}_sha256")
                else:
                    entry[f"{name}_fingerprint"] = None  # the render read another URI than the plan saw
    # The index must never list a video that is not there (deleted by hand, a failed write),
    # nor one whose sidecar is gone (withdrawn by a replacement that did not finish).
    present = catalog.published_objects()
    # ...and must list every published video: a sidecar no entry names (a run killed before its
    # index update, an index rebuilt after it was found unreadable) is read and indexed.
    _index_unlisted_sidecars(catalog, entries, present)
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


def _index_unlisted_sidecars(catalog: Catalog, entries: dict[str, dict], present: set[str]) -> int:
    """Add the entries of every published sidecar (one whose video is there) that no entry names.

    Costs one sidecar read per such sidecar; none when the index is current. Returns how many."""
    named = {entry.get("sidecar") or entry["key"] + ".json" for entry in entries.values()}
    added = 0
    for relative in sorted(path for path in present if path.endswith(".json") and path not in named):
        sidecar_path = catalog.path(relative)
        sidecar = catalog.read_json(sidecar_path)
        if not isinstance(sidecar, dict) or not isinstance(sidecar.get("video"), str):
            continue
        if sidecar["video"] not in present or sidecar["video"][: -len(".mp4")] + ".json" != relative:
            continue
        for entry in index_entries(catalog, sidecar_path, sidecar):
            entries[entry["key"]] = entry
        added += 1
    return added


def _plain(value):
    """A JSON-ready Python value: NaN and pandas' NA become None, numpy values Python ones."""
    if is_missing(value):
        return None
    if hasattr(value, "tolist"):  # a numpy scalar or array
        return value.tolist()
    return value
