"""Resource limits for one row's media, and the command-line options that set them.

Kept apart from `tasks.probe` so the command line can offer the options without importing
Prefect or any decoder (argument parsing stays instant).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# Mirrors of sonic_model.image.DEFAULT_MAX_PIXELS and sonic_model.audio.{MIN_SECONDS,
# DEFAULT_MAX_SECONDS} (asserted equal in tests/test_hostile_faults.py), without importing them.
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SECONDS = 600.0
MIN_SECONDS = 0.2


@dataclass(frozen=True)
class MediaLimits:
    """Resource limits for one row's media (all configurable per run).

    Defaults: 40 MP portraits (any camera portrait; refuses decompression bombs before
    decoding), audio 0.2 s (under one video frame there is nothing to animate) to 600 s
    (a 10-minute script; longer renders should be split), and 256 MB per file (a 10-minute
    48 kHz 24-bit stereo WAV is ~173 MB).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_audio_seconds: float = DEFAULT_MAX_SECONDS
    max_file_bytes: int = 256 * 1024 * 1024
    min_audio_seconds: float = MIN_SECONDS

    def __post_init__(self) -> None:
        from sonic_model.errors import ParameterError

        for name in ("max_pixels", "max_audio_seconds", "max_file_bytes", "min_audio_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ParameterError(f"media limit {name} must be a positive number, got {value!r}")
        if self.min_audio_seconds >= self.max_audio_seconds:
            raise ParameterError(
                f"media limit min_audio_seconds {self.min_audio_seconds:g} must be below max_audio_seconds "
                f"{self.max_audio_seconds:g}"
            )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> MediaLimits:
        """From a flow parameter / run.json (unknown keys refused, missing ones default)."""
        from sonic_model.errors import ParameterError

        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ParameterError(f"unknown media limit(s) {', '.join(unknown)}")
        return cls(**values)


def add_limit_options(parser) -> None:
    """`--max-pixels`, `--max-audio-seconds`, `--max-file-mb`: the run's `MediaLimits` (render, validate)."""
    defaults = MediaLimits()
    options = (
        ("--max-pixels", int, defaults.max_pixels, "N",
         "refuse portraits with more pixels, checked before decoding (default %(default)s = 40 MP)"),
        ("--max-audio-seconds", float, defaults.max_audio_seconds, "S",
         "refuse longer script audio, never cut it (default %(default)s)"),
        ("--max-file-mb", float, defaults.max_file_bytes / (1024 * 1024), "MB",
         "refuse larger media files, checked before reading (default %(default)g MiB)"),
    )  # fmt: skip
    for flag, kind, default, metavar, help_text in options:
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=help_text)


def limits_from_args(args) -> MediaLimits:
    return MediaLimits(
        max_pixels=int(args.max_pixels),
        max_audio_seconds=float(args.max_audio_seconds),
        max_file_bytes=int(float(args.max_file_mb) * 1024 * 1024),
    )
