"""Named presets: `fast` and `high-quality`, the two workflows people know from ComfyUI's templates.

A preset is a set of generation settings (`PRESETS`). It fills in whatever the caller did not
set: an explicit option (`--inference-steps 30`) or a manifest row's own column wins over the
preset, and the preset wins over the built-in defaults. The preset's name is kept with the
parameters (`RenderParams.preset`), so it goes into the sidecar and the content key.

What each costs (Sonic on a GPU: time grows with steps x pixels; figures in docs/renditions.md):

    fast          12 steps at 384 px: ~0.27x the default's generation time (12/25 x (384/512)^2);
                  light head smoothing; master only
    high-quality  40 steps at 768 px: ~3.6x the default's generation time (40/25 x (768/512)^2);
                  stronger head smoothing; master + vertical + square + landscape
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sonic_model.cells import is_missing
from sonic_model.errors import ParameterError

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "min_resolution": 384,
        "inference_steps": 12,
        "dynamic_scale": 1.0,
        "motion_scale": 1.0,
        "motion_smoothing": 1.0,
        "renditions": ("master",),
    },
    "high-quality": {
        "min_resolution": 768,
        "inference_steps": 40,
        "dynamic_scale": 1.0,
        "motion_scale": 1.0,
        "motion_smoothing": 3.0,
        "renditions": ("master", "vertical", "square", "landscape"),
    },
}
PRESET_NAMES = tuple(PRESETS)


def parse_preset(value: Any) -> str | None:
    """A preset name (case-insensitive; "high_quality" and "hq" accepted), or None for none / empty."""
    if is_missing(value):
        return None
    text = str(value).strip().lower().replace("_", "-")
    if text in ("", "none", "default"):
        return None
    text = {"hq": "high-quality", "highquality": "high-quality", "quality": "high-quality"}.get(text, text)
    if text not in PRESETS:
        raise ParameterError(f"unknown preset {value!r}; choose {' or '.join(PRESET_NAMES)} (or leave it empty)")
    return text


def apply_preset(preset: Any, explicit: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings for `preset` with `explicit` ones on top (None values in `explicit` are unset).

    Returns only the settings the preset or the caller gave, plus "preset" (the name, or None).
    """
    name = parse_preset(preset)
    settings: dict[str, Any] = dict(PRESETS[name]) if name else {}
    settings.update({key: value for key, value in (explicit or {}).items() if value is not None})
    settings["preset"] = name
    return settings
