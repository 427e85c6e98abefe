"""The file's own audio track: decoding it, and its ITU-R BS.1770 integrated loudness (K-weighted, gated).

The measurement itself lives in `sonic_model.loudness` (normalisation before muxing uses it too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonic_model.loudness_meter import integrated_loudness, true_peak_dbtp

__all__ = ["decode_audio_track", "integrated_loudness", "true_peak_dbtp"]


def decode_audio_track(video_path: str | Path) -> tuple[np.ndarray, int] | None:
    """The file's first audio track as float32 [samples, channels] at its own rate (None if absent).

    Decoded at the native rate and channel layout because clipping and loudness are properties
    of what is delivered, which a downmix or resampling would blur. Laid on the picture's
    timeline (`sonic_model.video_reader.audio_on_picture_timeline`): sample 0 plays with frame 0.
    """
    from sonic_model.video_reader import audio_on_picture_timeline

    track = audio_on_picture_timeline(video_path)
    if track is None:
        return None
    return np.ascontiguousarray(track.samples.T), int(track.sample_rate)
