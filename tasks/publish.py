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
parameters); a row whose key is already published is reported `skipped_cached`, not rendered.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec
from fsspec.core import url_to_fs
from prefect import task
from prefect.cache_policies import NONE

from sonic_model.encode import AI_DISCLOSURE
from tasks.records import (
    FAILED_QA, PUBLISHED, SKIPPED_CACHED, CheckedVideo, RenderedVideo, RowInfo, RowOutcome, postprocess_figures,
)
from tasks.render import discard_scratch

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
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- idempotency ------------------------------------------------------------------------------


def find_published(catalog_url: str, info: RowInfo, key: str) -> RowOutcome | None:
    """`skipped_cached` when this row's content key is already published (video + sidecar), else None."""
    catalog = Catalog(catalog_url)
    sidecar_path = catalog.path(info.key_prefix + ".json")
    sidecar = catalog.read_json(sidecar_path)
    if not sidecar or sidecar.get("content_key") != key:
        return None
    video_path = catalog.path(sidecar.get("video", info.key_prefix + ".mp4"))
    if not catalog.exists(video_path):
        return None
    if not all(catalog.exists(catalog.path(r["video"])) for r in sidecar.get("renditions", [])):
        return None  # a rendition went missing: render the row again
    poster = sidecar.get("poster")
    return RowOutcome(
        info=info,
        status=SKIPPED_CACHED,
        reason=f"already published by run {sidecar.get('run_id', '?')} with the same inputs and parameters",
        output_uri=catalog.uri(video_path),
        poster_uri=catalog.uri(catalog.path(poster)) if poster else None,
        sidecar_uri=catalog.uri(sidecar_path),
        content_key=key,
        qa_figures=sidecar.get("qa", {}).get("figures", {}),
        postprocess=sidecar.get("postprocess", {}),
        renditions=tuple(
            {"name": r["name"], "uri": catalog.uri(catalog.path(r["video"])), "width": r.get("width"),
             "height": r.get("height"), "passed": True}
            for r in sidecar.get("renditions", [])
        ),
    )


def rendition_key(prefix: str, name: str) -> str:
    """A rendition's key beside its master's: `<collection>/<language>/<row_id>.<name>`."""
    return f"{prefix}.{name}"


# --- poster and plot ----------------------------------------------------------------------------


def poster_jpeg(video_path: str | Path, *, max_side: int = 640) -> bytes:
    """A JPEG of the frame a third of the way in (past any opening blink or still start)."""
    from PIL import Image

    from sonic_model.probe import iter_video_frames, probe_video

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


def sidecar_for(checked: CheckedVideo, catalog: Catalog, run_id: str, timings: dict) -> dict:
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
        "video_facts": {k: rendered.render.get(k) for k in ("frames", "fps", "width", "height", "video_duration_s", "audio_duration_s")},
        "preset": rendered.params.get("preset"),
        "renditions": [
            {
                "name": rendition["name"],
                "video": rendition_key(prefix, rendition["name"]) + ".mp4",
                "width": rendition["width"],
                "height": rendition["height"],
                "qa": qa_of.get(rendition["name"], {}),
            }
            for rendition in rendered.renditions
        ],
        "loudness": rendered.render.get("loudness"),
        "postprocess": postprocess_figures(rendered.render, rendered.params),
        "qa": {"passed": checked.passed, "failures": list(checked.failures), "figures": checked.figures},
        "consent_ref": info.consent_ref,
        "ai_generated": True,
        "disclosure": AI_DISCLOSURE,
        "timings": timings,
        "run_id": run_id,
        "published_at": now_iso(),
    }


