"""QA of a rendered row (all media logic is in `sonic_model.qa.check_video`; this module only
adapts it), and the row's QA task.

`check_rendered` takes a `RenderedVideo` with local files and returns a `CheckedVideo`;
`check_and_publish_task` is the row's QA stage as Prefect runs it: it checks the video and then
hands the verdict to `tasks.publish.publish_or_reject`, which publishes the video or files it
under the run. `check_video_file` is the same check on plain files, for a notebook or a one-off.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NONE

from sonic_model.audio import load_audio
from sonic_model.delivery import still_reference, subject_face
from sonic_model.image import load_image
from sonic_model.qa import QAResult, QAThresholds, check_video
from tasks.publish import publish_or_reject
from tasks.records import CheckedVideo, RenderedVideo, RowOutcome
from tasks.scratch import discard_scratch, localized


def resolve_thresholds(thresholds: QAThresholds | dict[str, Any] | None) -> QAThresholds:
    """Defaults, a ready `QAThresholds`, or the defaults with a run's overrides (a dict)."""
    if thresholds is None:
        return QAThresholds()
    if isinstance(thresholds, QAThresholds):
        return thresholds
    return QAThresholds().with_overrides(dict(thresholds))


def check_video_file(
    video_path: str | Path,
    portrait: np.ndarray | str | Path,
    audio_path: str | Path,
    thresholds: QAThresholds | dict[str, Any] | None = None,
    *,
    still_reference: np.ndarray | None = None,
) -> QAResult:
    """Check one video file against its portrait (RGB array or image path) and script audio
    (and, for seams, the still picture its frames were composited into, if any)."""
    checked_against = resolve_thresholds(thresholds)  # a typo in an override fails before any decoding
    portrait_rgb = portrait if isinstance(portrait, np.ndarray) else load_image(portrait)
    return check_video(
        video_path, portrait_rgb, load_audio(audio_path), checked_against, still_reference=still_reference
    )


def thresholds_for(rendered: RenderedVideo, thresholds: QAThresholds | dict[str, Any] | None) -> QAThresholds:
    """The run's thresholds, with the loudness range centred on the row's own loudness target
    (the render normalised its sound to it) unless the run set one itself."""
    resolved = resolve_thresholds(thresholds)
    target = rendered.params.get("loudness_target")
    if resolved.loudness_target_lufs is None and target is not None:
        resolved = dataclasses.replace(resolved, loudness_target_lufs=float(target))
    return resolved


def check_rendered(
    rendered: RenderedVideo, thresholds: QAThresholds | dict[str, Any] | None = None, siblings: Sequence = ()
) -> CheckedVideo:
    """Run automatic QA on a rendered video, and on each of its renditions on its own, against
    the inputs they were rendered from. `siblings`: the other rows of the row's item
    (`tasks.siblings`), whose scripts its captions check is also measured against.

    A rendition is checked like the master (duration, sync, face and identity, loudness) plus
    its exact size and, against its still canvas, seams; a paste-back master is checked for
    seams against the portrait. The row passes only if every video does; a rendition's failures
    are named after it. Files may sit in shared scratch (a cluster run): `localized` fetches
    them if needed.
    """
    started = time.perf_counter()
    checked_against = thresholds_for(rendered, thresholds)
    paste_back = bool(rendered.params.get("paste_back"))
    renditions = []
    with localized(rendered) as local:
        portrait = load_image(local.portrait_path)
        audio = load_audio(local.audio_path)
        landmarks = None
        if any(rendition.get("placement") is None for rendition in rendered.renditions):
            _, landmarks = subject_face(portrait)
        # A paste-back master is the photo itself (seams checked against it); a crop is not composited.
        size = (rendered.render.get("width"), rendered.render.get("height"))
        whole_photo = (
            paste_back
            and all(isinstance(v, int) for v in size)
            and abs(size[0] - portrait.shape[1]) <= 1
            and abs(size[1] - portrait.shape[0]) <= 1
        )
        master_still = still_reference(portrait, "master", paste_back=whole_photo)
        result = check_video(local.video_path, portrait, audio, checked_against, still_reference=master_still)
        failures = [str(f) for f in result.failures]
        for rendition in local.renditions:
            name = rendition["name"]
            sized = dataclasses.replace(
                checked_against, expected_width=rendition["width"], expected_height=rendition["height"]
            )
            # The canvas exactly as the render made it (its placement), else framed again.
            still = still_reference(
                portrait, name, paste_back=paste_back, landmarks=landmarks, placement=rendition.get("placement")
            )
            own = check_video(rendition["path"], portrait, audio, sized, still_reference=still)
            renditions.append(
                {"name": name, "passed": bool(own.passed), "failures": list(own.failures), "figures": dict(own.figures)}
            )
            failures += [f"{name} rendition: {failure}" for failure in own.failures]
        captions = None
        if rendered.captions_source:
            captions, caption_failures, caption_figures = check_row_captions(
                rendered, audio, checked_against.min_script_match, siblings
            )
            failures += caption_failures
            result_figures = {**dict(result.figures), **caption_figures}
        else:
            result_figures = dict(result.figures)
    return CheckedVideo(
        rendered=rendered,
        passed=not failures,
        failures=tuple(failures),
        figures=result_figures,
        mouth_series=tuple(result.mouth_series),
        envelope_series=tuple(result.envelope_series),
        speech_series=tuple(bool(s) for s in getattr(result, "speech_series", ())),
        timings={"qa_s": round(time.perf_counter() - started, 3)},
        renditions=tuple(renditions),
        captions=captions,
    )


