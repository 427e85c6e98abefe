"""QA of a rendered row (all media logic is in `sonic_model.qa.check_video`; this module only
adapts it).

`check_rendered` takes a `RenderedVideo` with local files and returns a `CheckedVideo`; the
catalog flow runs it inside `tasks.publish.check_and_publish_task`, the one Prefect task that
checks a video and then publishes or rejects it. `check_video_file` is the same check on plain
files, for a notebook or a one-off.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

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
    """Run automatic QA on a rendered video against the inputs it was rendered from.

    Its files may sit in shared scratch (a cluster run): `localized` fetches them if needed.
    """
    from tasks.scratch import localized

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
