"""Captions burned into renditions: real ffmpeg (libass), real fontconfig and Noto fonts.

The burned picture changes only in the caption's box, inside the 9:16 safe area; every script
family's primary font has a glyph for every character of its text (no tofu); a row without
captions is left alone with a note; a missing font is an error naming the package to install.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from sonic_model.captions.burn import (
    _find_font,
    burn_captions,
    covered,
    find_font,
    fitted_lines,
    font_for,
    libass_size,
    safe_area,
    text_width,
)
from sonic_model.captions.formats import Cue, write_srt
from sonic_model.encode import ffmpeg_executable
from sonic_model.errors import CaptionFontError
from sonic_model.generators import RenderParams
from sonic_model.video_reader import iter_video_frames
from tasks.publish import with_burned_captions, with_caption_tracks
from tasks.records import RenderedVideo, RowInfo, content_key, frames_key

FIXTURES = Path(__file__).parent / "fixtures"
WIDTH, HEIGHT = 360, 640  # 9:16, small enough to encode in a fraction of a second
# The platforms' figures (not the module's constants): Reels keeps the bottom 35 % and 6 % of
# each side clear; TikTok's action column covers the right 120-180 px of 1080 (at least 11 %).
LOWEST_CAPTION_ROW = 0.65 * HEIGHT
LEFTMOST_COLUMN = 0.06 * WIDTH
RIGHTMOST_COLUMN = (1 - 120 / 1080) * WIDTH

# One line of each script family, as a row's script would give them.
SCRIPTS = {
    "en": ("Noto Sans", "Welcome to the first lesson of this course."),
    "ru": ("Noto Sans", "Добро пожаловать на первый урок этого курса."),
    "el": ("Noto Sans", "Καλώς ήρθατε στο πρώτο μάθημα αυτού του μαθήματος."),
    "zh-Hans": ("Noto Sans CJK SC", "欢迎来到本课程的第一课。今天我们学习字幕的时间。"),
    "ja": ("Noto Sans CJK JP", "このコースの最初のレッスンへようこそ。"),
    "ar": ("Noto Sans Arabic", "مرحبا بكم في الدرس الأول من هذه الدورة."),
    "hi": ("Noto Sans Devanagari", "इस पाठ्यक्रम के पहले पाठ में आपका स्वागत है।"),
}


@pytest.fixture(scope="module")
def vertical_video(tmp_path_factory) -> Path:
    """A 2 s 9:16 video of the astronaut photo (a real picture, with detail everywhere) and a tone."""
    path = tmp_path_factory.mktemp("burn") / "vertical.mp4"
    command = [
        ffmpeg_executable(), "-nostdin", "-v", "error", "-y",
        "-loop", "1", "-i", str(FIXTURES / "portrait_astronaut.jpg"),
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-t", "2", "-r", "25",
        "-vf", f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,crop={WIDTH}:{HEIGHT}",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "18", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-shortest", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return path


def frame_at(path: Path, index: int) -> np.ndarray:
    for at, frame in iter_video_frames(path):
        if at == index:
            return frame.astype(np.int16)
    raise AssertionError(f"{path} has no frame {index}")


def changed_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the pixels the burn changed (more than the encode's noise)."""
    mask = np.abs(after - before).max(axis=2) > 40
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert rows.size and columns.size, "nothing was drawn"
    return int(columns[0]), int(rows[0]), int(columns[-1]), int(rows[-1])


def test_burned_rendition_changes_only_the_caption_band_inside_the_safe_area(vertical_video, tmp_path):
    cues = [
        Cue(0.0, 1.0, ("Welcome to the first lesson of this course,", "where we learn how captions are timed.")),
        Cue(1.0, 2.0, ("欢迎来到本课程的第一课，今天我们学习字幕的时间和位置。",)),  # one long line, no spaces
    ]
    out = tmp_path / "burned.mp4"
    font = burn_captions(vertical_video, cues, "en", out, width=WIDTH, height=HEIGHT)
    assert font.family == "Noto Sans"
    area = safe_area(WIDTH, HEIGHT)
    for index in (12, 37):  # one frame inside each cue
        before, after = frame_at(vertical_video, index), frame_at(out, index)
        left, top, right, bottom = changed_box(before, after)
        # Inside the safe area: above the bottom 35 %, clear of the sides (a pixel of antialiasing).
        assert bottom <= LOWEST_CAPTION_ROW + 1, (index, bottom)
        assert left >= LEFTMOST_COLUMN and right <= RIGHTMOST_COLUMN, (index, left, right)
        assert left >= area.side - 1 and right <= WIDTH - area.side + 1, (index, left, right)  # as planned
        assert top > HEIGHT // 3, (index, top)  # a caption, not a title: below the face
        # Above the caption the picture is the rendition's own (only the encode's noise).
        above = np.abs(after[: top - 2] - before[: top - 2])
        assert above.mean() < 1.5 and np.percentile(above, 99.9) < 16, (above.mean(), above.max())
        below = np.abs(after[bottom + 2 :] - before[bottom + 2 :])
        assert below.mean() < 1.5
        band = np.abs(after[top : bottom + 1, left : right + 1] - before[top : bottom + 1, left : right + 1])
        assert band.mean() > 20  # the box and the letters
    with av.open(str(out)) as container:
        assert not container.streams.subtitles  # burned in: no soft track beside it
        assert container.streams.audio and container.metadata.get("captions_burned") == "true"


