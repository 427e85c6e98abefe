"""The Sonic preprocessing rules for a portrait: face crop, model resolution, face mask.

These follow the public Sonic implementation exactly (the parity fixtures check it), so both
generators see the same framing:

1. expand the face box by `expand_ratio` x its width on the left and right and x its height on
   the top and bottom, clamped to the image;
2. take a square whose side is the expanded box's smaller side, centred on the expanded box
   but moved along the longer axis towards the face centre by at most |h - w| / 2; corners are
   rounded half-to-even and ends are exclusive;
3. scale so the short side becomes `min_resolution`, each side rounded half-to-even to a
   multiple of 64 (LANCZOS, only when the size changes);
4. the face mask is the face box scaled by 1.1 around its centre, 0/255, resized the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sonic_model.errors import ParameterError

FACE_MASK_AREA_SCALE = 1.1
MIN_RESOLUTION_RANGE = (64, 1024)
EXPAND_RATIO_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class PreparedPortrait:
    """A portrait ready for a generator."""

    image: np.ndarray  # [H, W, 3] uint8 at model resolution
    face_mask: np.ndarray  # [H, W] uint8, 0..255 (soft edges after resizing)
    face_box_xyxy: tuple[float, float, float, float]  # face box on `image` (model pixels)
    crop_box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the crop in the original photo
    scale: float  # model pixels per cropped-photo pixel


def expand_square_crop(
    face_box_xywh: tuple[float, float, float, float], image_wh: tuple[int, int], expand_ratio: float
) -> tuple[int, int, int, int]:
    """Square crop (x0, y0, x1, y1), end exclusive, around a face box by the Sonic rule."""
    x, y, w, h = (float(v) for v in face_box_xywh)
    width, height = image_wh
    ex0 = max(0.0, x - expand_ratio * w)
    ey0 = max(0.0, y - expand_ratio * h)
    ex1 = min(float(width), x + w + expand_ratio * w)
    ey1 = min(float(height), y + h + expand_ratio * h)
    ew, eh = ex1 - ex0, ey1 - ey0
    side = min(ew, eh)
    cx, cy = (ex0 + ex1) / 2, (ey0 + ey1) / 2
    face_cx, face_cy = x + w / 2, y + h / 2
    max_shift = abs(eh - ew) / 2
    if eh > ew:
        cy += float(np.clip(face_cy - cy, -max_shift, max_shift))
    elif ew > eh:
        cx += float(np.clip(face_cx - cx, -max_shift, max_shift))
    half = side / 2
    # Python's round() is round-half-to-even, which is what the reference uses.
    return (round(cx - half), round(cy - half), round(cx + half), round(cy + half))


def model_resolution(width: int, height: int, min_resolution: int) -> tuple[int, int]:
    """(W, H) with the short side scaled to `min_resolution`, each a multiple of 64 (half to even)."""
    check_range("min_resolution", min_resolution, MIN_RESOLUTION_RANGE)
    scale = min_resolution / min(width, height)
    new_w = 64 * round(width * scale / 64)
    new_h = 64 * round(height * scale / 64)
    return max(64, new_w), max(64, new_h)


def face_mask_rect(
    face_box_xyxy: tuple[float, float, float, float],
    image_wh: tuple[int, int],
    area_scale: float = FACE_MASK_AREA_SCALE,
) -> tuple[int, int, int, int]:
    """The mask rectangle (x0, y0, x1, y1), end exclusive: the face box scaled around its centre."""
    x1, y1, x2, y2 = face_box_xyxy
    width, height = image_wh
    cx, cy = math.floor((x1 + x2) / 2), math.floor((y1 + y2) / 2)
    half_w = math.floor(area_scale * (x2 - x1) / 2)
    half_h = math.floor(area_scale * (y2 - y1) / 2)
    return (
        int(max(0, cx - half_w)),
        int(max(0, cy - half_h)),
        int(min(width, cx + half_w)),
        int(min(height, cy + half_h)),
    )


def prepare_portrait(
    rgb: np.ndarray,
    face_box_xywh: tuple[float, float, float, float],
    *,
    expand_ratio: float = 0.5,
    min_resolution: int = 512,
    crop: bool = True,
) -> PreparedPortrait:
    """Crop (optional), resize to model resolution and build the face mask, by the Sonic rules."""
    check_range("expand_ratio", expand_ratio, EXPAND_RATIO_RANGE)
    height, width = rgb.shape[:2]
    x, y, w, h = (float(v) for v in face_box_xywh)
    if crop:
        crop_box = expand_square_crop((x, y, w, h), (width, height), expand_ratio)
        x0, y0, x1, y1 = crop_box
        used = rgb[y0:y1, x0:x1]
        box_on_used = (x - x0, y - y0, x - x0 + w, y - y0 + h)
    else:
        crop_box = (0, 0, width, height)
        used = rgb
        box_on_used = (x, y, x + w, y + h)
    used_h, used_w = used.shape[:2]
    mask_rect = face_mask_rect(box_on_used, (used_w, used_h))
    mask = np.zeros((used_h, used_w), np.uint8)
    mx0, my0, mx1, my1 = mask_rect
    mask[my0:my1, mx0:mx1] = 255

    model_w, model_h = model_resolution(used_w, used_h, min_resolution)
    image, mask = used, mask
    if (model_w, model_h) != (used_w, used_h):
        image = np.asarray(Image.fromarray(np.ascontiguousarray(used)).resize((model_w, model_h), Image.LANCZOS))
        mask = np.asarray(Image.fromarray(mask).resize((model_w, model_h), Image.LANCZOS))
    sx, sy = model_w / used_w, model_h / used_h
    bx0, by0, bx1, by1 = box_on_used
    return PreparedPortrait(
        image=np.ascontiguousarray(image),
        face_mask=np.ascontiguousarray(mask),
        face_box_xyxy=(bx0 * sx, by0 * sy, bx1 * sx, by1 * sy),
        crop_box=crop_box,
        scale=(sx + sy) / 2,
    )


def checked_face_box(face_box, image_wh: tuple[int, int]) -> tuple[float, float, float, float]:
    """A given face box (x, y, width, height in pixels) as floats, or `ParameterError` when it is
    malformed or not on the image (1 px of slack for rounding)."""
    width, height = image_wh
    try:
        x, y, w, h = (float(v) for v in face_box)
    except (TypeError, ValueError):
        raise ParameterError(
            f"face_box must be four numbers (x, y, width, height) in pixels, got {face_box!r}"
        ) from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ParameterError(
            f"face_box {face_box!r} must be finite with a positive width and height (x, y, width, height)"
        )
    if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
        raise ParameterError(
            f"face_box (x={x:g}, y={y:g}, w={w:g}, h={h:g}) is not inside the {width}x{height} portrait; "
            "pass the box measured on this same image (after EXIF orientation)"
        )
    return (x, y, w, h)


def check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    """Raise `ParameterError` naming the parameter and its allowed range."""
    low, high = bounds
    if value is None or not (low <= value <= high):
        raise ParameterError(f"{name}={value!r} is out of range; allowed: {low:g} to {high:g}")