def publish_or_reject(checked: CheckedVideo, catalog_url: str, run_id: str) -> RowOutcome:
    """Publish a video that passed QA; keep one that failed under the run (for the report).

    Either way the QA plot goes under `_runs/<run_id>/plots/` and the local scratch is removed.
    """
    started = time.perf_counter()
    catalog = Catalog(catalog_url)
    rendered = checked.rendered
    info = rendered.info
    prefix = info.key_prefix
    try:
        plot = sync_plot_png(checked)
        plot_path = catalog.write_bytes(plot, catalog.path(RUNS_DIR, run_id, "plots", prefix + ".png")) if plot else None
        poster = poster_jpeg(rendered.video_path)
        timings = {**rendered.timings, **checked.timings}
        passed_of = {r["name"]: r["passed"] for r in checked.renditions}
        if not checked.passed:
            rejected = catalog.path(RUNS_DIR, run_id, "rejected", prefix)
            video_path = catalog.put_file(rendered.video_path, rejected + ".mp4")
            poster_path = catalog.write_bytes(poster, rejected + ".jpg")
            renditions = tuple(
                {"name": r["name"], "uri": catalog.uri(catalog.put_file(r["path"], f"{rejected}.{r['name']}.mp4")),
                 "width": r["width"], "height": r["height"], "passed": passed_of.get(r["name"], False)}
                for r in rendered.renditions
            )
            return RowOutcome(
                info=info,
                status=FAILED_QA,
                reason="; ".join(checked.failures) or "failed QA",
                output_uri=catalog.uri(video_path),
                poster_uri=catalog.uri(poster_path),
                plot_uri=catalog.uri(plot_path) if plot_path else None,
                content_key=rendered.content_key,
                qa_figures=checked.figures,
                timings={**timings, "publish_s": round(time.perf_counter() - started, 3)},
                postprocess=postprocess_figures(rendered.render, rendered.params),
                renditions=renditions,
            )
        # Video and poster first, sidecar last: the sidecar is what makes a video "published".
        # A previous entry under this key is withdrawn first (its sidecar removed): should the
        # replacement fail half-way, no old sidecar describes the new video, and the index
        # (which needs the sidecar) drops the entry until a rerun publishes it again.
        withdraw(catalog, catalog.path(prefix + ".json"))
        video_path = catalog.put_file(rendered.video_path, catalog.path(prefix + ".mp4"))
        # Each rendition under its own name beside the master, before the sidecar that lists it.
        renditions = tuple(
            {"name": r["name"], "uri": catalog.uri(catalog.put_file(r["path"], catalog.path(rendition_key(prefix, r["name"]) + ".mp4"))),
             "width": r["width"], "height": r["height"], "passed": True}
            for r in rendered.renditions
        )
        poster_path = catalog.write_bytes(poster, catalog.path(prefix + ".jpg"))
        timings["publish_s"] = round(time.perf_counter() - started, 3)
        sidecar = sidecar_for(checked, catalog, run_id, timings)
        sidecar_path = catalog.write_bytes(json.dumps(sidecar, indent=2, default=str).encode("utf-8"), catalog.path(prefix + ".json"))
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


# QA and publishing are one task: on a cluster each Prefect task costs tens of milliseconds of
# CPU (benchmarks/fanout_scaling.py), and together the video is fetched from scratch only once.
@task(name="check-and-publish", cache_policy=NONE)
def check_and_publish_task(rendered: RenderedVideo, thresholds: Any, catalog_url: str, run_id: str) -> RowOutcome:
    """QA a rendered video (`tasks.qa.check_rendered`), then publish it, or file it under the
    run if QA failed (`publish_or_reject`). The render's scratch is removed whatever happens.

    The video may sit in shared scratch (a cluster run): `localized` gives local paths here.
    """
    from tasks import qa
    from tasks.render import localized

    publishing = False
    try:
        with localized(rendered) as local:
            checked = qa.check_rendered(local, thresholds)
            publishing = True  # from here publish_or_reject removes the scratch, whatever happens
            return publish_or_reject(checked, catalog_url, run_id)
    finally:
        if not publishing:  # fetching or QA failed: publish_or_reject never ran
            discard_scratch(rendered)


# --- the catalog index ---------------------------------------------------------------------------

