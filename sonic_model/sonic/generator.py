"""`SonicGenerator`: the render protocol's generator backed by our Sonic implementation.

Differences from the public implementation, on purpose:

- the video lasts as long as the audio to within one frame: it samples N = F // 2 + 1 frames
  at 12.5 fps for F = round(25 x duration) output frames (frames past the end of the speech see
  zero audio windows, i.e. silence) and yields exactly F; the public one yields 2N - 1 frames
  for N = audio frames // 2 and then cuts the audio to that (up to ~120 ms short);
- frames are decoded 8 latents at a time, interpolated and yielded as they come, so memory
  holds the latents but never the whole video;
- audio longer than 30 s runs through several Whisper windows; audio longer than
  `max_audio_seconds` is refused with `AudioError` (the public one silently cuts at 400 s);
- it animates the face it is given (`face_box`: the one the input probe approved), so the
  detector can never pick someone else; without one, no face -> `NoFaceError` and several
  faces -> the largest (ties: score, then top-left);
- it yields frames only: the caller's encoder makes the one lossy encode;
- `paste_back=True` composites each generated crop back into the whole photo through the
  soft head-and-neck mask (`sonic_model.paste_back`, `sonic_model.composite`).

Parameters (`RenderParams`): `min_resolution`, `expand_ratio`, `inference_steps`,
`dynamic_scale` (multiplies the motion buckets: larger = more head motion) and `seed` act as in
the release. `motion_scale` has no separate control in Sonic's weights; here it multiplies the
audio guidance scale (7.5 x motion_scale), i.e. how strongly the speech drives the mouth and
facial expression relative to the still portrait. 1.0 is the release's behaviour.

Device and precision: CUDA when available with fp16 weights (the VAE stays fp32 when its
config asks for `force_upcast`) and PyTorch SDPA attention; the three guidance branches run in
one batch. CPU: fp32. Any other dtype can be asked for (the tests run bfloat16 on CPU). The
models are loaded once, in the constructor, and reused by every `frames` call.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sonic_model.audio import AudioClip
from sonic_model.crop import checked_face_box, expand_square_crop, model_resolution
from sonic_model.encode import frame_count
from sonic_model.errors import AudioError, NoFaceError
from sonic_model.face import FaceBox, face_landmarks
from sonic_model.generators import FaceBoxXYWH, RenderParams
from sonic_model.paste_back import FacePaster
from sonic_model.sonic.models import load_sonic_models
from sonic_model.sonic.pipeline import SonicPipeline, SonicSettings

IMPLEMENTATION_VERSION = "1"
# The release caps audio at 10000 frames of 25 fps (400 s); we refuse instead of cutting.
DEFAULT_MAX_AUDIO_SECONDS = 400.0


class SonicGenerator:
    name = "sonic"
    version = f"sonic-release+ours{IMPLEMENTATION_VERSION}"

    def __init__(
        self,
        weights_dir: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
        base_settings: SonicSettings = SonicSettings(),
    ):
        self.models = load_sonic_models(weights_dir, device=device, dtype=dtype)
        self.pipeline = SonicPipeline(self.models)
        self.max_audio_seconds = max_audio_seconds
        self.base_settings = base_settings
        self._detector = None
        if self.models.face_detector_path is not None:
            from sonic_model.sonic.yoloface import YoloFaceDetector

            self._detector = YoloFaceDetector(self.models.face_detector_path, self.models.device)
        self._face_cache: dict[str, tuple[float, float, float, float]] = {}
        self._lock = threading.Lock()  # one render at a time per loaded model

    # --- face selection ---
    def face_box(self, portrait_rgb: np.ndarray) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the largest face; `NoFaceError` when there is none. Cached per image."""
        key = hashlib.sha1(np.ascontiguousarray(portrait_rgb).tobytes()).hexdigest() + str(portrait_rgb.shape)
        if key not in self._face_cache:
            if self._detector is not None:
                faces = self._detector.detect(portrait_rgb)
            else:
                from sonic_model.face import detect_faces

                faces = detect_faces(portrait_rgb)
            if not faces:
                height, width = portrait_rgb.shape[:2]
                raise NoFaceError(
                    f"no face found in the {width}x{height} portrait; use a photo with one clearly visible, roughly "
                    "frontal face"
                )
            # Largest area first; ties broken by score, then top-left: deterministic.
            best = min(faces, key=lambda f: (-round(f.w * f.h, 3), -f.score, f.y, f.x))
            self._face_cache.clear()  # keep one entry: output_size() then frames() on the same portrait
            self._face_cache[key] = (best.x, best.y, best.w, best.h)
        return self._face_cache[key]

    def subject_box(self, portrait_rgb: np.ndarray, face_box: FaceBoxXYWH | None = None) -> FaceBoxXYWH:
        """The face to animate: `face_box` when given (checked against the image), else detected."""
        if face_box is not None:
            return checked_face_box(face_box, (portrait_rgb.shape[1], portrait_rgb.shape[0]))
        return self.face_box(portrait_rgb)

    def settings(self, params: RenderParams) -> SonicSettings:
        low, high = self.base_settings.guidance_scale_audio_min_max
        return replace(
            self.base_settings,
            min_resolution=int(params.min_resolution),
            expand_ratio=float(params.expand_ratio),
            inference_steps=int(params.inference_steps),
            dynamic_scale=float(params.dynamic_scale),
            seed=int(params.seed),
            guidance_scale_audio_min_max=(low * params.motion_scale, high * params.motion_scale),
        )

    # --- the generator protocol ---
    def output_size(
        self, portrait_rgb: np.ndarray, params: RenderParams, *, face_box: FaceBoxXYWH | None = None
    ) -> tuple[int, int]:
        height, width = portrait_rgb.shape[:2]
        if params.paste_back:
            return width, height
        settings = self.settings(params)
        if settings.crop:
            face = self.subject_box(portrait_rgb, face_box)
            x0, y0, x1, y1 = expand_square_crop(face, (width, height), settings.expand_ratio)
            width, height = x1 - x0, y1 - y0
        return model_resolution(width, height, settings.min_resolution)

    def frames(
        self, portrait_rgb: np.ndarray, audio: AudioClip, params: RenderParams, *, face_box: FaceBoxXYWH | None = None
    ) -> Iterator[np.ndarray]:
        if audio.sample_rate != 16000:
            raise AudioError(f"the Sonic generator needs 16 kHz audio, got {audio.sample_rate} Hz")
        if audio.duration_s > self.max_audio_seconds:
            raise AudioError(
                f"audio is {audio.duration_s:.1f} s, longer than the Sonic limit of {self.max_audio_seconds:g} s; "
                "split the script"
            )
        settings = self.settings(params)
        audio_frames_needed = int(np.ceil(audio.duration_s * 25)) + 2
        if audio_frames_needed > settings.max_audio_frames_25fps:
            settings = replace(settings, max_audio_frames_25fps=audio_frames_needed)
        face = self.subject_box(portrait_rgb, face_box)
        paster = None
        if params.paste_back:
            # The crop the pipeline animates (the same rule and inputs as its step 1), pasted back.
            height, width = portrait_rgb.shape[:2]
            crop_box = (0, 0, width, height)
            if settings.crop:
                crop_box = expand_square_crop(face, (width, height), settings.expand_ratio)
            # The mask follows the face mesh of the face being animated.
            landmarks = face_landmarks(portrait_rgb, FaceBox(*face, score=1.0))
            paster = FacePaster(portrait_rgb, crop_box, landmarks)
        # No grad-mode context here: one held across `yield` would leak into the caller's code;
        # the pipeline's steps are each decorated with torch.no_grad (generator-aware).
        with self._lock:
            stream = self.pipeline.run(
                portrait_rgb, face, audio.samples, settings, output_frames=frame_count(audio.duration_s)
            )
            try:
                for frame in stream:
                    yield frame if paster is None else paster.paste(frame)
            finally:
                stream.close()  # a caller that stops early frees the latents now
