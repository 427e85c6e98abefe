"""A photo of two real people, for tests of which face is animated.

The astronaut portrait (512 x 512, left) beside Grace Hopper's scaled to 0.6 (right, bottom) on
white: 819 x 600. The detector finds both; Hopper's face is the larger (area ~16000 px against
~12000), so a generator left to itself animates her, and the astronaut's is the "other" face.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from sonic_model.face import FaceBox, detect_faces
from sonic_model.image import load_image

FIXTURES = Path(__file__).parent / "fixtures"
HOPPER_SCALE = 0.6


@lru_cache(maxsize=1)
def two_face_photo() -> tuple[np.ndarray, FaceBox, FaceBox]:
    """(photo, largest face = Hopper's, other face = the astronaut's), boxes as detected."""
    astronaut = load_image(FIXTURES / "portrait_astronaut.jpg")
    hopper = load_image(FIXTURES / "portrait_hopper.jpg")
    small = Image.fromarray(hopper).resize((round(512 * HOPPER_SCALE), round(600 * HOPPER_SCALE)), Image.LANCZOS)
    photo = np.full((600, 512 + small.width, 3), 255, np.uint8)
    photo[:512, :512] = astronaut
    photo[600 - small.height :, 512:] = np.asarray(small)
    faces = detect_faces(photo)
    assert len(faces) == 2, faces
    largest, other = faces
    assert largest.x > 512 > other.x + other.w, (largest, other)  # Hopper right, the astronaut left
    return photo, largest, other
