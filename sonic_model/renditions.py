"""Renditions: the sizes platforms take, framed by one rule and filled without stretching.

A rendition is another picture of the same generation: the master's generated frames are
composited (`sonic_model.composite`) into a still canvas made from the photo, so one
generation serves every rendition. The names:

    master     what the generator makes (the face crop, or the photo with paste-back); always made
    vertical   1080x1920 (9:16: TikTok, Douyin, Kuaishou, Reels, Shorts)
    square     1080x1080 (1:1: feeds)
    landscape  1920x1080 (16:9: course players)

Framing rule (every rendition but master): the photo is scaled uniformly so the face height
(forehead to chin on the face mesh) is `face_height` x the frame height, and placed so the
midpoint between the eyes sits at `eye_line` x the frame height from the top, centred
left-right. Where the scaled photo covers the frame it is used as it is; where it does not,
the canvas continues it as a mirror image that blurs out with the distance from the photo's
edge (`edge_fill`): never stretched, never black bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sonic_model import face as mesh
from sonic_model.composite import Placement, SoftCompositor, face_height, smoothstep
from sonic_model.crop import expand_square_crop
from sonic_model.errors import ParameterError

MASTER = "master"


@dataclass(frozen=True)
class RenditionSpec:
    """One delivery size, its framing and its encoding (H.264 High, yuv420p, 25 fps, AAC 48 kHz stereo)."""

    name: str
    width: int
    height: int
    eye_line: float  # eyes' midpoint, fraction of the frame height from the top
    face_height: float  # forehead-to-chin height, fraction of the frame height
    max_bitrate: str  # the cap (ffmpeg notation): no second of video above what the platforms stream
    # A constant quantiser: a talking head over a still canvas comes to ~2 Mb/s at QP 18 (PSNR-Y
    # ~49 dB against the frames fed), and the still surroundings are coded once and skipped after.
    qp: int = 18
    # A stream with any second over `max_bitrate` is encoded again at this constant quality under
    # a VBV cap that keeps every second within `max_bitrate` (sonic_model.encode.VideoWriter).
    crf: int = 20
    audio_bitrate: str = "192k"


RENDITIONS: dict[str, RenditionSpec] = {
    # Shorts: head and shoulders, the eyes a third of the way down, room below for captions.
    "vertical": RenditionSpec("vertical", 1080, 1920, eye_line=0.34, face_height=0.20, max_bitrate="8M"),
    # Feeds: a closer head and shoulders, eyes at 40 %.
    "square": RenditionSpec("square", 1080, 1080, eye_line=0.40, face_height=0.32, max_bitrate="6M"),
    # Course players: a presenter shot, eyes at 40 %.
    "landscape": RenditionSpec("landscape", 1920, 1080, eye_line=0.40, face_height=0.32, max_bitrate="8M"),
}
RENDITION_NAMES = (MASTER, *RENDITIONS)

# Edge fill: the mirror image blurs over this fraction of the frame's long side away from the
# photo's edge, to a Gaussian blur of sigma `FILL_BLUR_FRACTION` x the long side.
FILL_BAND_FRACTION = 0.03
FILL_BLUR_FRACTION = 0.05


def parse_renditions(value) -> tuple[str, ...]:
    """Rendition names from a list, a tuple or a text like "vertical, square" (case and order free).

    The result always starts with master (every row delivers its master), then the others in
    the order of `RENDITION_NAMES`, each once. Unknown names raise `ParameterError`.
    """
    if value is None:
        return (MASTER,)
    if isinstance(value, str):
        items = [part for chunk in value.split(",") for part in chunk.split()]
    else:
        try:
            items = [str(item) for item in value]
        except TypeError:
            raise ParameterError(f"renditions must be names like 'vertical,square', got {value!r}") from None
    names = {item.strip().lower() for item in items if item is not None and str(item).strip()}
    unknown = sorted(names - set(RENDITION_NAMES))
    if unknown:
        raise ParameterError(
            f"unknown rendition(s) {', '.join(map(repr, unknown))}; choose from {', '.join(RENDITION_NAMES)}"
        )
    return tuple(name for name in RENDITION_NAMES if name == MASTER or name in names)


def eye_centre(landmarks: np.ndarray) -> np.ndarray:
    """Midpoint between the eyes (mean of both eyes' corners), in the landmarks' pixels."""
    xy = np.asarray(landmarks)[:, :2].astype(np.float64)
    corners = list(mesh.RIGHT_EYE_CORNERS) + list(mesh.LEFT_EYE_CORNERS)
    return xy[corners].mean(axis=0)


def framing(landmarks: np.ndarray, spec: RenditionSpec) -> Placement:
    """Where the photo goes in a rendition's frame, by the framing rule (module docstring)."""
    unit = face_height(landmarks)
    if not unit > 0:
        raise ParameterError("the face mesh has no height: cannot frame a rendition")
    scale = spec.face_height * spec.height / unit
    ex, ey = eye_centre(landmarks)
    return Placement(scale=scale, dx=spec.width / 2 - scale * ex, dy=spec.eye_line * spec.height - scale * ey)


def photo_footprint(photo_wh: tuple[int, int], placement: Placement) -> tuple[float, float, float, float]:
    """The scaled photo's rectangle in the frame (continuous pixels)."""
    return placement.box((0.0, 0.0, float(photo_wh[0]), float(photo_wh[1])))


def still_canvas(photo_rgb: np.ndarray, placement: Placement, size: tuple[int, int]) -> np.ndarray:
    """The rendition's still picture: the scaled photo, continued by `edge_fill` where it does not reach."""
    width, height = size
    photo = np.ascontiguousarray(photo_rgb)
    interpolation = cv2.INTER_AREA if placement.scale < 1 else cv2.INTER_CUBIC
    if placement.scale < 0.66:
        # Area-average first (a bilinear/bicubic warp would alias when shrinking a lot).
        small_w = max(1, round(photo.shape[1] * placement.scale))
        small_h = max(1, round(photo.shape[0] * placement.scale))
        photo_small = cv2.resize(photo, (small_w, small_h), interpolation=cv2.INTER_AREA)
        sx, sy = photo.shape[1] / small_w, photo.shape[0] / small_h
        # the same placement expressed for the shrunk photo
        matrix = np.array(
            [
                [placement.scale * sx, 0.0, placement.dx + 0.5 * placement.scale * sx - 0.5],
                [0.0, placement.scale * sy, placement.dy + 0.5 * placement.scale * sy - 0.5],
            ]
        )
        photo, interpolation = photo_small, cv2.INTER_LINEAR
    else:
        matrix = placement.matrix()
    # BORDER_REFLECT_101 mirrors the photo at its edges (repeatedly, however far the frame reaches).
    mirrored = cv2.warpAffine(photo, matrix, (width, height), flags=interpolation, borderMode=cv2.BORDER_REFLECT_101)
    return edge_fill(mirrored, photo_footprint((photo_rgb.shape[1], photo_rgb.shape[0]), placement))


def edge_fill(mirrored: np.ndarray, footprint: tuple[float, float, float, float]) -> np.ndarray:
    """Blur the mirror image outside `footprint` more and more with the distance from it.

    Inside the footprint the picture is returned unchanged. The mirror image keeps the photo's
    colours and lines continuous across its edge; the blur (reached over `FILL_BAND_FRACTION`
    of the long side) keeps mirrored details, a second shoulder or ear, from reading as real.
    """
    height, width = mirrored.shape[:2]
    fx0, fy0, fx1, fy1 = footprint
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    out_x = np.maximum(np.maximum(fx0 - xs, xs - fx1), 0.0)
    out_y = np.maximum(np.maximum(fy0 - ys, ys - fy1), 0.0)
    if not out_x.any() and not out_y.any():
        return mirrored
    long_side = max(width, height)
    # A large Gaussian, computed at a quarter size (it removes everything finer anyway).
    sigma = FILL_BLUR_FRACTION * long_side
    small = cv2.resize(mirrored, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 4), (width, height), interpolation=cv2.INTER_LINEAR)
    result = mirrored.copy()
    # Only outside the footprint (a rectangle of pixels: the strips above, below, left and right
    # of it) is anything blended; the canvas is built per rendition before the first frame.
    inside_x, inside_y = np.flatnonzero(out_x == 0), np.flatnonzero(out_y == 0)
    cx0, cx1 = (int(inside_x[0]), int(inside_x[-1]) + 1) if inside_x.size else (0, 0)
    cy0, cy1 = (int(inside_y[0]), int(inside_y[-1]) + 1) if inside_y.size else (0, 0)
    strips = [(slice(0, cy0), slice(0, width)), (slice(cy1, height), slice(0, width))]
    strips += [(slice(cy0, cy1), slice(0, cx0)), (slice(cy0, cy1), slice(cx1, width))]
    if not inside_x.size or not inside_y.size:
        strips = [(slice(0, height), slice(0, width))]
    for rows, cols in strips:
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        distance = np.sqrt(out_y[rows, None] ** 2 + out_x[None, cols] ** 2)
        weight3 = smoothstep(0.0, FILL_BAND_FRACTION * long_side, distance)[..., None]
        filled = (
            mirrored[rows, cols].astype(np.float32) * (1 - weight3) + blurred[rows, cols].astype(np.float32) * weight3
        )
        result[rows, cols] = np.clip(filled + 0.5, 0, 255).astype(np.uint8)
    return result