def check_row_captions(
    rendered: RenderedVideo, audio, min_script_match: float | None = None, siblings: Sequence = ()
) -> tuple[dict | None, list[str], dict]:
    """The row's captions made (aligned from its script, or its given file) and checked: the
    caption record for publishing, QA failures, and the figures for the report."""
    delay_ms = float(rendered.render.get("av_offset_applied_ms") or 0.0)
    source = rendered.captions_source or {}
    language = rendered.info.language
    return make_row_captions(source, language, audio, delay_ms, min_script_match=min_script_match, siblings=siblings)


def as_published(audio, delay_ms: float):
    """The script audio re-timed as the published sound is: lip-sync calibration (or a manual
    `av_offset_ms`) delays it by `delay_ms` (negative: advances it) and keeps its duration
    (`sonic_model.postprocess.lipsync.shifted_audio_filter`). Captions are timed on this, so
    they follow the sound the viewer hears, not the file the sound was made from."""
    if not delay_ms:
        return audio
    shift = int(round(delay_ms / 1000.0 * audio.sample_rate))
    length = len(audio.samples)
    silence = np.zeros(abs(shift), np.float32)
    moved = np.concatenate([silence, audio.samples]) if shift > 0 else np.concatenate([audio.samples[-shift:], silence])
    return dataclasses.replace(audio, samples=np.ascontiguousarray(moved[:length], dtype=np.float32))


def make_row_captions(
    source: dict,
    language: str,
    audio,
    delay_ms: float = 0.0,
    *,
    min_script_match: float | None = None,
    siblings: Sequence = (),
) -> tuple[dict | None, list[str], dict]:
    """Captions from a row's captions source (`tasks.render.captions_source`) over its script
    audio (an `AudioClip`) as published (`as_published`: `delay_ms` is the render's
    `av_offset_applied_ms`), and their QA: (caption record, QA failures, report figures). Used by
    a render's QA and by a captions-only update (`tasks.captions_update`) alike.
    `min_script_match`: the run's `QAThresholds.min_script_match` (None: the default).
    `siblings` (`sonic_model.captions.swaps.Sibling`): the other rows of its item, whose scripts
    the audio is measured against too: a row whose audio speaks one of them fails QA."""
    from sonic_model.audio import speech_segments
    from sonic_model.captions import MIN_SCRIPT_MATCH, captions_from, check_captions

    audio = as_published(audio, delay_ms)
    segments = speech_segments(audio)
    try:
        script, given = source.get("script_text"), source.get("captions_text")
        captions = captions_from(script, given, language, audio.samples, segments)
    except Exception as exc:  # noqa: BLE001 - a captions failure is this row's QA failure, named
        return None, [f"captions could not be made ({type(exc).__name__}: {str(exc)[:200]})"], {}
    figures = {
        "captions_method": captions.method,
        "captions_cues": len(captions.cues),
        "captions_script_match": None if captions.script_match is None else round(captions.script_match, 4),
    }
    record = {
        "vtt": captions.vtt(),
        "srt": captions.srt(),
        "language": language,
        "method": captions.method,
        "script_match": figures["captions_script_match"],
        "cues": len(captions.cues),
    }
    failures = check_captions(captions, min_script_match)
    if siblings:
        from sonic_model.captions.swaps import find_swap, swap_reason

        threshold = MIN_SCRIPT_MATCH if min_script_match is None else min_script_match
        own = script or ""
        check = find_swap(own, language, captions.cost_gap, list(siblings), audio.samples, segments, threshold)
        figures["captions_siblings_measured"], swap = check.measured, check.swap
        if swap is not None:
            figures["captions_swapped_with"] = swap.row_id
            failures.append(swap_reason(swap))
    return record, failures, figures


# QA and publishing are one task: on a cluster each Prefect task costs tens of milliseconds of
# CPU (benchmarks/fanout_scaling.py), and together the video is fetched from scratch only once.
@task(name="check-and-publish", cache_policy=NONE)
def check_and_publish_task(
    rendered: RenderedVideo,
    thresholds: Any,
    catalog_url: str,
    run_id: str,
    signing: dict | None = None,
    siblings: Sequence = (),
) -> RowOutcome:
    """QA a rendered video (`check_rendered`, with the other rows of its item: `siblings`), then
    publish it, signed as `signing` says, or file it under the run if QA failed
    (`tasks.publish.publish_or_reject`). The render's scratch is removed whatever happens.

    The video may sit in shared scratch (a cluster run): `localized` gives local paths here.
    """
    publishing = False
    try:
        with localized(rendered) as local:
            checked = check_rendered(local, thresholds, siblings)
            publishing = True  # from here publish_or_reject removes the scratch, whatever happens
            return publish_or_reject(checked, catalog_url, run_id, signing)
    finally:
        if not publishing:  # fetching or QA failed: publish_or_reject never ran
            discard_scratch(rendered)
