"""Portrait + audio -> MP4 with any generator: the render path every caller shares.

A generator turns (portrait, audio, parameters) into a stream of frames; `render_video` feeds
that stream to the one encoder and reports what it made. Generators register by name in
`GENERATORS`, so the CLI and the catalog flow select them with a string.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from sonic_model.audio import AudioClip, load_audio
from sonic_model.crop import EXPAND_RATIO_RANGE, MIN_RESOLUTION_RANGE, check_range
from sonic_model.delivery import plan_delivery
from sonic_model.encode import FPS, VideoWriter, frame_count
from sonic_model.errors import ParameterError
from sonic_model.image import load_image
from sonic_model.loudness import DEFAULT_TARGET_LUFS, parse_loudness_target
from sonic_model.presets import parse_preset
from sonic_model.renditions import MASTER, parse_renditions
from sonic_model.postprocess.lipsync import MAX_AV_OFFSET_MS, audio_delay_ms, measure_offset_from_mouth, mux_shifted_audio
from sonic_model.postprocess.smoothing import DEFAULT_MOTION_SMOOTHING, MOTION_SMOOTHING_RANGE, HeadMotionSmoother
from sonic_model.rendition_writer import RenditionWriters

DYNAMIC_SCALE_RANGE = (0.5, 2.0)
MOTION_SCALE_RANGE = (0.5, 2.0)
INFERENCE_STEPS_RANGE = (1, 100)
SEED_RANGE = (0, 2**32 - 1)
AV_OFFSET_MS_RANGE = (-MAX_AV_OFFSET_MS, MAX_AV_OFFSET_MS)


@dataclass(frozen=True)
class RenderParams:
    """Generation parameters; defaults are the Sonic workflow's."""

    min_resolution: int = 512
    expand_ratio: float = 0.5
    inference_steps: int = 25
    dynamic_scale: float = 1.0
    motion_scale: float = 1.0
    seed: int = 42
    paste_back: bool = False
    # Post-processing (sonic_model.postprocess), on by default like the seed workflow's switches.
    lipsync_calibration: bool = True
    # Gaussian sigma of the head-path smoother in frames (0 = off).
    motion_smoothing: float = DEFAULT_MOTION_SMOOTHING
    # Manual audio-visual correction in ms (positive = picture late: the sound is delayed by
    # this much); None = measure and correct automatically when `lipsync_calibration` is on.
    av_offset_ms: float | None = None
    # Delivery (sonic_model.delivery): the renditions made beside the master from the same
    # frames, and the loudness every video's sound is normalised to (LUFS; None = "off": the
    # script's own level). The preset whose settings these are (sonic_model.presets), if any.
    renditions: tuple[str, ...] = (MASTER,)
    loudness_target: float | None = DEFAULT_TARGET_LUFS
    preset: str | None = None
    # The fields given explicitly (options), as opposed to filled in by the preset or the
    # built-in defaults: a manifest row's own preset does not override these. Not part of
    # what the video is (left out of the content key).
    explicit: tuple[str, ...] = ()

    @classmethod
    def resolve(cls, preset: str | None = None, explicit: dict | None = None) -> "RenderParams":
        """Built-in defaults < the preset's settings < `explicit` ones (None values = not given), checked."""
        from sonic_model.presets import apply_preset

        given = {name: value for name, value in (explicit or {}).items() if value is not None}
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ParameterError(f"unknown render parameter(s): {', '.join(unknown)}")
        settings = apply_preset(preset, given)
        settings["explicit"] = tuple(sorted(name for name in given if name not in ("preset", "explicit")))
        return cls(**settings).validated()

    def with_preset(self, preset: str | None) -> "RenderParams":
        """These parameters under another preset: its settings replace everything not given explicitly."""
        name = parse_preset(preset)
        if name == self.preset:
            return self
        return RenderParams.resolve(name, {field: getattr(self, field) for field in self.explicit})

    def validated(self) -> "RenderParams":
        """A checked copy (renditions, loudness target and preset in canonical form); raises
        `ParameterError` naming the first out-of-range value."""
        check_range("min_resolution", self.min_resolution, MIN_RESOLUTION_RANGE)
        check_range("expand_ratio", self.expand_ratio, EXPAND_RATIO_RANGE)
        check_range("inference_steps", self.inference_steps, INFERENCE_STEPS_RANGE)
        check_range("dynamic_scale", self.dynamic_scale, DYNAMIC_SCALE_RANGE)
        check_range("motion_scale", self.motion_scale, MOTION_SCALE_RANGE)
        check_range("seed", self.seed, SEED_RANGE)
        check_range("motion_smoothing", self.motion_smoothing, MOTION_SMOOTHING_RANGE)
        if self.av_offset_ms is not None:
            if not (isinstance(self.av_offset_ms, (int, float)) and math.isfinite(self.av_offset_ms)):
                raise ParameterError(f"av_offset_ms={self.av_offset_ms!r} must be a number of milliseconds")
            check_range("av_offset_ms", self.av_offset_ms, AV_OFFSET_MS_RANGE)
        if not isinstance(self.lipsync_calibration, (bool, np.bool_)):
            raise ParameterError(f"lipsync_calibration must be true or false, got {self.lipsync_calibration!r}")
        if int(self.min_resolution) != self.min_resolution or int(self.inference_steps) != self.inference_steps:
            raise ParameterError("min_resolution and inference_steps must be whole numbers")
        canonical = {
            "renditions": parse_renditions(self.renditions),
            "loudness_target": parse_loudness_target(self.loudness_target),
            "preset": parse_preset(self.preset),
            "explicit": tuple(sorted(str(name) for name in (self.explicit or ()))),
        }
        if all(getattr(self, name) == value for name, value in canonical.items()):
            return self
        return dataclasses.replace(self, **canonical)

    def as_dict(self) -> dict:
        return asdict(self)


