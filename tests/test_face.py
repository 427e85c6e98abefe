"""Face detection and face mesh on real public-domain photos (no mocks)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sonic_model.errors import NoFaceError
from sonic_model.face import (
    FaceBox,
    LandmarkTracker,
    detect_faces,
    face_landmarks,
    largest_face,
    mouth_opening,
    sort_largest_first,
)
from sonic_model.image import load_image

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load_image(FIXTURES / "portrait_astronaut.jpg")


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    return load_image(FIXTURES / "portrait_hopper.jpg")


def _assert_box_near(box: FaceBox, centre: tuple[float, float], side: float) -> None:
    cx, cy = box.center
    assert abs(cx - centre[0]) < 0.2 * side and abs(cy - centre[1]) < 0.2 * side, box
    assert 0.7 * side < box.w < 1.4 * side and 0.7 * side < box.h < 1.4 * side, box


def test_astronaut_has_one_face_around_her_head(astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    # Eileen Collins' face spans roughly x 175..276, y 75..176 in the 512x512 photo.
    _assert_box_near(faces[0], (225, 125), 100)
    assert faces[0].score > 0.8


def test_hopper_has_one_face_around_her_head(hopper):
    faces = detect_faces(hopper)
    assert len(faces) == 1
    # Grace Hopper's face (below the cap, above the collar) in the 512x600 photo.
    _assert_box_near(faces[0], (265, 238), 205)


def test_photo_without_a_face_raises_no_face_error():
    import skimage.data

    coffee = skimage.data.coffee()
    assert detect_faces(coffee) == []
    with pytest.raises(NoFaceError, match="no face found in the 600x400 portrait"):
        largest_face(coffee)


def test_cat_face_is_not_a_usable_face():
    import skimage.data

    # BlazeFace alone scores the cat at ~0.6; the face mesh must veto it.
    assert detect_faces(skimage.data.chelsea()) == []


@pytest.mark.parametrize("big_on_left", [True, False])
def test_two_faces_the_larger_is_the_subject(astronaut, hopper, big_on_left):
    canvas = np.full((700, 1100, 3), 128, np.uint8)
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    if big_on_left:
        canvas[50:650, 0:512] = hopper
        canvas[100:356, 800:1056] = small
        big_centre = (265, 50 + 238)
    else:
        canvas[50:650, 588:1100] = hopper
        canvas[300:556, 40:296] = small
        big_centre = (588 + 265, 50 + 238)
    faces = detect_faces(canvas)
    assert len(faces) == 2
    assert faces[0].area > 2 * faces[1].area
    _assert_box_near(largest_face(canvas), big_centre, 205)


def test_small_face_in_a_big_photo_is_found(hopper):
    # A ~100 px face in a 4000x3000 photo is ~2.5% of its width: only the tiled pass sees it.
    photo = np.full((3000, 4000, 3), 90, np.uint8)
    photo[2000:2300, 3000:3256] = cv2.resize(hopper, (256, 300), interpolation=cv2.INTER_AREA)
    face = largest_face(photo)
    _assert_box_near(face, (3000 + 132, 2000 + 119), 103)


def test_ties_are_broken_by_score_then_position():
    a = FaceBox(10, 10, 50, 50, 0.9)
    b = FaceBox(200, 10, 50, 50, 0.95)
    c = FaceBox(100, 5, 50, 50, 0.9)
    bigger = FaceBox(300, 300, 60, 60, 0.6)
    assert sort_largest_first([a, b, c, bigger], 1000 * 1000) == [bigger, b, c, a]


def test_landmarks_lie_on_the_face_and_mouth_is_closed(hopper):
    box = largest_face(hopper)
    landmarks = face_landmarks(hopper, box)
    assert landmarks.shape == (468, 3) and landmarks.dtype == np.float32
    x0, y0, x1, y1 = box.xyxy
    inside = (landmarks[:, 0] > x0 - 0.2 * box.w) & (landmarks[:, 0] < x1 + 0.2 * box.w)
    inside &= (landmarks[:, 1] > y0 - 0.3 * box.h) & (landmarks[:, 1] < y1 + 0.2 * box.h)
    assert inside.all()
    # nose tip (1) between the eyes' outer corners (33, 263) and above the chin (152)
    assert landmarks[33, 0] < landmarks[1, 0] < landmarks[263, 0]
    assert landmarks[1, 1] < landmarks[152, 1]
    assert mouth_opening(landmarks) < 0.03


def test_mouth_opening_grows_when_the_jaw_is_pulled_down(hopper):
    landmarks = face_landmarks(hopper)
    opened = landmarks.copy()
    lower = [87, 14, 317]
    opened[lower, 1] += 20
    assert mouth_opening(opened) > mouth_opening(landmarks) + 0.1


def test_tracker_follows_a_moving_face(hopper):
    tracker = LandmarkTracker()
    noses = []
    for shift in (0, 4, 8):
        frame = np.roll(hopper, shift, axis=1)
        landmarks = tracker(frame)
        assert landmarks is not None
        noses.append(landmarks[1, 0])
    assert np.allclose(np.diff(noses), 4, atol=1.5)
    assert tracker(np.full_like(hopper, 40)) is None


def test_tilted_face_is_found_and_its_mesh_follows_the_tilt(hopper):
    centre = (256.0, 300.0)
    tilted = cv2.warpAffine(hopper, cv2.getRotationMatrix2D(centre, 25, 1.0), (512, 600), borderMode=cv2.BORDER_REFLECT)
    landmarks = face_landmarks(tilted)
    right_eye, left_eye = landmarks[33, :2], landmarks[263, :2]
    angle = np.degrees(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
    upright = face_landmarks(hopper)
    upright_angle = np.degrees(np.arctan2(*(upright[263, 1::-1] - upright[33, 1::-1])))
    # cv2 rotates counter-clockwise on screen for a positive angle: the eye line tilts by -25
    assert abs((angle - upright_angle) + 25) < 4
