"""A captions-only update: a published row whose script or captions file changed, and nothing else.

The plan (`tasks/plan.py`) sends a row here (`update_captions`) when its frames key (inputs,
generator, version, parameters) is the published one but its whole content key is not: only the
captions sources changed. Nothing is generated. The row's captions are made again exactly as a
render's QA makes them (`tasks.qa.make_row_captions`: aligned against the row's script audio,
the same bytes the published video was made from, checked again by SHA-256), checked (caption
rules, speech coverage, script-vs-audio match), and muxed as the new `mov_text` track into the
published master and every rendition (`tasks.publish.with_caption_tracks`: picture and sound
stream-copied, not encoded again); each file is signed again (the captions are a C2PA
ingredient) and published like a render: video and renditions, then .vtt/.srt, then the
sidecar last, each moved into place atomically, the old sidecar withdrawn first.

What the captions are aligned against: the script audio re-timed exactly as the published sound
was (`tasks.qa.as_published`: the render's lip-sync delay, `av_offset_applied_ms` in the sidecar),
which is the published video's sound before its loudness normalisation and AAC coding. A full
render's QA aligns against the same, so an update gives the captions a render of the row would,
and the study's threshold (measured on uncoded speech) applies unchanged.

A row whose new captions fail QA keeps its published video and captions (as a failed render
does) and ends `failed_qa`, the new .vtt/.srt filed under the run. Its verdict is
`captions_updated` otherwise: in the catalog, counted apart from `published` (new frames).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from tasks.catalog import RUNS_DIR, Catalog, now_iso, published_renditions, rendition_key, withdraw
from tasks.catalog_index import SeenInputs
from tasks.records import (
    CAPTIONS_UPDATED,
    FAILED_QA,
    QUARANTINED,
    RenderedVideo,
    RowInfo,
    RowOutcome,
)


@dataclass(frozen=True)
class CaptionsUpdate:
    """What the plan hands the update of one row: the row, what it saw, and the keys."""

    row: object  # ManifestRow
    info: RowInfo
    seen: SeenInputs
    content_key: str  # the key the update publishes
    frames_key: str  # the published frames' key, which must still be the sidecar's
    why: str  # the plan's reason ("script changed since run X: ...")
    siblings: tuple = ()  # the other rows of its item (`tasks.siblings`), for the swap check


class PublishedEntryChanged(RuntimeError):
    """The published entry is not the one the plan saw (another writer, a hand edit)."""


def update_captions(
    update: CaptionsUpdate,
    catalog_url: str,
    run_id: str,
    signing: dict | None = None,
    min_script_match: float | None = None,
) -> RowOutcome:
    """Re-align, re-check, re-mux, re-sign and publish one row's captions (module docstring).
    `min_script_match`: the run's `QAThresholds.min_script_match` (None: the default)."""
    from sonic_model.audio import load_audio
    from sonic_model.digest import sha256_file
    from sonic_model.errors import CaptionsError
    from tasks.probe import checked_captions_text
    from tasks.publish import captions_inputs, with_caption_tracks
    from tasks.qa import make_row_captions
    from tasks.signing import sign_rendered, sign_renditions
    from tasks.storage import materialize, read_bytes

    started = time.perf_counter()
    catalog = Catalog(catalog_url)
    info = update.info
    prefix = info.key_prefix
    sidecar_path = catalog.path(prefix + ".json")
    sidecar = catalog.read_json(sidecar_path)
    if not sidecar or sidecar.get("frames_key") != update.frames_key:
        raise PublishedEntryChanged(f"the published entry of {prefix} changed after this run's plan read it; run again")
    if (sidecar.get("burned_captions") or {}).get("renditions"):
        # The plan renders such a row (`tasks.plan_published.settle`): the old words are in the pictures.
        raise PublishedEntryChanged(f"{prefix} has captions burned into its renditions; run again (it will render)")
    inputs = sidecar.get("inputs", {})
    scratch = Path(tempfile.mkdtemp(prefix="sonic-captions-"))
    try:
        audio_path = Path(materialize(update.seen.audio_uri, scratch / "audio"))
        if sha256_file(audio_path) != inputs.get("audio_sha256"):
            raise PublishedEntryChanged(
                f"audio_uri {update.seen.audio_uri} changed after this run's plan read it; run again (it will render)"
            )
        audio = load_audio(audio_path)
        source = {"script_text": getattr(update.row, "script_text", None) or None, "captions_text": None}
        if update.seen.captions_uri:
            data = read_bytes(update.seen.captions_uri, 16 * 1024 * 1024)
            try:
                text = checked_captions_text(update.row.captions_uri, data, audio.duration_s)
            except CaptionsError as exc:  # as the probe refuses it on a render
                return RowOutcome(info=info, status=QUARANTINED, reasons=(str(exc),), plan=update.why)
            source.update(captions_text=text, captions_uri=update.seen.captions_uri)
            source["captions_sha256"] = update.seen.captions_sha256
        # Timed on the sound as published: re-timed by the render's lip-sync delay, if any.
        delay_ms = float((sidecar.get("postprocess") or {}).get("av_offset_applied_ms") or 0.0)
        captions, failures, figures = make_row_captions(
            source, info.language, audio, delay_ms, min_script_match=min_script_match, siblings=update.siblings
        )
        aligned_s = time.perf_counter() - started
        if failures or captions is None:
            return _rejected(catalog, update, run_id, captions, failures, figures, sidecar)

        rendered = _published_as_rendered(catalog, sidecar, update, source, scratch, audio_path)
        rendered = with_caption_tracks(rendered, captions)
        video_file, credentials = sign_rendered(rendered, signing, captions["vtt"])
        signed_renditions = sign_renditions(rendered, signing, captions["vtt"])
        # As publish_or_reject: the old sidecar withdrawn first, the new one written last.
        withdraw(catalog, sidecar_path)
        video_path = catalog.put_file(video_file, catalog.path(prefix + ".mp4"))
        for name, (path, _) in signed_renditions.items():
            catalog.put_file(path, catalog.path(rendition_key(prefix, name) + ".mp4"))
        catalog.write_bytes(captions["vtt"].encode("utf-8"), catalog.path(prefix + ".vtt"))
        catalog.write_bytes(captions["srt"].encode("utf-8"), catalog.path(prefix + ".srt"))
        total_s = time.perf_counter() - started
        timings = {"captions_align_s": round(aligned_s, 3), "captions_update_s": round(total_s, 3)}
        new_sidecar = _updated_sidecar(sidecar, update, source, captions, figures, credentials, signed_renditions)
        # The render's timings stay (they describe the frames), the update's join them.
        new_sidecar.update(timings={**(sidecar.get("timings") or {}), **timings}, run_id=run_id, published_at=now_iso())
        new_sidecar["inputs"] = {**inputs, **captions_inputs(source)}
        if not update.seen.captions_uri:
            new_sidecar["inputs"].pop("captions_uri", None)
            new_sidecar["inputs"].pop("captions_sha256", None)
        written = catalog.write_bytes(json.dumps(new_sidecar, indent=2, default=str).encode("utf-8"), sidecar_path)
        return RowOutcome(
            info=info,
            status=CAPTIONS_UPDATED,
            reasons=(f"captions updated: {update.why}",),
            output_uri=catalog.uri(video_path),
            poster_uri=catalog.uri(catalog.path(sidecar["poster"])) if sidecar.get("poster") else None,
            sidecar_uri=catalog.uri(written),
            content_key=update.content_key,
            qa_figures=new_sidecar["qa"]["figures"],
            timings=timings,
            postprocess=sidecar.get("postprocess") or {},
            plan=update.why,
            renditions=published_renditions(catalog, new_sidecar.get("renditions", [])),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _published_as_rendered(
    catalog: Catalog, sidecar: dict, update: CaptionsUpdate, source: dict, scratch: Path, audio_path: Path
) -> RenderedVideo:
    """The published master and renditions, fetched into `scratch`, described as a render of them
    (what muxing and signing take), with the update's content key."""
    inputs, generator = sidecar.get("inputs", {}), sidecar.get("generator", {})

    def fetched(relative: str, name: str) -> str:
        local = scratch / name
        catalog.fs.get_file(catalog.path(relative), str(local))
        return str(local)

    renditions = tuple(
        {
            "name": r["name"],
            "path": fetched(r["video"], f"{r['name']}.mp4"),
            "width": r.get("width"),
            "height": r.get("height"),
        }
        for r in sidecar.get("renditions", [])
    )
    return RenderedVideo(
        info=update.info,
        content_key=update.content_key,
        video_path=fetched(sidecar["video"], "master.mp4"),
        portrait_path="",
        audio_path=str(audio_path),
        portrait_uri=inputs.get("portrait_uri"),
        audio_uri=inputs.get("audio_uri"),
        portrait_sha256=inputs.get("portrait_sha256"),
        audio_sha256=inputs.get("audio_sha256"),
        generator=generator.get("name"),
        generator_version=generator.get("version"),
        params=generator.get("params") or {},
        audio_duration_s=float(inputs.get("audio_duration_s") or 0.0),
        render=dict(sidecar.get("video_facts") or {}),
        renditions=renditions,
        captions_source=source,
        frames_key=update.frames_key,
    )


def _updated_sidecar(
    sidecar: dict,
    update: CaptionsUpdate,
    source: dict,
    captions: dict,
    figures: dict,
    credentials: dict | None,
    signed_renditions: dict,
) -> dict:
    """The published sidecar with the new captions, key and credentials; everything about the
    frames (generator, parameters, video facts, picture QA) kept as the render wrote it."""
    from tasks.publish import captions_record

    new = json.loads(json.dumps(sidecar))
    new["content_key"] = update.content_key
    new["credentials"] = credentials
    for rendition in new.get("renditions", []):
        rendition["credentials"] = (signed_renditions.get(rendition["name"]) or (None, None))[1]
    qa = new.setdefault("qa", {"passed": True, "failures": []})
    qa["figures"] = {**(qa.get("figures") or {}), **figures}
    new["captions"] = captions_record(captions, update.info.key_prefix, source)
    # Which run generated the frames this entry still has (the first render's, through any
    # number of captions updates).
    new["frames_run_id"] = sidecar.get("frames_run_id") or sidecar.get("run_id")
    new["captions_updated"] = {"previous_content_key": sidecar.get("content_key"), "why": update.why}
    return new


def _rejected(catalog, update, run_id, captions, failures, figures, sidecar) -> RowOutcome:
    """New captions that failed QA: filed under the run (.vtt/.srt), the published entry left as it is."""
    rejected = catalog.path(RUNS_DIR, run_id, "rejected", update.info.key_prefix)
    output = None
    if captions:
        output = catalog.uri(catalog.write_bytes(captions["vtt"].encode("utf-8"), rejected + ".vtt"))
        catalog.write_bytes(captions["srt"].encode("utf-8"), rejected + ".srt")
    return RowOutcome(
        info=update.info,
        status=FAILED_QA,
        reasons=tuple(f"captions update: {reason}" for reason in failures) or ("captions update failed QA",),
        output_uri=output,
        content_key=update.content_key,
        qa_figures={**((sidecar.get("qa") or {}).get("figures") or {}), **figures},
        plan=update.why,
    )


# --- the Prefect task ------------------------------------------------------------------------------


@task(name="update-captions", cache_policy=NONE)
def update_captions_task(
    update: CaptionsUpdate,
    catalog_url: str,
    run_id: str,
    signing: dict | None = None,
    min_script_match: float | None = None,
) -> RowOutcome:
    """`update_captions` as the row's one task (`update-captions-<row_id>` in Prefect's UI)."""
    return update_captions(update, catalog_url, run_id, signing, min_script_match)
