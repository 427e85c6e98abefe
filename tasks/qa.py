"""QA task: a thin Prefect wrapper over `sonic_model.qa.check_video` (all media logic is there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NONE

from sonic_model.audio import load_audio
from sonic_model.image import load_image
from sonic_model.qa import QAResult, QAThresholds, check_video


def resolve_thresholds(thresholds: QAThresholds | dict[str, Any] | None) -> QAThresholds:
    """Defaults, a ready `QAThresholds`, or the defaults with a run's overrides (a dict)."""
    if thresholds is None:
        return QAThresholds()
    if isinstance(thresholds, QAThresholds):
        return thresholds
    return QAThresholds().with_overrides(dict(thresholds))


@task(name="qa-video", cache_policy=NONE)
def qa_video_task(
    video_path: str | Path,
    portrait: np.ndarray | str | Path,
    audio_path: str | Path,
    thresholds: QAThresholds | dict[str, Any] | None = None,
) -> QAResult:
    """Check one rendered video against its portrait (RGB array or image path) and script audio."""
    checked_against = resolve_thresholds(thresholds)  # a typo in an override fails before any decoding
    portrait_rgb = portrait if isinstance(portrait, np.ndarray) else load_image(portrait)
    return check_video(video_path, portrait_rgb, load_audio(audio_path), checked_against)
