"""What the sync tests measure on a real preview render: the mouth as QA tracks it, and a sound's
envelope and speech mask as QA reads them (shared by tests/test_sync_*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonic_model.audio import AudioClip, frame_envelope, speech_segments
from sonic_model.encode import FPS
from sonic_model.face import LandmarkTracker, mouth_opening
from sonic_model.generators import RenderParams
from sonic_model.image import load_image
from sonic_model.preview.generator import PreviewGenerator
from sonic_model.sync import at_reference_level, speech_mask_for_frames

# a quick preview: small, no motion smoothing, no loudness normalisation
QUICK = dict(min_resolution=256, motion_smoothing=0.0, loudness_target=None)


def sound(clip: AudioClip) -> tuple[np.ndarray, np.ndarray]:
    """QA's envelope and speech mask of a sound (at the reference level)."""
    level = at_reference_level(clip)
    envelope = frame_envelope(level, FPS)
    return envelope.astype(np.float64), speech_mask_for_frames(speech_segments(level), len(envelope), FPS)


def tracked_mouth(portrait: Path, audio: AudioClip) -> np.ndarray:
    """The mouth opening on every frame of the preview of `portrait` saying `audio`, tracked as QA
    tracks it (NaN where no face was found)."""
    tracker = LandmarkTracker()
    mouth = []
    for frame in PreviewGenerator().frames(load_image(portrait), audio, RenderParams(**QUICK)):
        landmarks = tracker(frame)
        mouth.append(np.nan if landmarks is None else mouth_opening(landmarks))
    return np.asarray(mouth)
