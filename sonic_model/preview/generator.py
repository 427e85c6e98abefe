"""The preview generator: a talking portrait on a CPU, no model weights.

Pipeline per video: the given face box (the face the input probe approved), else the largest
face -> the Sonic crop at `min_resolution` (or the full photo with `paste_back=True`) -> face
mesh on that image -> a `FaceRig` -> control tracks from the audio (loudness, spectrum, speech
segments) -> one warped frame per 40 ms, yielded one at a time.

The portrait preparation (face detection, mesh, rig fields) is cached for the last portrait,
face box and parameters seen, because `render_video` asks for `output_size` before it asks for
`frames`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sonic_model.audio import AudioClip, speech_segments
from sonic_model.crop import checked_face_box, prepare_portrait
from sonic_model.encode import FPS, frame_count
from sonic_model.face import FaceBox, face_landmarks, largest_face
from sonic_model.generators import DYNAMIC_SCALE_RANGE, MOTION_SCALE_RANGE, FaceBoxXYWH, RenderParams
from sonic_model.preview.controls import Controls, build_controls
from sonic_model.preview.rig import FaceRig, FrameControls

__all__ = [
    "PreviewGenerator",
    "DYNAMIC_SCALE_RANGE",
    "MOTION_SCALE_RANGE",
    "DEFAULT_DYNAMIC_SCALE",
    "DEFAULT_MOTION_SCALE",
]

# The Sonic workflow's defaults; the ranges (0.5-2.0 each) are the ones RenderParams validates.
DEFAULT_DYNAMIC_SCALE = 1.0
DEFAULT_MOTION_SCALE = 1.0


@dataclass(frozen=True)
class PreparedFace:
    """The image the preview animates (crop or full photo) and its rig."""

    image: np.ndarray
    rig: FaceRig

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


class PreviewGenerator:
    """Warps the portrait along its face mesh, driven by the audio (see the package docstring)."""

    name = "preview"
    # Part of every content key: bump it whenever the frames change. 1.1: open-mouth portraits
    # close by warping their own lips together (closure.py) and open from closed lips. 1.2: the
    # painted mouth interior joins the lips in a gradient and stops short of their corners.
    version = "1.2"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached_key: tuple | None = None
        self._cached: PreparedFace | None = None

    def output_size(
        self, portrait_rgb: np.ndarray, params: RenderParams, *, face_box: FaceBoxXYWH | None = None
    ) -> tuple[int, int]:
        """(width, height): the Sonic crop at min_resolution, or the photo's own size with paste_back."""
        return self.prepare(portrait_rgb, params, face_box).size

    def frames(
        self, portrait_rgb: np.ndarray, audio: AudioClip, params: RenderParams, *, face_box: FaceBoxXYWH | None = None
    ) -> Iterator[np.ndarray]:
        """Yield exactly `frame_count(audio.duration_s)` RGB uint8 frames at 25 fps of the face at
        `face_box` (x, y, width, height in portrait pixels; None: the largest face)."""
        prepared = self.prepare(portrait_rgb, params, face_box)
        controls = self.controls(audio, params)
        rig = prepared.rig
        for index in range(controls.num_frames):
            yield rig.render(frame_controls(controls, index))

    def controls(self, audio: AudioClip, params: RenderParams) -> Controls:
        """The per-frame control tracks for this audio (mouth, blinks, head motion)."""
        num_frames = frame_count(audio.duration_s, FPS)
        return build_controls(
            audio.samples,
            audio.sample_rate,
            num_frames,
            speech_segments(audio),
            dynamic_scale=params.dynamic_scale,
            motion_scale=params.motion_scale,
            seed=params.seed,
        )

    def prepare(
        self, portrait_rgb: np.ndarray, params: RenderParams, face_box: FaceBoxXYWH | None = None
    ) -> PreparedFace:
        """Face, crop, mesh and rig for this portrait (cached for the last one seen)."""
        if face_box is not None:
            face_box = checked_face_box(face_box, (portrait_rgb.shape[1], portrait_rgb.shape[0]))
        key = (_fingerprint(portrait_rgb), face_box, params.min_resolution, params.expand_ratio, params.paste_back)
        with self._lock:
            if key != self._cached_key:
                self._cached = _prepare_face(portrait_rgb, params, face_box)
                self._cached_key = key
            return self._cached


def frame_controls(controls: Controls, index: int) -> FrameControls:
    return FrameControls(
        mouth=float(controls.mouth[index]),
        spread=float(controls.spread[index]),
        press=float(controls.press[index]),
        blink=float(controls.blink[index]),
        brow=float(controls.brow[index]),
        yaw=float(controls.yaw[index]),
        pitch=float(controls.pitch[index]),
        roll=float(controls.roll[index]),
        shift_x=float(controls.shift_x[index]),
        shift_y=float(controls.shift_y[index]),
    )


def _prepare_face(portrait_rgb: np.ndarray, params: RenderParams, face_box: FaceBoxXYWH | None) -> PreparedFace:
    portrait_rgb = np.ascontiguousarray(portrait_rgb)
    # A given box has no detector key points: the face mesh levels the eyes itself (its second pass).
    box = FaceBox(*face_box, score=1.0) if face_box is not None else largest_face(portrait_rgb)
    if params.paste_back:
        # Animate the photo itself: no resampling of anything outside the moving face and head.
        image = portrait_rgb
        landmarks = face_landmarks(image, box)
    else:
        prepared = prepare_portrait(
            portrait_rgb, box.xywh, expand_ratio=params.expand_ratio, min_resolution=params.min_resolution
        )
        image = prepared.image
        x0, y0 = prepared.crop_box[:2]
        landmarks = face_landmarks(image, box.scaled(prepared.scale, -x0 * prepared.scale, -y0 * prepared.scale))
    return PreparedFace(image=image, rig=FaceRig(image, landmarks))


def _fingerprint(rgb: np.ndarray) -> tuple:
    array = np.ascontiguousarray(rgb)
    return (array.shape, str(array.dtype), hashlib.blake2b(array.data, digest_size=16).hexdigest())
