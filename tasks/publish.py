"""Publishing: a checked video -> the catalog, through fsspec, atomically and idempotently.

Catalog layout and atomic writes: `tasks.catalog`; the index: `tasks.catalog_index`.
Where a row lands (any fsspec URL: local path, file://, s3://, gs://, memory://):

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

import dataclasses
import io
import json
import time
from pathlib import Path

from sonic_model.captions.track import iso639_2, mux_caption_track
from sonic_model.encode import AI_DISCLOSURE
from tasks.catalog import RUNS_DIR, Catalog, now_iso, rendition_key, withdraw
from tasks.records import (
    FAILED_QA,
    PUBLISHED,
    CheckedVideo,
    RenderedVideo,
    RowOutcome,
    postprocess_figures,
    script_sha256,
)
from tasks.scratch import discard_scratch
from tasks.signing import sign_rendered, sign_renditions

SIDECAR_VERSION = 1


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
    burned: dict | None = None,
) -> dict:
    """The published row's sidecar. `credentials` is the master's C2PA record,
    `rendition_credentials` {rendition name: record} each rendition's (None: not signed);
    `burned`: what `with_burned_captions` did (None: burning was not asked for)."""
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
        # The content key without the captions: what the frames were made from (tasks/plan.py
        # updates only the captions of a row whose frames key is unchanged).
        "frames_key": rendered.frames_key,
        "inputs": {
            "portrait_uri": rendered.portrait_uri,
            "portrait_sha256": rendered.portrait_sha256,
            "audio_uri": rendered.audio_uri,
            "audio_sha256": rendered.audio_sha256,
            "audio_duration_s": rendered.audio_duration_s,
            **captions_inputs(rendered.captions_source),
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
                "captions_burned": rendition["name"] in ((burned or {}).get("renditions") or ()),
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
        "captions": captions_entry(checked, prefix),
        # {"renditions": [names burned], "language", "font", "note"}: why nothing was burned, if so.
        "burned_captions": burned,
        "timings": timings,
        "run_id": run_id,
        "published_at": now_iso(),
    }


def captions_inputs(source: dict | None) -> dict:
    """The sidecar's `inputs` fields for the captions file a row was given (none without one)."""
    if not source or not source.get("captions_uri"):
        return {}
    return {"captions_uri": source["captions_uri"], "captions_sha256": source.get("captions_sha256")}


def captions_entry(checked: CheckedVideo, prefix: str) -> dict | None:
    """The sidecar's `captions`: the files beside the video, the track, and how they were made."""
    if not checked.captions:
        return None
    return captions_record(checked.captions, prefix, checked.rendered.captions_source)


def captions_record(captions: dict, prefix: str, source: dict | None) -> dict:
    """The sidecar's `captions` of made captions (`tasks.qa.make_row_captions`) and their source."""
    return {
        "language": captions["language"],
        "vtt": prefix + ".vtt",
        "srt": prefix + ".srt",
        "track": {"codec": "mov_text", "language": iso639_2(captions["language"])},
        "method": captions["method"],  # espeak-dtw, proportional (no eSpeak NG voice) or given
        "script_match": captions["script_match"],
        "cues": captions["cues"],
        # The script's hash, as in the content key (None: the captions came from a file alone).
        "script_sha256": script_sha256((source or {}).get("script_text")),
    }


def with_caption_tracks(rendered: RenderedVideo, captions: dict) -> RenderedVideo:
    """The rendered row with a mov_text caption track in its master and every rendition whose
    picture has no captions burned in (new files beside the originals in the row's scratch,
    removed with it). A burned rendition gets no track: turned on, it would show the words twice."""
    language = captions["language"]

    def muxed(path: str) -> str:
        source = Path(path)
        out = source.with_name(source.stem + ".captioned.mp4")
        return str(mux_caption_track(source, captions["srt"], language, out))

    renditions = tuple(r if r.get("captions_burned") else {**r, "path": muxed(r["path"])} for r in rendered.renditions)
    return dataclasses.replace(rendered, video_path=muxed(rendered.video_path), renditions=renditions)


def with_burned_captions(rendered: RenderedVideo, captions: dict | None) -> tuple[RenderedVideo, dict | None]:
    """The rendered row with its captions burned into every rendition's picture when its
    parameters ask for it (`burn_captions`), and the sidecar's `burned_captions` record (None:
    not asked). A row without captions, or without renditions, is left as it is, with a note
    saying so. A caption font that is not installed raises `CaptionFontError` naming the rendition
    and the package to install: the row ends as an error, the rest of the run goes on."""
    from sonic_model.captions import parse_captions
    from sonic_model.captions.burn import BurnEncoding, burn_captions
    from sonic_model.errors import CaptionFontError
    from sonic_model.rendition_writer import RENDITION_X264_PARAMS, RENDITION_X264_PRESET
    from sonic_model.renditions import RENDITIONS

    if not rendered.params.get("burn_captions"):
        return rendered, None
    if not rendered.renditions:
        note = "burn_captions: the row has no renditions to burn captions into (the master keeps its caption track)"
        return rendered, {"renditions": [], "note": note}
    if not captions:
        note = "burn_captions: the row has no captions (no script_text or captions_uri): nothing burned in"
        return rendered, {"renditions": [], "note": note}
    cues = parse_captions(captions["srt"])
    renditions, font = [], None
    for rendition in rendered.renditions:
        spec = RENDITIONS[rendition["name"]]
        source = Path(rendition["path"])
        out = source.with_name(source.stem + ".burned.mp4")
        encoding = BurnEncoding(
            qp=spec.qp,
            crf=spec.crf,
            max_bitrate=spec.max_bitrate,
            x264_preset=RENDITION_X264_PRESET,
            x264_params=RENDITION_X264_PARAMS,
        )
        try:
            font = burn_captions(
                source, cues, captions["language"], out, width=rendition["width"], height=rendition["height"],
                encoding=encoding,
            )  # fmt: skip
        except CaptionFontError as exc:
            raise CaptionFontError(f"{rendition['name']} rendition: captions not burned in: {exc}") from None
        renditions.append({**rendition, "path": str(out), "captions_burned": True})
    record = {
        "renditions": [r["name"] for r in renditions],
        "language": captions["language"],
        "font": font.family if font else None,
        "note": None,
    }
    return dataclasses.replace(rendered, renditions=tuple(renditions)), record


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
        # Captions burned into the renditions (when asked), then the caption track into every
        # other MP4, before signing (the signature covers both).
        captions = checked.captions
        rendered, burned = with_burned_captions(rendered, captions)
        if captions:
            rendered = with_caption_tracks(rendered, captions)
        vtt = captions["vtt"] if captions else None
        # Signed first (and checked to validate): a signing failure leaves the old entry alone.
        video_file, credentials = sign_rendered(rendered, signing, vtt)
        signed_renditions = sign_renditions(rendered, signing, vtt)
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
        if captions:  # beside the video, before the sidecar that lists them
            catalog.write_bytes(captions["vtt"].encode("utf-8"), catalog.path(prefix + ".vtt"))
            catalog.write_bytes(captions["srt"].encode("utf-8"), catalog.path(prefix + ".srt"))
        timings["publish_s"] = round(time.perf_counter() - started, 3)
        sidecar = sidecar_for(
            checked,
            catalog,
            run_id,
            timings,
            credentials,
            {name: record for name, (_, record) in signed_renditions.items()},
            burned,
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