def test_long_lines_are_broken_to_fit_between_the_margins():
    area = safe_area(1080, 1920)
    room = area.line_width - 2 * area.padding
    for language, (_, text) in SCRIPTS.items():
        font = find_font(font_for(language, text))
        lines = fitted_lines((text + " " + text,), font, area)
        assert len(lines) >= 2, (language, lines)
        size = libass_size(font, area)
        assert all(text_width(font, line, size) <= room * 1.1 for line in lines), (language, lines)
        assert "".join(lines).replace(" ", "") == (text + text).replace(" ", "")  # nothing lost or added
        assert not any(line[0] in "，。、" for line in lines)  # a line never starts with closing punctuation


def test_a_line_breaks_where_the_cue_builder_would_between_words_of_korean_and_characters_of_chinese():
    # Korean is written with spaces between words: a burned line breaks between them, as the cue
    # builder does, never between a word's syllables. A Latin word inside Chinese stays whole.
    area = safe_area(1080, 1920)
    korean = "오늘은 데이터 분석의 기초를 배우고 간단한 예제로 직접 연습해 보겠습니다"
    lines = fitted_lines((korean,), find_font(font_for("ko", korean)), area)
    assert len(lines) >= 2, lines
    assert " ".join(lines).split() == korean.split()
    mixed = "这门课程使用 Python 和 Jupyter 笔记本，从一段简短的历史开始，然后我们来看看你将使用的工具。"
    lines = fitted_lines((mixed,), find_font(font_for("zh", mixed)), area)
    assert len(lines) >= 2, lines
    assert "".join(lines).replace(" ", "") == mixed.replace(" ", "")
    words = " ".join(lines).split()
    assert "Python" in words and "Jupyter" in words, lines
    assert not any(line[0] in "，。、" for line in lines)


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_each_script_family_gets_an_installed_font_with_every_glyph(language):
    family, text = SCRIPTS[language]
    font = find_font(font_for(language, text))
    assert font.family == family and Path(font.path).is_file()
    assert covered(font, text) == set()  # no tofu: the primary font itself has every character
    # fontconfig agrees: the font's charset (what libass looks glyphs up in) holds the text.
    charset = subprocess.run(
        ["fc-list", "--format", "%{charset}\n", f"{family}:style=Regular"], capture_output=True, text=True, check=True
    ).stdout.split("\n")[0]
    ranges = [[int(x, 16) for x in part.split("-")] for part in charset.split()]
    assert all(any(r[0] <= ord(c) <= r[-1] for r in ranges) for c in text if not c.isspace()), language


def test_the_script_chooses_the_font_and_the_language_the_cjk_variant():
    assert font_for("en", "مرحبا بكم").family == "Noto Sans Arabic"  # a mislabelled row still renders
    assert font_for("zh-Hant", "歡迎").family == "Noto Sans CJK TC"
    assert font_for("zh-TW").family == "Noto Sans CJK TC"
    assert font_for("ko", "환영합니다").family == "Noto Sans CJK KR"
    assert font_for("hi").family == "Noto Sans Devanagari"
    assert font_for("fr", "Bienvenue").family == "Noto Sans"


