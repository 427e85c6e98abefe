"""Portrait + audio -> MP4 with any generator: the render path every caller shares.

A generator (`sonic_model.generators.Generator`, created by name with `create_generator`)
turns (portrait, audio, parameters) into a stream of frames; `render_video` feeds that stream to
the one encoder, runs the post-processing in the same pass and reports what it made.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sonic_model.audio import AudioClip, load_audio
from sonic_model.delivery import plan_delivery
from sonic_model.encode import FPS, VideoWriter, frame_count
from sonic_model.generators import FaceBoxXYWH, Generator, RenderParams
from sonic_model.image import load_image
from sonic_model.loudness import OUTPUT_CHANNELS, OUTPUT_SAMPLE_RATE
from sonic_model.postprocess.lipsync import (
    audio_delay_ms,
    calibration_figures,
    calibration_shift,
    measure_offset_from_mouth,
    mux_shifted_audio,
)
from sonic_model.postprocess.smoothing import HeadMotionSmoother
from sonic_model.prefetch import prefetch
from sonic_model.rendition_writer import RenditionWriters

# Frames a generator may make ahead of the encoder (each one frame of memory).
FRAMES_AHEAD = 4


@dataclass(frozen=True)
class RenderResult:
    """What `render_video` made (durations in seconds)."""

    output_path: str
    generator: str
    generator_version: str
    frames: int
    fps: int
    width: int
    height: int
    video_duration_s: float
    audio_duration_s: float
    seconds: float
    # Post-processing figures (JSON-able, for the sidecar and the ledger). Offsets: positive =
    # picture late. Measured figures are None when nothing was measured (calibration off and no
    # smoothing, or no usable face/speech).
    av_offset_measured_frames: int | None = None
    av_sync_correlation: float | None = None
    av_offset_confident: bool = False
    av_offset_applied_ms: float = 0.0
    # What calibration measured and decided (`sonic_model.postprocess.lipsync.calibration_figures`:
    # status, confidence, the shift test's gain over lag 0 and its standard error); None = not measured.
    av_calibration: dict | None = None
    motion_smoothing: float = 0.0
    motion_frames_warped: int = 0
    motion_correction_mean_px: float = 0.0
    motion_correction_max_px: float = 0.0
    # Delivery: each rendition made beside the master ({"name", "path", "width", "height",
    # "placement": [scale, dx, dy] of the photo in its frame}),
    # and what loudness normalisation measured and did (sonic_model.loudness.LoudnessReport).
    renditions: list[dict] = field(default_factory=list)
    loudness: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def render_video(
    generator: Generator,
    portrait: str | Path | np.ndarray,
    audio_path: str | Path,
    out_path: str | Path,
    params: RenderParams = RenderParams(),
    *,
    audio: AudioClip | None = None,
    max_audio_seconds: float | None = None,
    face_box: FaceBoxXYWH | None = None,
) -> RenderResult:
    """Render one talking video and its renditions. Raises a `SonicCatalogError` subclass for any bad input.

    `face_box` (x, y, width, height in the portrait's pixels) is the face to animate, e.g. the
    one the input probe approved; None lets the generator pick the subject (the largest face).
    The original audio file is muxed (not the 16 kHz copy the generator listens to), so the
    published sound keeps its quality; with a loudness target it is normalised first (48 kHz
    stereo), once for every video of the row. Each rendition in `params.renditions` is written
    beside `out_path` (`talk.mp4` -> `talk.vertical.mp4`, see `RenderResult.renditions`),
    composited from the same generated frames in the same streaming pass.
    """
    started = time.perf_counter()
    params = params.validated()
    portrait_rgb = portrait if isinstance(portrait, np.ndarray) else load_image(portrait)
    if audio is None:
        audio = (
            load_audio(audio_path)
            if max_audio_seconds is None
            else load_audio(audio_path, max_seconds=max_audio_seconds)
        )
    width, height = generator.output_size(portrait_rgb, params, face_box=face_box)
    num_frames = frame_count(audio.duration_s)
    out_path = Path(out_path)
    # Tracking is needed for either step; the same tracker pass serves both.
    smoother = HeadMotionSmoother(
        params.motion_smoothing, track=params.lipsync_calibration and params.av_offset_ms is None
    )
    # The sound every video of the row muxes (normalised once) and the renditions' compositors.
    # Frames of the whole photo (paste-back) go into the renditions whole; a generator that
    # makes its crop whatever paste_back says is composited as the crop it is.
    whole_photo = params.paste_back and (width, height) == (portrait_rgb.shape[1], portrait_rgb.shape[0])
    plan = plan_delivery(
        portrait_rgb,
        audio_path,
        out_path,
        renditions=params.renditions,
        loudness_target=params.loudness_target,
        expand_ratio=params.expand_ratio,
        paste_back=whole_photo,
        face_box=face_box,
    )
    # Encode once, to hidden names: the files appear under their final names only when final
    # (re-timed or not), so no reader ever sees an uncalibrated video there.
    first_pass = out_path.with_name(f".{out_path.stem}.encoded{out_path.suffix or '.mp4'}")
    generator_tag = f"{generator.name} {generator.version}"
    normalised = plan.loudness is not None
    try:
        master = VideoWriter(
            first_pass,
            width=width,
            height=height,
            num_frames=num_frames,
            audio_path=plan.audio_path,
            generator=generator_tag,
            audio_sample_rate=OUTPUT_SAMPLE_RATE if normalised else None,
            audio_channels=OUTPUT_CHANNELS if normalised else None,
        )
        with RenditionWriters(
            master, plan.compositors, plan.first_pass_paths, audio_path=plan.audio_path, generator=generator_tag
        ) as writers:
            # The generator works a few frames ahead in its own thread while this one tracks,
            # smooths and encodes: on two cores that overlaps the two halves of the work.
            frames = prefetch(
                generator.frames(portrait_rgb, audio, params, face_box=face_box),
                depth=FRAMES_AHEAD,
                name="render-frames",
            )
            with closing(frames):  # on an error: stop the generator's thread now, not when collected
                for frame in smoother.run(frames):
                    writers.write(frame)
        measurement = None
        if smoother.track and smoother.mouth_opening:
            measurement = measure_offset_from_mouth(smoother.mouth_opening, audio, fps=FPS)
        calibrated = measurement if params.lipsync_calibration else None
        delay_ms = audio_delay_ms(calibrated, params.av_offset_ms, fps=FPS)
        decision = (
            calibration_figures(calibrated, calibration_shift(calibrated))
            if calibrated is not None and params.av_offset_ms is None
            else None
        )
        # (encoded, final, audio bitrate, whether its sound is 48 kHz stereo): every rendition's is,
        # the master's when normalised (at "off" it keeps the script's rate and channels).
        outputs = [(first_pass, out_path, "128k", normalised)] + [
            (plan.first_pass_paths[name], plan.final_paths[name], compositor.spec.audio_bitrate, True)
            for name, compositor in plan.compositors.items()
        ]
        for encoded, final, audio_bitrate, delivery_format in outputs:
            if delay_ms:
                # The picture stays as encoded (stream copy); the sound is encoded once, shifted.
                mux_shifted_audio(
                    encoded,
                    plan.audio_path,
                    final,
                    delay_ms=delay_ms,
                    duration_s=audio.duration_s,
                    audio_bitrate=audio_bitrate,
                    sample_rate=OUTPUT_SAMPLE_RATE if delivery_format else None,
                    channels=OUTPUT_CHANNELS if delivery_format else None,
                )
            else:
                os.replace(encoded, final)
    finally:
        first_pass.unlink(missing_ok=True)
        plan.cleanup()
    figures = smoother.figures.as_dict()
    measured = measurement is not None and math.isfinite(measurement.correlation)
    return RenderResult(
        output_path=str(out_path),
        generator=generator.name,
        generator_version=generator.version,
        frames=num_frames,
        fps=FPS,
        width=width - width % 2,
        height=height - height % 2,
        video_duration_s=num_frames / FPS,
        audio_duration_s=audio.duration_s,
        seconds=time.perf_counter() - started,
        av_offset_measured_frames=measurement.offset_frames if measured else None,
        av_sync_correlation=round(measurement.correlation, 4) if measured else None,
        av_offset_confident=bool(measured and measurement.confident),
        av_offset_applied_ms=round(delay_ms, 3),
        av_calibration=decision,
        **figures,
        renditions=[
            {
                "name": name,
                "path": str(plan.final_paths[name]),
                "width": c.spec.width,
                "height": c.spec.height,
                "placement": [c.placement.scale, c.placement.dx, c.placement.dy],
            }
            for name, c in plan.compositors.items()
        ],
        loudness=plan.loudness.as_dict() if plan.loudness else None,
    )