def generated_box(
    photo_wh: tuple[int, int], face_box_xywh: tuple[float, float, float, float], expand_ratio: float, paste_back: bool
) -> tuple[int, int, int, int]:
    """The photo rectangle a generator's frames show: the Sonic crop, or the whole photo with paste-back."""
    if paste_back:
        return (0, 0, int(photo_wh[0]), int(photo_wh[1]))
    return expand_square_crop(face_box_xywh, photo_wh, expand_ratio)


class RenditionCompositor:
    """Makes one rendition's frames from the master's generated frames (see the module docstring).

    `photo_rgb`: the portrait; `landmarks`: its face mesh (photo pixels); `source_box`: the
    photo rectangle the generated frames show (`generated_box`). `frame(generated)` returns
    the rendition's picture (reused by the next call).
    """

    def __init__(
        self,
        spec: RenditionSpec,
        photo_rgb: np.ndarray,
        landmarks: np.ndarray,
        source_box: tuple[float, float, float, float],
    ) -> None:
        self.spec = spec
        self.placement = framing(landmarks, spec)
        self.still = still_canvas(photo_rgb, self.placement, (spec.width, spec.height))
        # Paste-back frames are the whole photo, animated in place: no mask needed (or wanted:
        # a generator may move more than the head and neck, e.g. the preview's shoulders).
        whole_photo = tuple(source_box) == (0, 0, photo_rgb.shape[1], photo_rgb.shape[0])
        self.compositor = SoftCompositor(self.still, landmarks, source_box, self.placement, whole_source=whole_photo)

    @property
    def size(self) -> tuple[int, int]:
        return self.spec.width, self.spec.height

    def frame(self, generated: np.ndarray) -> np.ndarray:
        """The rendition's RGB picture for one generated frame (reused by the next call)."""
        return self.compositor.composite(generated)

    def frame_i420(self, generated: np.ndarray, generated_i420: np.ndarray | None = None) -> np.ndarray:
        """The same as I420 [H * 3 / 2, W], what the rendition's encoder is fed (reused by the next call).

        `generated_i420`: the generated frame as I420 (`composite.frame_to_i420`), converted
        once for every rendition; then the rendition is composited plane by plane.
        """
        return self.compositor.composite_i420(generated, generated_i420)


def rendition_still(spec: RenditionSpec, photo_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A rendition's still picture for this portrait (what QA compares the video with for seams)."""
    return still_canvas(photo_rgb, framing(landmarks, spec), (spec.width, spec.height))