class Generator(Protocol):
    """What a generator provides. It must yield exactly `frame_count(audio.duration_s)` frames."""

    name: str
    version: str

    def output_size(self, portrait_rgb: np.ndarray, params: RenderParams) -> tuple[int, int]:
        """(width, height) of the frames `frames` will yield."""

    def frames(self, portrait_rgb: np.ndarray, audio: AudioClip, params: RenderParams) -> Iterator[np.ndarray]:
        """Yield [H, W, 3] uint8 frames at 25 fps, one at a time."""


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
    motion_smoothing: float = 0.0
    motion_frames_warped: int = 0
    motion_correction_mean_px: float = 0.0
    motion_correction_max_px: float = 0.0
    # Delivery: each rendition made beside the master ({"name", "path", "width", "height"}),
    # and what loudness normalisation measured and did (sonic_model.loudness.LoudnessReport).
    renditions: list[dict] = field(default_factory=list)
    loudness: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def get_generator(name: str, *, weights: str | Path | None = None, device: str | None = None) -> Generator:
    """Create a generator by name ('preview', or 'sonic' with `weights`)."""
    if name == "preview":
        from sonic_model.preview import PreviewGenerator

        return PreviewGenerator()
    if name == "sonic":
        if weights is None:
            raise ParameterError("the sonic generator needs --weights DIR (the downloaded Sonic release)")
        from sonic_model.sonic import SonicGenerator

        return SonicGenerator(weights, device=device)
    raise ParameterError(f"unknown generator {name!r}; choose 'preview' or 'sonic'")


def render_video(
    generator: Generator,
    portrait: str | Path | np.ndarray,
    audio_path: str | Path,
    out_path: str | Path,
    params: RenderParams = RenderParams(),
    *,
    audio: AudioClip | None = None,
    max_audio_seconds: float | None = None,
) -> RenderResult:
    """Render one talking video and its renditions. Raises a `SonicCatalogError` subclass for any bad input.

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
        audio = load_audio(audio_path) if max_audio_seconds is None else load_audio(audio_path, max_seconds=max_audio_seconds)
    width, height = generator.output_size(portrait_rgb, params)
    num_frames = frame_count(audio.duration_s)
    out_path = Path(out_path)
    # Tracking is needed for either step; the same tracker pass serves both.
    smoother = HeadMotionSmoother(params.motion_smoothing, track=params.lipsync_calibration and params.av_offset_ms is None)
    # The sound every video of the row muxes (normalised once) and the renditions' compositors.
    # Frames of the whole photo (paste-back) go into the renditions whole; a generator that
    # makes its crop whatever paste_back says is composited as the crop it is.
    whole_photo = params.paste_back and (width, height) == (portrait_rgb.shape[1], portrait_rgb.shape[0])
    plan = plan_delivery(
        portrait_rgb, audio_path, out_path, renditions=params.renditions, loudness_target=params.loudness_target,
        expand_ratio=params.expand_ratio, paste_back=whole_photo,
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
            audio_sample_rate=48000 if normalised else None,
            audio_channels=2 if normalised else None,
        )
        with RenditionWriters(
            master, plan.compositors, plan.first_pass_paths, audio_path=plan.audio_path, generator=generator_tag
        ) as writers:
            for frame in smoother.run(generator.frames(portrait_rgb, audio, params)):
                writers.write(frame)
        measurement = None
        if smoother.track and smoother.mouth_opening:
            measurement = measure_offset_from_mouth(smoother.mouth_opening, audio, fps=FPS)
        delay_ms = audio_delay_ms(measurement if params.lipsync_calibration else None, params.av_offset_ms, fps=FPS)
        outputs = [(first_pass, out_path, "128k")] + [
            (plan.first_pass_paths[name], plan.final_paths[name], compositor.spec.audio_bitrate)
            for name, compositor in plan.compositors.items()
        ]
        for encoded, final, audio_bitrate in outputs:
            if delay_ms:
                # The picture stays as encoded (stream copy); the sound is encoded once, shifted.
                mux_shifted_audio(
                    encoded, plan.audio_path, final, delay_ms=delay_ms, duration_s=audio.duration_s, audio_bitrate=audio_bitrate
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
        **figures,
        renditions=[
            {"name": name, "path": str(plan.final_paths[name]), "width": c.spec.width, "height": c.spec.height}
            for name, c in plan.compositors.items()
        ],
        loudness=plan.loudness.as_dict() if plan.loudness else None,
    )