def test_arabic_and_chinese_are_burned_with_their_own_fonts(vertical_video, tmp_path):
    for language, cue_text in (("ar", SCRIPTS["ar"][1]), ("zh-Hans", SCRIPTS["zh-Hans"][1])):
        out = tmp_path / f"{language}.mp4"
        font = burn_captions(vertical_video, [Cue(0.0, 2.0, (cue_text,))], language, out, width=WIDTH, height=HEIGHT)
        assert font.family == SCRIPTS[language][0]
        left, top, right, bottom = changed_box(frame_at(vertical_video, 25), frame_at(out, 25))
        assert bottom <= LOWEST_CAPTION_ROW + 1 and LEFTMOST_COLUMN <= left and right <= RIGHTMOST_COLUMN
        assert right - left > WIDTH // 3


@pytest.fixture
def no_fonts(tmp_path, monkeypatch):
    """fontconfig reading a configuration with no font folders: a machine without the Noto packages."""
    config = tmp_path / "fonts.conf"
    config.write_text('<?xml version="1.0"?>\n<fontconfig><cachedir>' + str(tmp_path) + "</cachedir></fontconfig>\n")
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    _find_font.cache_clear()
    yield
    _find_font.cache_clear()


def rendered_row(video: Path, *, burn: bool, with_rendition: bool = True) -> RenderedVideo:
    params = dataclasses.replace(RenderParams(), renditions=("master", "vertical"), burn_captions=burn).as_dict()
    rendition = {"name": "vertical", "path": str(video), "width": WIDTH, "height": HEIGHT}
    return RenderedVideo(
        info=RowInfo("row-1", "zh"), content_key="k", video_path=str(video), portrait_path="", audio_path="",
        portrait_uri="", audio_uri="", portrait_sha256="", audio_sha256="", generator="preview",
        generator_version="1", params=params, audio_duration_s=2.0, render={},
        renditions=(rendition,) if with_rendition else (),
    )  # fmt: skip


def captions_record(language: str, text: str) -> dict:
    return {"srt": write_srt([Cue(0.0, 2.0, (text,))]), "language": language}


def test_a_missing_font_fails_the_rendition_naming_the_package(vertical_video, tmp_path, no_fonts):
    with pytest.raises(CaptionFontError, match=r"'Noto Sans CJK SC' is not installed.*apt-get install fonts-noto-cjk"):
        burn_captions(vertical_video, [Cue(0, 2, ("欢迎",))], "zh", tmp_path / "x.mp4", width=WIDTH, height=HEIGHT)
    row = rendered_row(vertical_video, burn=True)
    with pytest.raises(CaptionFontError, match=r"^vertical rendition: captions not burned in: .*fonts-noto-core"):
        with_burned_captions(row, captions_record("ar", SCRIPTS["ar"][1]))


def test_a_row_without_captions_is_left_alone_with_a_note(vertical_video):
    row = rendered_row(vertical_video, burn=True)
    kept, record = with_burned_captions(row, None)
    assert kept is row
    assert record["renditions"] == [] and "has no captions (no script_text or captions_uri)" in record["note"]
    kept, record = with_burned_captions(rendered_row(vertical_video, burn=True, with_rendition=False), None)
    assert "no renditions" in record["note"]
    assert with_burned_captions(rendered_row(vertical_video, burn=False), captions_record("en", "Hi")) == (
        rendered_row(vertical_video, burn=False),
        None,
    )


def test_burned_renditions_get_no_soft_track_and_the_master_keeps_its_own(vertical_video, tmp_path):
    import shutil

    master = tmp_path / "video.mp4"
    rendition = tmp_path / "vertical.mp4"
    shutil.copy(vertical_video, master)
    shutil.copy(vertical_video, rendition)
    row = dataclasses.replace(
        rendered_row(rendition, burn=True), video_path=str(master), info=RowInfo("row-1", "zh-Hans")
    )
    captions = captions_record("zh-Hans", SCRIPTS["zh-Hans"][1])
    burned, record = with_burned_captions(row, captions)
    assert record == {"renditions": ["vertical"], "language": "zh-Hans", "font": "Noto Sans CJK SC", "note": None}
    assert burned.renditions[0]["captions_burned"] and burned.renditions[0]["path"].endswith(".burned.mp4")
    delivered = with_caption_tracks(burned, captions)
    assert delivered.renditions[0]["path"] == burned.renditions[0]["path"]  # no track muxed into it
    for path, tracks in ((delivered.video_path, 1), (delivered.renditions[0]["path"], 0)):
        with av.open(path) as container:
            assert len(container.streams.subtitles) == tracks, path


