"""Portrait loading: any common image file -> RGB uint8 array, safely.

Pillow does the decoding (JPEG, PNG, WebP, GIF, TIFF, BMP, and AVIF: its wheels bundle libavif);
HEIC/HEIF, the iPhone's photo format, comes from the pi-heif plugin (libheif, decode-only),
registered here on first use. This module adds what a batch tool needs on top of it: EXIF orientation
applied (libheif applies HEIF's own rotation and mirror itself and resets the EXIF tag, so a
phone photo is turned upright exactly once), every mode (grayscale, palette, CMYK, alpha,
16-bit) turned into plain RGB, animations refused, and a pixel-count limit checked *before*
decoding so a tiny file that claims huge dimensions (a decompression bomb) costs nothing.

Animated images (GIF, WebP, APNG, AVIF sequences) are refused with their own reason rather
than silently reduced to their first frame: the first frame of an animation is often a blank
or a fade-in, and a presenter should be chosen from a still photo on purpose.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sonic_model.errors import ImageError

READABLE_FORMATS = "JPEG, PNG, WebP, HEIC/HEIF or AVIF"

# 40 megapixels covers any camera portrait (a 50 MP phone shot is ~8160x6120 = 50 MP, but
# portraits for this tool are far smaller); raise it with `max_pixels` if you must.
DEFAULT_MAX_PIXELS = 40_000_000
# Below this a face cannot be found or rendered meaningfully.
MIN_SIDE = 64


def load_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file (path or bytes) to an RGB uint8 array of shape [H, W, 3].

    Raises `ImageError` with a specific reason for empty, truncated, non-image, oversized
    (more than `max_pixels` pixels) or tiny (a side under 64 px) inputs.
    """
    name = "image bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise ImageError(f"portrait not found: {name}") from None
        except OSError as exc:
            raise ImageError(f"portrait cannot be read: {name} ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"portrait is an empty file (0 bytes): {name}")

    _register_heif()
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns/raises at a different limit; ours is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                image = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except UnidentifiedImageError:
        raise ImageError(f"portrait is not a readable image ({READABLE_FORMATS} expected): {name}") from None
    except Exception as exc:  # Pillow raises many types for corrupt headers
        raise ImageError(f"portrait header is corrupt: {name} ({exc})") from None

    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"portrait is {width}x{height} = {width * height / 1e6:.1f} MP, over the limit of "
            f"{max_pixels / 1e6:.1f} MP; downscale it (or raise max_pixels): {name}"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"portrait is {width}x{height}, too small (each side must be >= {MIN_SIDE} px): {name}")
    # HEIF files hold several images (thumbnails, bursts) of which Pillow shows the primary one;
    # only a real animation is refused.
    if getattr(image, "is_animated", False) and image.format not in ("HEIF", "HEIC"):
        frames = getattr(image, "n_frames", 0)
        raise ImageError(
            f"portrait is an animated {_format_name(image)} ({frames} frames); a still photo is needed: "
            f"export one frame as JPEG or PNG: {name}"
        )

    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"portrait is truncated or corrupt: {name} ({exc})") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparent areas become white (a neutral studio background)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale (a 16-bit PNG): 0-65535 maps to 0-255 whatever the picture's own range,
        # so a dark photo stays dark (Pillow's convert would clip everything above 255 to white).
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(values * (255.0 / 65535.0)), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "I":
        # 32-bit integer grayscale (TIFF, PGM): the bit depth is not known, so scale by the range
        # the values use (8 or 16 bit) instead of clipping to 255.
        values = np.asarray(image, dtype=np.float64)
        peak = values.max() if values.size else 0
        scale = 255.0 / (65535.0 if peak > 255 else 255.0)
        image = Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    if image.mode == "CMYK":
        # Pillow's CMYK->RGB honours Adobe's inverted JPEG CMYK when decoding, so a plain convert is right.
        return image.convert("RGB")
    return image.convert("RGB")


def _format_name(image: Image.Image) -> str:
    return {"PNG": "PNG (APNG)", "WEBP": "WebP"}.get(image.format or "", image.format or "image")


_HEIF_REGISTERED = False


def _register_heif() -> None:
    """Let Pillow open HEIC/HEIF (once per process).

    pi-heif (our dependency) is the decode-only, LGPL-3.0 build of pillow-heif, the maintained
    libheif binding; pillow-heif itself (same API, GPL-2.0 wheels because they bundle the x265
    encoder) is used where only it is installed.
    """
    global _HEIF_REGISTERED
    if _HEIF_REGISTERED:
        return
    try:
        from pi_heif import register_heif_opener
    except ImportError:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:
            _HEIF_REGISTERED = True  # HEIC then stays "not a readable image"
            return
    register_heif_opener()
    _HEIF_REGISTERED = True
