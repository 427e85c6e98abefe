"""Soft compositing (sonic_model.composite), rendition framing and canvases (sonic_model.renditions),
and the one-pass multi-output writer (sonic_model.rendition_writer), on a real landscape photo
with the face right of centre and real preview frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sonic_model.composite import FEATHER_FRACTION, Placement, SoftCompositor, face_height, soft_mask
from sonic_model.encode import VideoWriter
from sonic_model.errors import ParameterError
from sonic_model.face import detect_faces, face_landmarks, largest_face
from sonic_model.image import load_image
from sonic_model.rendition_writer import RenditionWriters, rendition_path
from sonic_model.renditions import (
    RENDITIONS,
    RenditionCompositor,
    eye_centre,
    framing,
    generated_box,
    parse_renditions,
    photo_footprint,
    still_canvas,
)
from sonic_model.video_reader import iter_video_frames, probe_video

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(FIXTURES / "landscape_offcentre.jpg")


@pytest.fixture(scope="module")
def face(photo):
    box = largest_face(photo)
    return box, face_landmarks(photo, box)


@pytest.fixture(scope="module")
def crop_frames(photo, face):
    """Eight generated crop frames as a diffusion model makes them: the whole crop moved by a
    few pixels and a little brighter than the photo (preview frames of the Sonic crop)."""
    from sonic_model.audio import load_audio
    from sonic_model.generators import RenderParams
    from sonic_model.preview import PreviewGenerator

    audio = load_audio(FIXTURES / "speech_en_16k.wav")
    frames = []
    for index, frame in enumerate(PreviewGenerator().frames(photo, audio, RenderParams())):
        if index % 6 == 0:
            shift = np.float32([[1, 0, 3 * np.sin(index / 5)], [0, 1, 2 * np.cos(index / 7)]])
            moved = cv2.warpAffine(frame, shift, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            frames.append(np.clip(moved.astype(np.int16) + 4, 0, 255).astype(np.uint8))
        if len(frames) == 8:
            break
    return frames


def test_the_fixture_face_is_off_centre(photo, face):
    box, _ = face
    assert photo.shape[1] == 2 * photo.shape[0]
    assert box.center[0] > 0.65 * photo.shape[1]
    assert len(detect_faces(photo)) == 1


# --- the soft mask ---------------------------------------------------------------------------


def test_soft_mask_is_one_on_the_face_and_zero_at_the_generated_edges(photo, face):
    box, landmarks = face
    source = generated_box(photo.shape[1::-1], box.xywh, 0.5, False)
    weight = soft_mask(landmarks[:, :2], source, source)
    x0, y0 = source[:2]
    nose = landmarks[1, :2] - [x0, y0]
    assert weight[int(nose[1]), int(nose[0])] == pytest.approx(1.0)
    # Every edge of the generated rectangle is exactly still (weight 0): no step at the crop.
    assert weight[0].max() == 0 and weight[-1].max() == 0 and weight[:, 0].max() == 0 and weight[:, -1].max() == 0
    # It follows the head: the top corners (background beside the head) are still too.
    assert weight[: weight.shape[0] // 8, : weight.shape[1] // 8].max() == 0


def test_soft_mask_band_scales_with_the_face(photo, face):
    """The same face at twice the size has a transition band twice as wide."""
    box, landmarks = face

    def band_width(scale: float) -> int:
        points = landmarks[:, :2] * scale
        source = tuple(v * scale for v in generated_box(photo.shape[1::-1], box.xywh, 0.5, False))
        roi = tuple(int(round(v)) for v in source)
        weight = soft_mask(points, roi, source)
        column = weight[:, int(points[1, 0]) - roi[0]]  # straight down through the nose tip
        return int(((column > 0.02) & (column < 0.98)).sum())

    small, large = band_width(1.0), band_width(2.0)
    assert large == pytest.approx(2 * small, rel=0.25)
    assert small >= 0.5 * FEATHER_FRACTION * face_height(landmarks)


def test_compositor_keeps_everything_outside_the_mask_exactly_still(photo, face, crop_frames):
    box, landmarks = face
    source = generated_box(photo.shape[1::-1], box.xywh, 0.5, False)
    compositor = SoftCompositor(photo, landmarks, source, Placement())
    x0, y0, x1, y1 = compositor.roi
    inside_source = np.zeros(photo.shape[:2], bool)
    inside_source[source[1] : source[3], source[0] : source[2]] = True
    assert inside_source[y0:y1, x0:x1].all()  # the changing area lies inside the generated crop
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    previous = None
    for frame in crop_frames:
        out = compositor.composite(frame)
        assert np.array_equal(out[outside], photo[outside])
        if previous is not None:
            assert not np.array_equal(out, previous)  # the face does move
        previous = out.copy()


# --- renditions: names, framing, canvas ------------------------------------------------------


def test_parse_renditions_always_includes_master_in_a_fixed_order():
    assert parse_renditions(None) == ("master",)
    assert parse_renditions("square, vertical") == ("master", "vertical", "square")
    assert parse_renditions(["LANDSCAPE", "master", "landscape"]) == ("master", "landscape")
    with pytest.raises(ParameterError, match="unknown rendition.*'portrait'.*choose from master, vertical"):
        parse_renditions("portrait")


@pytest.mark.parametrize("name", ["vertical", "square", "landscape"])
def test_framing_puts_the_eyes_and_face_where_the_rule_says(face, name):
    _, landmarks = face
    spec = RENDITIONS[name]
    placement = framing(landmarks, spec)
    placed = placement.points(landmarks[:, :2])
    eyes = eye_centre(placed)
    assert eyes[0] == pytest.approx(spec.width / 2, abs=0.5)
    assert eyes[1] == pytest.approx(spec.eye_line * spec.height, abs=0.5)
    assert face_height(placed) == pytest.approx(spec.face_height * spec.height, rel=1e-3)


@pytest.mark.parametrize("name", ["vertical", "square", "landscape"])
def test_canvas_uses_the_photo_where_it_covers_and_blurred_mirror_fill_elsewhere(photo, face, name):
    _, landmarks = face
    spec = RENDITIONS[name]
    placement = framing(landmarks, spec)
    canvas = still_canvas(photo, placement, (spec.width, spec.height))
    assert canvas.shape == (spec.height, spec.width, 3)
    # Inside the photo's footprint: the photo itself (the same picture scaled, not something else).
    fx0, fy0, fx1, fy1 = photo_footprint(photo.shape[1::-1], placement)
    cx0, cy0 = max(0, int(np.ceil(fx0))) + 2, max(0, int(np.ceil(fy0))) + 2
    cx1, cy1 = min(spec.width, int(fx1)) - 2, min(spec.height, int(fy1)) - 2
    direct = cv2.warpAffine(photo, placement.matrix(), (spec.width, spec.height), flags=cv2.INTER_CUBIC)
    assert np.abs(canvas[cy0:cy1, cx0:cx1].astype(int) - direct[cy0:cy1, cx0:cx1]).mean() < 1.0
    # No black bars: no row or column of the frame is dark where the photo is not.
    assert canvas.mean(axis=(1, 2)).min() > 40 and canvas.mean(axis=(0, 2)).min() > 40
    # The fill is smooth (blurred): far from the photo it has much less detail than the photo.
    if fy0 > 60:  # vertical: the photo does not reach the top
        fill = canvas[: int(fy0) - 40].astype(np.float32)
        inside = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
        assert np.abs(np.diff(fill, axis=1)).mean() < 0.5 * np.abs(np.diff(inside, axis=1)).mean()


def test_vertical_rendition_of_the_landscape_photo_keeps_the_face_in_frame(photo, face, crop_frames):
    box, landmarks = face
    source = generated_box(photo.shape[1::-1], box.xywh, 0.5, False)
    vertical = RenditionCompositor(RENDITIONS["vertical"], photo, landmarks, source)
    out = vertical.frame(crop_frames[3])
    assert out.shape == (1920, 1080, 3)
    found = detect_faces(out)
    assert len(found) == 1
    cx, cy = found[0].center
    assert 0.4 * 1080 < cx < 0.6 * 1080 and 0.25 * 1920 < cy < 0.5 * 1920


# --- one pass, several encoders ----------------------------------------------------------------


def test_one_pass_writes_master_and_renditions_with_the_delivery_format(tmp_path, photo, face, crop_frames):
    box, landmarks = face
    source = generated_box(photo.shape[1::-1], box.xywh, 0.5, False)
    master_path = tmp_path / "talk.mp4"
    names = ("vertical", "square")
    compositors = {name: RenditionCompositor(RENDITIONS[name], photo, landmarks, source) for name in names}
    paths = {name: rendition_path(master_path, name) for name in names}
    audio = FIXTURES / "speech_en_16k.wav"
    master = VideoWriter(master_path, width=512, height=512, num_frames=len(crop_frames), audio_path=audio)
    with RenditionWriters(master, compositors, paths, audio_path=audio, generator="test 1") as writers:
        for frame in crop_frames:
            writers.write(frame)
    assert paths["vertical"] == tmp_path / "talk.vertical.mp4"
    for name, size in (("vertical", (1080, 1920)), ("square", (1080, 1080))):
        info = probe_video(paths[name])
        assert (info.width, info.height) == size
        assert info.num_frames == len(crop_frames) and info.fps == 25
        assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
        assert info.audio_codec == "aac" and info.audio_sample_rate == 48000
        assert info.metadata.get("rendition") == name
        import av

        with av.open(str(paths[name])) as container:
            assert container.streams.video[0].codec_context.profile == "High"
            assert container.streams.audio[0].codec_context.channels == 2
    # The master's frames are the generated ones, untouched by the renditions.
    first = next(iter_video_frames(master_path))[1]
    assert np.abs(first.astype(int) - crop_frames[0]).mean() < 3


def test_a_failing_pass_leaves_no_file(tmp_path, photo, face, crop_frames):
    box, landmarks = face
    source = generated_box(photo.shape[1::-1], box.xywh, 0.5, False)
    master_path = tmp_path / "talk.mp4"
    compositors = {"square": RenditionCompositor(RENDITIONS["square"], photo, landmarks, source)}
    paths = {"square": rendition_path(master_path, "square")}
    master = VideoWriter(master_path, width=512, height=512, num_frames=len(crop_frames) + 5, audio_path=None)
    with pytest.raises(Exception, match="frames"):
        with RenditionWriters(master, compositors, paths, audio_path=None, generator="test 1") as writers:
            for frame in crop_frames:  # five frames short
                writers.write(frame)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]


def test_plane_by_plane_i420_matches_the_rgb_composite(photo, face, crop_frames):
    """The fast path (the generated frame converted to I420 once, each plane warped and blended)
    gives the RGB composite's picture: luma within 2 levels, chroma within 6 (interpolated at
    half resolution), and bit for bit the still picture outside the changing box."""
    from sonic_model.composite import frame_to_i420

    box, landmarks = face
    source = generated_box(photo.shape[1::-1], box.xywh, 0.5, False)
    spec = RENDITIONS["vertical"]
    fast = RenditionCompositor(spec, photo, landmarks, source)
    slow = RenditionCompositor(spec, photo, landmarks, source)
    still = cv2.cvtColor(fast.compositor.still, cv2.COLOR_RGB2YUV_I420)
    luma = spec.width * spec.height
    x0, y0, x1, y1 = fast.compositor.roi
    outside = np.ones((spec.height, spec.width), bool)
    outside[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = False  # the box widened to even coordinates
    for frame in crop_frames:
        planes = fast.frame_i420(frame, frame_to_i420(frame)).reshape(-1).astype(int)
        reference = slow.frame_i420(frame).reshape(-1).astype(int)
        assert np.abs(planes[:luma] - reference[:luma]).max() <= 2
        assert np.abs(planes[luma:] - reference[luma:]).max() <= 6
        assert np.array_equal(
            planes[:luma].reshape(spec.height, spec.width)[outside],
            still.reshape(-1)[:luma].reshape(spec.height, spec.width)[outside],
        )


def _bilinear(source: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The exact (float) bilinear warp of a scale-and-shift matrix, edges repeated: the reference."""
    (zoom_x, _, shift_x), (_, zoom_y, shift_y) = matrix
    xs = np.clip((np.arange(size[0]) - shift_x) / zoom_x, 0, source.shape[1] - 1)
    ys = np.clip((np.arange(size[1]) - shift_y) / zoom_y, 0, source.shape[0] - 1)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, source.shape[1] - 1), np.minimum(y0 + 1, source.shape[0] - 1)
    fx, fy = (xs - x0)[None, :], (ys - y0)[:, None]
    s = source.astype(np.float64)
    top = s[y0][:, x0] * (1 - fx) + s[y0][:, x1] * fx
    bottom = s[y1][:, x0] * (1 - fx) + s[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize(
    ("zoom_x", "zoom_y", "shift_x", "shift_y", "resized"),
    [
        (3.5714, 3.5714, -600.3, -17.7, True),  # the vertical rendition's zoom of a 512 px preview frame
        (1.4926, 1.4856, -24.7, -6.6, True),  # starts before the frame's edge: extended by it
        (2.0, 2.0, 3.4, -40.2, False),  # no start lands within 1/64 pixel: the warp itself
        (0.8, 0.8, 2.3, -1.1, False),  # a shrink: the warp itself
    ],
)
def test_scale_into_samples_where_the_warp_does(photo, zoom_x, zoom_y, shift_x, shift_y, resized):
    """On the photo's sharp edges the resize-and-crop path is as close to the exact bilinear warp as
    warpAffine is (both round their results; warpAffine its sample positions to 1/32 pixel, the
    resize path by at most 1/64 pixel); where it cannot make the same map it is warpAffine bit for bit."""
    from sonic_model.composite import _resize_crop, scale_into

    source = np.ascontiguousarray(photo[:, 300:812, 1])  # 512 x 512, the face and the background
    size = (728, 744)
    matrix = np.array([[zoom_x, 0.0, shift_x], [0.0, zoom_y, shift_y]])
    takes_resize = bool(_resize_crop(zoom_x, shift_x, size[0], 512) and _resize_crop(zoom_y, shift_y, size[1], 512))
    assert source.shape == (512, 512)
    assert takes_resize == resized
    warp = cv2.warpAffine(source, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fast = scale_into(source, matrix, size, cv2.INTER_LINEAR)
    assert fast.shape == warp.shape and fast.dtype == np.uint8
    if not resized:
        assert np.array_equal(fast, warp)
        return
    exact = _bilinear(source, matrix, size)
    fast_error, warp_error = np.abs(fast - exact), np.abs(warp - exact)
    assert fast_error.mean() <= warp_error.mean() + 0.05 and fast_error.max() <= max(1.0, warp_error.max())