def test_burn_captions_joins_the_content_key_only_where_it_changes_a_video():
    from tasks.plan import PlanSettings, _KeyMaker
    from tasks.records import script_sha256

    portrait, audio, script = "a" * 64, "b" * 64, script_sha256("Hello there.")

    def key(burn: bool, renditions=("master", "vertical"), script=script, given=False) -> str:
        params = dataclasses.replace(RenderParams(), renditions=renditions, burn_captions=burn).as_dict()
        captions_file = "c" * 64 if given else None  # a captions_uri file's SHA-256
        fixed = dict(portrait_sha256=portrait, audio_sha256=audio, generator="preview", generator_version="1",
                     params=params)  # fmt: skip
        made = content_key(**fixed, script_sha256=script, captions_file_sha256=captions_file)
        has_captions = script is not None or given
        key_of = _KeyMaker(PlanSettings("preview", "1"), params, script, has_captions=has_captions)
        assert key_of(portrait, audio, captions_file) == made  # the plan and the renderer agree
        # The frames key (what a captions-only update keeps) has the switch too, where the key has it:
        # a row with burned renditions is never sent to a captions-only update.
        frames = frames_key(**fixed, has_captions=has_captions)
        assert key_of.frames(portrait, audio) == frames
        unburned = frames_key(**{**fixed, "params": {**params, "burn_captions": False}}, has_captions=has_captions)
        assert (frames != unburned) == key_of.burns == (burn and has_captions and "vertical" in renditions)
        return made

    assert key(True) != key(False)  # captions and a rendition: the renditions change
    assert key(True, script=None, given=True) != key(False, script=None, given=True)  # a captions_uri row
    assert key(True, renditions=("master",)) == key(False, renditions=("master",))  # nothing to burn into
    assert key(True, script=None) == key(False, script=None)  # nothing to burn
    # Keys of rows that never asked for it are the ones made before the parameter existed.
    params = RenderParams(renditions=("master", "vertical")).as_dict()
    params.pop("burn_captions")
    assert key(False) == content_key(portrait_sha256=portrait, audio_sha256=audio, generator="preview",
                                     generator_version="1", params=params, script_sha256=script)  # fmt: skip


def test_the_project_s_set_up_installs_the_packages_the_errors_name():
    from sonic_model.captions.burn import _CJK_FONTS, _SCRIPT_FONTS, LATIN

    root = Path(__file__).parent.parent
    packages = {font.package for font in (LATIN, *_SCRIPT_FONTS.values(), *_CJK_FONTS.values())}
    assert packages == {"fonts-noto-core", "fonts-noto-cjk"}
    dockerfile = (root / "infra" / "Dockerfile.gpu-worker").read_text()
    # make demo / make test / .ci/run all install through infra/system-packages.sh.
    system = (root / "infra" / "system-packages.sh").read_text()
    assert "infra/system-packages.sh" in (root / ".ci" / "run").read_text()
    assert "infra/system-packages.sh" in (root / "Makefile").read_text()
    for package in (*packages, "fontconfig"):
        assert f" {package}" in dockerfile and f'missing="$missing {package}"' in system, package


def test_a_given_file_s_styling_and_ass_codes_stay_words():
    from sonic_model.captions.burn import ass_document

    font = find_font(font_for("en"))
    cue = Cue(0.0, 1.0, ("<i>Press {Enter}</i> or type \\N here",), markup="srt")
    (dialogue,) = [line for line in ass_document([cue], 1080, 1920, font).splitlines() if line.startswith("Dialogue")]
    text = dialogue.split(",,", 2)[-1].split(",,")[-1]
    assert "<i>" not in text and "{" not in text and "}" not in text  # no tag, no override block
    assert "\\N" not in text and "\\\u2060N" in text  # the typed backslash-N is not a line break


def test_burn_captions_option_on_render_and_render_one_and_a_row_s_cell_wins():
    from manifests.schema import ManifestRow
    from sonic_catalog.cli import build_parser
    from sonic_catalog.commands.render_one import params_from_args

    parser = build_parser()
    render = params_from_args(parser.parse_args(["render", "m.parquet", "--catalog", "c", "--burn-captions"]))
    one = parser.parse_args(["render-one", "--portrait", "p", "--audio", "a", "--out", "o", "--burn-captions"])
    assert render.burn_captions is True and params_from_args(one).burn_captions is True
    assert params_from_args(parser.parse_args(["render", "m.parquet", "--catalog", "c"])).burn_captions is False
    row = ManifestRow("r", "p.jpg", "a.wav", "en", "release/1", burn_captions=False)
    assert row.render_params(render).burn_captions is False  # the row's own cell wins over the option
