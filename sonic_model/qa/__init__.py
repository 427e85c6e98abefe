"""Quality checks of a rendered talking-head video (`check_video`), one concern per module:

    thresholds  `QAThresholds`: what a video must satisfy, every default with its source
    result      `QAResult`: the verdict and its JSON-able figures
    checks      `check_video` and the `_check_*` functions it runs
    picture     the one streaming pass over the picture; mouth and head measures
    identity    dlib's 128-d face descriptor (portrait cached, sampled frames)
    loudness    the file's audio track and its BS.1770 integrated loudness
    plot        `plot_sync`, the report's mouth-against-audio plot

The audio-visual offset measurement QA uses lives in `sonic_model.sync` (lip-sync calibration
uses it too); its names are re-exported here for QA's callers.
"""

from sonic_model.qa.checks import SILENCE_LUFS, check_video, silences
from sonic_model.qa.identity import clear_portrait_cache, face_descriptor, portrait_face
from sonic_model.qa.loudness import decode_audio_track, integrated_loudness
from sonic_model.qa.picture import head_anchor, head_jitter
from sonic_model.qa.plot import plot_sync
from sonic_model.qa.result import QAResult
from sonic_model.qa.thresholds import QAThresholds
from sonic_model.sync import (
    SyncMeasurement,
    estimate_av_offset,
    measure_av_sync,
    speech_mask_for_frames,
)

__all__ = [
    "SILENCE_LUFS",
    "QAResult",
    "QAThresholds",
    "SyncMeasurement",
    "check_video",
    "clear_portrait_cache",
    "decode_audio_track",
    "estimate_av_offset",
    "face_descriptor",
    "head_anchor",
    "head_jitter",
    "integrated_loudness",
    "measure_av_sync",
    "plot_sync",
    "portrait_face",
    "silences",
    "speech_mask_for_frames",
]
