"""QA task: the one Prefect task that checks a rendered video (all media logic is in
`sonic_model.qa.check_video`; this module only adapts it).

`qa_video_task` takes a `RenderedVideo` (local scratch, or shared scratch on a cluster: QA may
run on another machine than the render) and returns a `CheckedVideo`. `check_video_file` is the
same check on plain files, for a notebook or a one-off.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NONE

from sonic_model.audio import load_audio
from sonic_model.image import load_image
from sonic_model.qa import QAResult, QAThresholds, check_video
from tasks.records import CheckedVideo, RenderedVideo


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
) -> QAResult:
    """Check one video file against its portrait (RGB array or image path) and script audio."""
    checked_against = resolve_thresholds(thresholds)  # a typo in an override fails before any decoding
    portrait_rgb = portrait if isinstance(portrait, np.ndarray) else load_image(portrait)
    return check_video(video_path, portrait_rgb, load_audio(audio_path), checked_against)


def check_rendered(rendered: RenderedVideo, thresholds: QAThresholds | dict[str, Any] | None = None) -> CheckedVideo:
    """Run automatic QA on a rendered video against the inputs it was rendered from."""
    from tasks.render import localized

    started = time.perf_counter()
    with localized(rendered) as local:
        result = check_video_file(local.video_path, local.portrait_path, local.audio_path, thresholds)
    return CheckedVideo(
        rendered=rendered,
        passed=bool(result.passed),
        failures=tuple(str(f) for f in result.failures),
        figures=dict(result.figures),
        mouth_series=tuple(result.mouth_series),
        envelope_series=tuple(result.envelope_series),
        speech_series=tuple(bool(s) for s in getattr(result, "speech_series", ())),
        timings={"qa_s": round(time.perf_counter() - started, 3)},
    )


@task(name="qa-video", cache_policy=NONE)
def qa_video_task(rendered: RenderedVideo, thresholds: QAThresholds | dict[str, Any] | None = None) -> CheckedVideo:
    """QA one rendered video (duration, sync, face, identity, flicker, loudness)."""
    return check_rendered(rendered, thresholds)
