"""What a generator is, its parameters, and the one registry that names them.

A generator turns (portrait, audio, parameters) into a stream of frames (`Generator`);
`sonic_model.render.render_video` encodes that stream. Generators are looked up by name in one
table, so the CLI, the catalog flow and its workers select them with a string:

    register_generator("preview", "sonic_model.preview.generator:PreviewGenerator")
    create_generator("sonic", weights="/models/sonic")      # loads the weights
    generator_version("sonic")                                # "sonic-release+ours1", no weights
    generator_takes_seed("preview")                           # True: another seed, another video

A factory is either a callable or a "module:attribute" string that is imported only when the
generator is first created or asked for its version. So this module depends on no generator
implementation: importing it (or the preview) never imports torch, and the implementations may
import `RenderParams` from here without an import cycle. A factory is called with no arguments,
or as `factory(weights, device=device)` when registered with `needs_weights=True`.

A generator's version is part of every content key, so it must be known without loading
weights: the `version=` given at registration, else the factory's own `version` attribute (a
generator class's class attribute). Errors name what is wrong and what to do: an unknown name or
missing weights is a `ParameterError`, a generator whose code does not import here is a
`GeneratorUnavailableError` (never a swallowed ImportError).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sonic_model.audio import AudioClip
from sonic_model.crop import EXPAND_RATIO_RANGE, MIN_RESOLUTION_RANGE, check_range
from sonic_model.errors import GeneratorUnavailableError, ParameterError
from sonic_model.loudness import DEFAULT_TARGET_LUFS, parse_loudness_target
from sonic_model.postprocess.lipsync import MAX_AV_OFFSET_MS
from sonic_model.postprocess.smoothing import DEFAULT_MOTION_SMOOTHING, MOTION_SMOOTHING_RANGE
from sonic_model.presets import apply_preset, parse_preset
from sonic_model.renditions import MASTER, parse_renditions

DYNAMIC_SCALE_RANGE = (0.5, 2.0)
MOTION_SCALE_RANGE = (0.5, 2.0)
INFERENCE_STEPS_RANGE = (1, 100)
SEED_RANGE = (0, 2**32 - 1)
AV_OFFSET_MS_RANGE = (-MAX_AV_OFFSET_MS, MAX_AV_OFFSET_MS)

# A face box (x, y, width, height) in portrait pixels (after EXIF orientation), as the input
# probe and the face detectors report it.
FaceBoxXYWH = tuple[float, float, float, float]


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
    # Burn the row's captions into its renditions (not the master, which keeps its soft track);
    # sonic_model/captions/burn.py. In the content key only where it changes a video (records.py).
    burn_captions: bool = False
    # The fields given explicitly (options), as opposed to filled in by the preset or the
    # built-in defaults: a manifest row's own preset does not override these. Not part of
    # what the video is (left out of the content key).
    explicit: tuple[str, ...] = ()

    @classmethod
    def resolve(cls, preset: str | None = None, explicit: dict | None = None) -> RenderParams:
        """Built-in defaults < the preset's settings < `explicit` ones (None values = not given), checked."""
        given = {name: value for name, value in (explicit or {}).items() if value is not None}
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ParameterError(f"unknown render parameter(s): {', '.join(unknown)}")
        settings = apply_preset(preset, given)
        settings["explicit"] = tuple(sorted(name for name in given if name not in ("preset", "explicit")))
        return cls(**settings).validated()

    def with_preset(self, preset: str | None) -> RenderParams:
        """These parameters under another preset: its settings replace everything not given explicitly."""
        name = parse_preset(preset)
        if name == self.preset:
            return self
        return RenderParams.resolve(name, {field: getattr(self, field) for field in self.explicit})

    def validated(self) -> RenderParams:
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
        for switch in ("lipsync_calibration", "burn_captions"):
            if not isinstance(getattr(self, switch), (bool, np.bool_)):
                raise ParameterError(f"{switch} must be true or false, got {getattr(self, switch)!r}")
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
    """What a generator provides. It must yield exactly `frame_count(audio.duration_s)` frames.

    `face_box` is the face to animate (the one the input probe approved); None means the
    generator finds the subject itself (the largest face).
    """

    name: str
    version: str

    def output_size(
        self, portrait_rgb: np.ndarray, params: RenderParams, *, face_box: FaceBoxXYWH | None = None
    ) -> tuple[int, int]:
        """(width, height) of the frames `frames` will yield."""

    def frames(
        self, portrait_rgb: np.ndarray, audio: AudioClip, params: RenderParams, *, face_box: FaceBoxXYWH | None = None
    ) -> Iterator[np.ndarray]:
        """Yield [H, W, 3] uint8 frames at 25 fps, one at a time."""


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorEntry:
    """One registered generator: how to create it and how to learn its version."""

    name: str
    factory: str | Callable[..., Any]  # a callable, or "module:attribute" imported on first use
    version: str | None = None  # None: the factory's own `version` attribute
    needs_weights: bool = False


