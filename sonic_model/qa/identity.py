"""Identity: dlib's 128-d face descriptor, of the portrait (cached) and of video frames."""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from sonic_model.errors import NoFaceError, SonicCatalogError

_DLIB_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _dlib_models():
    """dlib's 5-point shape predictor and ResNet face descriptor from face_recognition_models.

    The files are located with `find_spec`, never by importing the package (its import needs
    pkg_resources and prints a deprecation warning).
    """
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SonicCatalogError(
            "face_recognition_models is not installed: `pip install face_recognition_models==0.3.0`"
        )
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    return (
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def face_descriptor(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 128-d identity descriptor of the face whose mesh landmarks are given.

    The dlib box is the square around the mesh's eyes-to-chin region, about the box dlib's own
    detector draws; the same rule is used for portrait and frames so distances compare like
    with like.
    """

    rect = _dlib_rect(landmarks, rgb.shape[1], rgb.shape[0])
    predictor, encoder = _dlib_models()
    with _DLIB_LOCK:  # dlib objects are not documented as thread-safe
        shape = predictor(np.ascontiguousarray(rgb), rect)
        descriptor = encoder.compute_face_descriptor(np.ascontiguousarray(rgb), shape)
    return np.asarray(descriptor, np.float64)


def _dlib_rect(landmarks: np.ndarray, width: int, height: int):
    import dlib

    from sonic_model.face import CHIN, LEFT_BROW, RIGHT_BROW

    xy = landmarks[:, :2]
    x0, x1 = float(xy[:, 0].min()), float(xy[:, 0].max())
    top = float(xy[list(RIGHT_BROW) + list(LEFT_BROW), 1].min())
    bottom = float(xy[CHIN, 1])
    side = max(x1 - x0, bottom - top)
    cx, cy = (x0 + x1) / 2, (top + bottom) / 2
    left, right = int(round(cx - side / 2)), int(round(cx + side / 2))
    upper, lower = int(round(cy - side / 2)), int(round(cy + side / 2))
    return dlib.rectangle(max(0, left), max(0, upper), min(width - 1, right), min(height - 1, lower))


def portrait_face(portrait_rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The portrait's identity descriptor and its mouth opening at rest (largest face).

    Cached by the image's content: a catalog renders many rows per presenter, and the dlib
    descriptor plus the face search cost ~0.2 s per portrait.
    """
    portrait_rgb = np.ascontiguousarray(portrait_rgb)
    key = (portrait_rgb.shape, hashlib.blake2b(portrait_rgb.data, digest_size=16).hexdigest())
    with _PORTRAIT_CACHE_LOCK:
        cached = _PORTRAIT_CACHE.get(key)
    if cached is not None:
        return cached[0].copy(), cached[1]
    from sonic_model.face import face_landmarks, mouth_opening

    landmarks = face_landmarks(portrait_rgb)
    reference = (face_descriptor(portrait_rgb, landmarks), mouth_opening(landmarks))
    with _PORTRAIT_CACHE_LOCK:
        _PORTRAIT_CACHE[key] = reference
        while len(_PORTRAIT_CACHE) > _PORTRAIT_CACHE_SIZE:
            _PORTRAIT_CACHE.pop(next(iter(_PORTRAIT_CACHE)))
    return reference[0].copy(), reference[1]


_PORTRAIT_CACHE: dict[tuple, tuple[np.ndarray, float]] = {}
_PORTRAIT_CACHE_LOCK = threading.Lock()
_PORTRAIT_CACHE_SIZE = 64


def clear_portrait_cache() -> None:
    """Forget cached portrait references (benchmarks use it to time the uncached case)."""
    with _PORTRAIT_CACHE_LOCK:
        _PORTRAIT_CACHE.clear()


def identity_distance_in_frame(rgb: np.ndarray, landmarks: np.ndarray | None, reference: np.ndarray) -> float | None:
    if landmarks is None:
        from sonic_model.face import face_landmarks

        try:
            landmarks = face_landmarks(rgb)
        except NoFaceError:
            return None
    return float(np.linalg.norm(face_descriptor(rgb, landmarks) - reference))