INDEX_COLUMNS = (
    "key", "row_id", "collection", "language", "item_id", "title", "video", "poster", "sidecar",
    "content_key", "generator", "generator_version", "duration_s", "width", "height", "rendition",
    "consent_ref", "ai_generated", "run_id", "published_at",
)


def index_entries(catalog: Catalog, sidecar_path: str, sidecar: dict) -> list[dict]:
    """The index entries of one published row: its master, then one per rendition (own key,
    video, width, height and rendition name; the rest as the master's)."""
    master = index_entry(catalog, sidecar_path, sidecar)
    entries = [master]
    for rendition in sidecar.get("renditions", []):
        entries.append({
            **master,
            "key": rendition["video"][: -len(".mp4")],
            "video": rendition["video"],
            "width": rendition.get("width"),
            "height": rendition.get("height"),
            "rendition": rendition["name"],
        })
    return entries


def index_entry(catalog: Catalog, sidecar_path: str, sidecar: dict) -> dict:
    """The master's index entry of one published row."""
    facts = sidecar.get("video_facts", {})
    generator = sidecar.get("generator", {})
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
    }


def read_index(catalog_url: str):
    """The catalog index as a DataFrame (empty, with the index columns, if there is none yet)."""
    import pandas as pd

    catalog = Catalog(catalog_url)
    path = catalog.path(INDEX_PARQUET)
    if not catalog.exists(path):
        return pd.DataFrame({name: pd.Series(dtype="object") for name in INDEX_COLUMNS})
    with catalog.fs.open(path, "rb") as handle:
        return pd.read_parquet(handle, pre_buffer=False)  # see manifests.schema.read_manifest


def update_index(catalog_url: str, outcomes: list[RowOutcome]) -> dict:
    """Merge this run's catalog rows into the index; keep only entries whose video exists.

    Written as Parquet (for data tools) and JSON (for web pages), each atomically.
    """
    import pandas as pd

    catalog = Catalog(catalog_url)
    entries: dict[str, dict] = {}
    for record in read_index(catalog_url).to_dict("records"):
        record.setdefault("rendition", "master")  # an index written before renditions existed
        entries[record["key"]] = record
    for outcome in outcomes:
        if not outcome.in_catalog or not outcome.sidecar_uri:
            continue
        sidecar_path = catalog.path(outcome.info.key_prefix + ".json")
        sidecar = catalog.read_json(sidecar_path)
        if sidecar:
            # The row's entries are replaced as a whole: a rendition it no longer has leaves the index.
            relative = catalog.relative(sidecar_path)
            entries = {key: entry for key, entry in entries.items() if entry.get("sidecar") != relative}
            for entry in index_entries(catalog, sidecar_path, sidecar):
                entries[entry["key"]] = entry
    # The index must never list a video that is not there (deleted by hand, a failed write).
    # ...nor one whose sidecar is gone (withdrawn by a replacement that did not finish).
    live = [
        entry for entry in entries.values()
        if catalog.exists(catalog.path(entry["video"])) and catalog.exists(catalog.path(entry.get("sidecar") or entry["key"] + ".json"))
    ]
    live.sort(key=lambda entry: entry["key"])
    frame = pd.DataFrame(live, columns=list(INDEX_COLUMNS))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    parquet_path = catalog.write_bytes(buffer.getvalue(), catalog.path(INDEX_PARQUET))
    payload = {"updated_at": now_iso(), "videos": [{k: _plain(v) for k, v in entry.items()} for entry in live]}
    json_path = catalog.write_bytes(json.dumps(payload, indent=2).encode("utf-8"), catalog.path(INDEX_JSON))
    return {"index_parquet": catalog.uri(parquet_path), "index_json": catalog.uri(json_path), "videos": len(live)}


def _plain(value):
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return value.item()
    return value


@task(name="update-catalog-index", cache_policy=NONE)
def update_index_task(catalog_url: str, outcomes: list[RowOutcome]) -> dict:
    """Add this run's published videos to the catalog index."""
    return update_index(catalog_url, outcomes)