_REGISTRY: dict[str, GeneratorEntry] = {}
_REGISTRY_LOCK = threading.Lock()


def register_generator(
    name: str, factory: str | Callable[..., Any], *, version: str | None = None, needs_weights: bool = False
) -> None:
    """Make `factory` the generator called `name` in this process (a later call replaces it).

    `factory` is a callable or a "module:attribute" string (imported only when needed). It is
    called with no arguments, or as `factory(weights, device=device)` with `needs_weights=True`.
    Give `version` unless the factory has a `version` attribute of its own.
    """
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"a generator name must be a non-empty string, got {name!r}")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        if not module or not attribute:
            raise ParameterError(f"generator {name!r}: factory {factory!r} must look like 'package.module:attribute'")
    elif not callable(factory):
        raise ParameterError(
            f"generator {name!r}: factory must be callable or a 'module:attribute' string, got {factory!r}"
        )
    if version is not None and (not isinstance(version, str) or not version):
        raise ParameterError(f"generator {name!r}: version must be a non-empty string, got {version!r}")
    with _REGISTRY_LOCK:
        _REGISTRY[name] = GeneratorEntry(name=name, factory=factory, version=version, needs_weights=needs_weights)


def generator_names() -> list[str]:
    """The registered generator names, sorted."""
    with _REGISTRY_LOCK:
        return sorted(_REGISTRY)


def generator_entry(name: str) -> GeneratorEntry:
    """The registry entry for `name`; `ParameterError` listing the known names when there is none."""
    with _REGISTRY_LOCK:
        entry = _REGISTRY.get(name)
        known = sorted(_REGISTRY)
    if entry is None:
        raise ParameterError(
            f"unknown generator {name!r}; choose one of {', '.join(map(repr, known))} "
            "(or register yours with sonic_model.generators.register_generator, e.g. in a worker --preload file)"
        )
    return entry


def _load_factory(entry: GeneratorEntry) -> Callable[..., Any]:
    """The entry's factory, importing its module if it was given as a string."""
    if not isinstance(entry.factory, str):
        return entry.factory
    module_name, _, attribute = entry.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GeneratorUnavailableError(
            f"the {entry.name!r} generator cannot be loaded here: importing {module_name} failed "
            f"({type(exc).__name__}: {exc}); install what it needs (for the built-in generators: "
            "pip install sonic-catalog) or choose another generator"
        ) from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise GeneratorUnavailableError(
            f"the {entry.name!r} generator cannot be loaded: {module_name} has no {attribute!r}; "
            "fix the factory given to register_generator"
        ) from None


def generator_version(name: str) -> str:
    """The version of generator `name`, without creating it (so without loading any weights)."""
    entry = generator_entry(name)
    version = entry.version
    if version is None:
        version = getattr(_load_factory(entry), "version", None)
    if not isinstance(version, str) or not version:
        raise ParameterError(
            f"generator {name!r} declares no version (needed for content keys); "
            "pass version='...' to register_generator or give its factory a `version` attribute"
        )
    return version


def generator_takes_seed(name: str) -> bool:
    """Whether generator `name` uses `RenderParams.seed` (so another seed gives another video).

    A generator that does not says so with a `seeded = False` attribute on its factory; both
    built-in ones are seeded (Sonic's diffusion noise; the preview's blinks and head sway)."""
    return bool(getattr(_load_factory(generator_entry(name)), "seeded", True))


def create_generator(name: str, *, weights: str | Path | None = None, device: str | None = None) -> Generator:
    """A new generator `name` ('preview', or 'sonic' with `weights`: the downloaded release)."""
    entry = generator_entry(name)
    if entry.needs_weights and weights is None:
        raise ParameterError(
            f"the {name} generator needs weights: pass --weights DIR (the downloaded release; see docs/generators.md)"
        )
    factory = _load_factory(entry)
    return factory(weights, device=device) if entry.needs_weights else factory()


# The built-in generators. The Sonic one imports torch and loads weights only when created.
register_generator("preview", "sonic_model.preview.generator:PreviewGenerator")
register_generator("sonic", "sonic_model.sonic.generator:SonicGenerator", needs_weights=True)
