"""QA of a rendered row (all media logic is in `sonic_model.qa.check_video`; this module only
adapts it), and the row's QA task.

`check_rendered` takes a `RenderedVideo` with local files and returns a `CheckedVideo`;
`check_and_publish_task` is the row's QA stage as Prefect runs it: it checks the video and then
hands the verdict to `tasks.publish.publish_or_reject`, which publishes the video or files it
under the run. `check_video_file` is the same check on plain files, for a notebook or a one-off.
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
) -> QAResult:
    """Check one video file against its portrait (RGB array or image path) and script audio."""
    checked_against = resolve_thresholds(thresholds)  # a typo in an override fails before any decoding
    portrait_rgb = portrait if isinstance(portrait, np.ndarray) else load_image(portrait)
    return check_video(video_path, portrait_rgb, load_audio(audio_path), checked_against)


def check_rendered(rendered: RenderedVideo, thresholds: QAThresholds | dict[str, Any] | None = None) -> CheckedVideo:
    """Run automatic QA on a rendered video against the inputs it was rendered from.

    Its files may sit in shared scratch (a cluster run): `localized` fetches them if needed.
    """
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


# QA and publishing are one task: on a cluster each Prefect task costs tens of milliseconds of
# CPU (benchmarks/fanout_scaling.py), and together the video is fetched from scratch only once.
@task(name="check-and-publish", cache_policy=NONE)
def check_and_publish_task(rendered: RenderedVideo, thresholds: Any, catalog_url: str, run_id: str,
                           signing: dict | None = None) -> RowOutcome:
    """QA a rendered video (`check_rendered`), then publish it, signed as `signing` says, or file
    it under the run if QA failed (`tasks.publish.publish_or_reject`). The render's scratch is
    removed whatever happens.

    The video may sit in shared scratch (a cluster run): `localized` gives local paths here.
    """
    publishing = False
    try:
        with localized(rendered) as local:
            checked = check_rendered(local, thresholds)
            publishing = True  # from here publish_or_reject removes the scratch, whatever happens
            return publish_or_reject(checked, catalog_url, run_id, signing)
    finally:
        if not publishing:  # fetching or QA failed: publish_or_reject never ran
            discard_scratch(rendered)
