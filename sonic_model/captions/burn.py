"""Captions burned into a rendition's picture (open captions), inside the platforms' safe area.

Drawn by ffmpeg's `ass` filter from an ASS file written here: libass shapes with HarfBuzz and
orders with FriBidi, so Arabic letters join and run right to left and Devanagari clusters are
shaped. The fonts are the Noto families the project's set-up installs (Debian `fonts-noto-core`
and `fonts-noto-cjk`: .ci/run, infra/Dockerfile.gpu-worker), found through fontconfig; nothing is
downloaded at run time. One primary font per row, chosen from its text's script and its language
(`font_for`); libass takes any character that font lacks from another installed font. A primary
font that is not installed stops the burn with `CaptionFontError` naming the package to install.

Where the text goes (`safe_area`), as shares of the frame:

- 9:16 (vertical): the caption's bottom edge 35 % of the height above the bottom, and 14 % of the
  width clear on each side. Meta's Reels safe zone keeps the bottom 35 %, the top 14 % and 6 % of
  each side free of text (Meta Business Help Center, "Reels safe zones"; repeated in e.g.
  houseofmarketers.com/guide-to-safe-zones-tiktok-facebook-instagram-stories-reels). TikTok's
  bottom UI (caption, user name, sound, progress) covers about the bottom 320-460 px of 1920 and
  its action column the right 120-180 px of 1080 (TikTok Creative Center safe-zone overlays, as
  summarised in socaptions.com/blog/tiktok-safe-zones-2026); YouTube Shorts' are alike. 35 % at
  the bottom clears all three; 14 % (151 px) each side clears TikTok's right column and keeps
  the lines centred under the face.
- other shapes (square feeds, landscape course players): 8 % of the height at the bottom (above a
  player's control bar) and 5 % of the width at the sides (EBU R 95's graphics-safe area: 5 % of
  each edge).

Size: libass's font size is a line's height. 2.6 % of the height on a vertical frame (50 px of
1920, ~36 Latin characters a line between the margins), 4.6 % on the others (50 px of 1080: a
42-character line fits a landscape frame), for Noto Sans; every other font gets the size that
gives its letters the same em (`libass_size`). A line too long for the width between
the margins is broken here, before libass sees it: libass itself wraps only at spaces, so a
Chinese or Japanese line would run off the frame. Widths are estimated from the font's own
advance widths (fontTools), without shaping.

Legibility: white text on a box of black at 62 % opacity around the whole caption (libass's
BorderStyle 4), readable on any background.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sonic_model.captions.formats import Cue
from sonic_model.captions.languages import language_subtags
from sonic_model.captions.text import tokenize
from sonic_model.errors import CaptionFontError, OutputError

VERTICAL_BOTTOM_SHARE = 0.35
VERTICAL_SIDE_SHARE = 0.14
OTHER_BOTTOM_SHARE = 0.08
OTHER_SIDE_SHARE = 0.05
VERTICAL_FONT_SHARE = 0.026
OTHER_FONT_SHARE = 0.046
# Box padding around the text, as a share of the font size; box: black, alpha 0x60 (62 % opaque).
BOX_PADDING_SHARE = 0.12
BOX_COLOUR = "&H60000000"
# Noto Sans' line (Windows ascent + descent) in em: what `font_size` is the libass size of.
LATIN_LINE_EM = 1.362

CORE_PACKAGE = "fonts-noto-core"
CJK_PACKAGE = "fonts-noto-cjk"


@dataclass(frozen=True)
class CaptionFont:
    family: str
    package: str  # the Debian package that installs it


LATIN = CaptionFont("Noto Sans", CORE_PACKAGE)  # Latin, Cyrillic, Greek
_SCRIPT_FONTS = {
    "arabic": CaptionFont("Noto Sans Arabic", CORE_PACKAGE),
    "hebrew": CaptionFont("Noto Sans Hebrew", CORE_PACKAGE),
    "devanagari": CaptionFont("Noto Sans Devanagari", CORE_PACKAGE),
    "bengali": CaptionFont("Noto Sans Bengali", CORE_PACKAGE),
    "tamil": CaptionFont("Noto Sans Tamil", CORE_PACKAGE),
    "thai": CaptionFont("Noto Sans Thai", CORE_PACKAGE),
}
_CJK_FONTS = {
    "ja": CaptionFont("Noto Sans CJK JP", CJK_PACKAGE),
    "ko": CaptionFont("Noto Sans CJK KR", CJK_PACKAGE),
    "traditional": CaptionFont("Noto Sans CJK TC", CJK_PACKAGE),
    "simplified": CaptionFont("Noto Sans CJK SC", CJK_PACKAGE),
}
# Unicode blocks -> script (the scripts a Noto family above covers; anything else counts as Latin).
_BLOCKS = (
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"),
    (0x0980, 0x09FF, "bengali"),
    (0x0B80, 0x0BFF, "tamil"),
    (0x0E00, 0x0E7F, "thai"),
    (0x1100, 0x11FF, "cjk"),
    (0x3000, 0x9FFF, "cjk"),
    (0xAC00, 0xD7AF, "cjk"),
    (0xF900, 0xFAFF, "cjk"),
    (0xFF00, 0xFFEF, "cjk"),
    (0x20000, 0x3FFFF, "cjk"),
)


def script_of(character: str) -> str:
    code = ord(character)
    for low, high, script in _BLOCKS:
        if low <= code <= high:
            return script
    return "latin"


def dominant_script(text: str) -> str:
    """The script most of the text's letters are written in (punctuation and digits not counted)."""
    counts: dict[str, int] = {}
    for character in text:
        if unicodedata.category(character)[0] in ("L", "M"):
            script = script_of(character)
            counts[script] = counts.get(script, 0) + 1
    return max(counts, key=counts.get) if counts else "latin"


def font_for(language: str, text: str = "") -> CaptionFont:
    """The primary font for captions in `language` (a BCP-47 tag) reading `text`: chosen by the
    script the text is written in, the language telling the CJK variants apart (and choosing
    when there is no text)."""
    primary, *subtags = language_subtags(language)
    script = dominant_script(text) if text.strip() else _LANGUAGE_SCRIPTS.get(primary, "latin")
    if script == "cjk":
        if primary == "ja":
            return _CJK_FONTS["ja"]
        if primary == "ko":
            return _CJK_FONTS["ko"]
        traditional = any(part in ("hant", "tw", "hk", "mo") for part in subtags) or primary == "yue"
        return _CJK_FONTS["traditional" if traditional else "simplified"]
    return _SCRIPT_FONTS.get(script, LATIN)


_LANGUAGE_SCRIPTS = {
    "zh": "cjk", "ja": "cjk", "ko": "cjk", "yue": "cjk", "cmn": "cjk",
    "ar": "arabic", "fa": "arabic", "ur": "arabic", "ps": "arabic", "he": "hebrew", "yi": "hebrew",
    "hi": "devanagari", "mr": "devanagari", "ne": "devanagari", "sa": "devanagari",
    "bn": "bengali", "ta": "tamil", "th": "thai",
}  # fmt: skip


# --- the font file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FontFile:
    family: str
    path: str
    index: int  # the face inside a collection (.ttc)


def find_font(font: CaptionFont) -> FontFile:
    """The installed file of `font`'s regular face, through fontconfig's `fc-list` (the lookup
    libass makes); `CaptionFontError` naming the Debian package when it is not installed."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        raise CaptionFontError(
            f"cannot look up the caption font {font.family!r}: fontconfig's fc-list is not installed "
            f"(apt-get install fontconfig {font.package})"
        )
    return _find_font(fc_list, font.family, font.package)


@functools.lru_cache(maxsize=32)
def _find_font(fc_list: str, family: str, package: str) -> FontFile:
    listed = subprocess.run(
        [fc_list, "--format", "%{file}\t%{index}\t%{style}\n", f"{family}:style=Regular"],
        capture_output=True,
        text=True,
        check=False,
    )
    faces = [line.split("\t") for line in listed.stdout.splitlines() if line.count("\t") == 2]
    if listed.returncode != 0 or not faces:
        raise CaptionFontError(
            f"the caption font {family!r} is not installed: install the Debian package {package} "
            f"(apt-get install {package}; the project's set-up, .ci/run and infra/Dockerfile.gpu-worker, does)"
        )
    faces.sort(key=lambda face: (not face[0].endswith((".otf", ".ttf", ".ttc")), face[0]))
    path, index, _ = faces[0]
    return FontFile(family, path, int(index or 0))


@functools.lru_cache(maxsize=16)
def _metrics(path: str, index: int) -> tuple[dict[int, float], float, float]:
    """({code point: advance in libass size units}, the advance of a character the font lacks,
    the font's line height in em)."""
    from fontTools.ttLib import TTFont

    font = TTFont(path, fontNumber=index, lazy=True)
    os2 = font["OS/2"]
    em = float(font["head"].unitsPerEm)
    # libass sizes a font so that its ascent + descent (the Windows metrics) is the font size.
    line = float(os2.usWinAscent + os2.usWinDescent) or em
    metrics = font["hmtx"].metrics
    advances = {code: metrics[glyph][0] / line for code, glyph in font.getBestCmap().items() if glyph in metrics}
    font.close()
    return advances, em / line, line / em


def libass_size(font: FontFile, area: SafeArea) -> float:
    """The libass font size that gives `font` the letter size Noto Sans has at `area.font_size`.
    libass fits a font's whole line (ascent + descent) into its size, and lines differ: Noto Sans
    Arabic's is 2.11 em against Noto Sans' 1.36, so at one size its letters came out two thirds
    as big (seen on a burned Arabic rendition). Sized by the em instead, scripts with tall
    marks get taller lines, not smaller letters."""
    return area.font_size * _metrics(font.path, font.index)[2] / LATIN_LINE_EM


def covered(font: FontFile, text: str) -> set[str]:
    """The characters of `text` (other than white space) that `font` has no glyph for."""
    advances = _metrics(font.path, font.index)[0]
    return {c for c in text if not c.isspace() and ord(c) not in advances}


def text_width(font: FontFile, text: str, size: float) -> float:
    """`text`'s width in pixels at libass font size `size` (advance widths, no kerning or shaping)."""
    advances, missing, _ = _metrics(font.path, font.index)
    return size * sum(advances.get(ord(c), missing) for c in text)


# --- the ASS document ------------------------------------------------------------------------


@dataclass(frozen=True)
class SafeArea:
    """Where the captions go in a width x height frame (pixels): margins and the font size."""

    width: int
    height: int
    side: int  # left and right margins
    bottom: int  # from the frame's bottom edge to the caption's
    font_size: int

    @property
    def line_width(self) -> int:
        return self.width - 2 * self.side

    @property
    def padding(self) -> int:
        return max(2, round(self.font_size * BOX_PADDING_SHARE))


def is_vertical(width: int, height: int) -> bool:
    return height * 9 >= width * 16 * 0.98  # 9:16, or taller


def safe_area(width: int, height: int) -> SafeArea:
    vertical = is_vertical(width, height)
    side = round(width * (VERTICAL_SIDE_SHARE if vertical else OTHER_SIDE_SHARE))
    bottom = round(height * (VERTICAL_BOTTOM_SHARE if vertical else OTHER_BOTTOM_SHARE))
    size = max(12, round(height * (VERTICAL_FONT_SHARE if vertical else OTHER_FONT_SHARE)))
    return SafeArea(width, height, side, bottom, size)


# Characters a line should not start with (closing punctuation, CJK and Latin).
_NO_LINE_START = set("，。、；：！？）」』】〉》,.;:!?)]}%")


def fitted_lines(lines: tuple[str, ...], font: FontFile, area: SafeArea) -> list[str]:
    """The cue's lines, each one too wide for the space between the margins broken into as many
    lines of even width as it needs: between words, or between characters where a run has no
    spaces (Chinese, Japanese, Thai), never before closing punctuation."""
    fitted: list[str] = []
    room = area.line_width - 2 * area.padding
    size = libass_size(font, area)
    for line in lines:
        line = " ".join(line.split())
        if not line:
            continue
        width = text_width(font, line, size)
        if width <= room:
            fitted.append(line)
            continue
        pieces = -(-int(width) // room)  # ceil
        target = width / pieces
        units = _break_units(line)
        current = ""
        for unit in units:
            trial = current + unit
            if current and text_width(font, trial.strip(), size) > target * 1.08 and unit.strip():
                fitted.append(current.strip())
                current = unit.lstrip()
            else:
                current = trial
        if current.strip():
            fitted.append(current.strip())
    return fitted


def _break_units(line: str) -> list[str]:
    """The pieces a line may be broken between: the cue builder's tokens (`text.tokenize`), each
    with the space that follows it. Words of spaced scripts stay whole (Korean too: Hangul is
    written with spaces between words); an unspaced script (Chinese, Japanese, Thai) breaks
    between characters, and punctuation stays with the token before it."""
    tokens = tokenize(line)
    units: list[str] = []
    for index, token in enumerate(tokens):
        spaced_next = index + 1 < len(tokens) and tokens[index + 1].spaced
        if units and token.text[0] in _NO_LINE_START:
            units[-1] += token.text  # a line does not start with closing punctuation
        else:
            units.append(token.text)
        if spaced_next:
            units[-1] += " "
    return units


def _ass_time(seconds: float) -> str:
    centis = max(0, int(round(seconds * 100)))
    return f"{centis // 360000}:{centis // 6000 % 60:02d}:{centis // 100 % 60:02d}.{centis % 100:02d}"


def _ass_text(lines: list[str]) -> str:
    # "{" opens an override block and "\N", "\n", "\h" are ASS codes: a word joiner after each
    # backslash and full-width braces keep the words as they were written.
    escaped = [line.replace("\\", "\\\u2060").replace("{", "\uff5b").replace("}", "\uff5d") for line in lines]
    return "\\N".join(escaped)


def ass_document(cues: list[Cue], width: int, height: int, font: FontFile) -> str:
    """An ASS script drawing the cues centred at the bottom of the safe area of a width x height frame."""
    area = safe_area(width, height)
    size = libass_size(font, area)
    header = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
        "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
        "MarginL, MarginR, MarginV, Encoding\n"
        # BorderStyle 4 (libass): one box in BackColour around the whole caption, padded by Outline.
        f"Style: Caption,{font.family},{size:.1f},&H00FFFFFF,&H00FFFFFF,{BOX_COLOUR},{BOX_COLOUR},0,0,0,0,"
        f"100,100,0,0,4,{area.padding},0,2,{area.side},{area.side},{area.bottom + area.padding},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )
    events = []
    for cue in cues:
        lines = fitted_lines(cue.plain_lines, font, area)  # a given file's styling is not drawn
        if lines:
            events.append(f"Dialogue: 0,{_ass_time(cue.start)},{_ass_time(cue.end)},Caption,,0,0,0,,{_ass_text(lines)}")
    return header + "\n".join(events) + "\n"


# --- burning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurnEncoding:
    """How the burned picture is encoded: a rendition's own settings (`sonic_model.renditions`)."""

    qp: int = 18
    crf: int = 20
    max_bitrate: str | None = None
    x264_preset: str = "ultrafast"
    x264_params: str | None = None


def burn_captions(
    video: str | Path,
    cues: list[Cue],
    language: str,
    out_path: str | Path,
    *,
    width: int,
    height: int,
    encoding: BurnEncoding = BurnEncoding(),
) -> FontFile:
    """`video` with the cues drawn into its picture, at `out_path`: the picture encoded again (H.264
    High, as `encoding` says), the sound and the file's metadata (AI disclosure) copied, no
    subtitle track. Returns the primary font used; `CaptionFontError` if it is not installed."""
    from sonic_model.encode import ffmpeg_executable

    font = find_font(font_for(language, " ".join(cue.text for cue in cues)))
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="burn-") as folder:
        ass = Path(folder) / "captions.ass"
        ass.write_text(ass_document(cues, width, height, font), encoding="utf-8")
        partial = Path(folder) / "burned.mp4"
        _encode(ffmpeg_executable(), video, ass, partial, encoding, capped=False)
        if encoding.max_bitrate and _over_cap(partial, encoding.max_bitrate):
            _encode(ffmpeg_executable(), video, ass, partial, encoding, capped=True)
        shutil.move(partial, out_path)  # a rename where the two are on one filesystem
    return font


def _encode(ffmpeg: str, video, ass: Path, out: Path, encoding: BurnEncoding, *, capped: bool) -> None:
    if capped:  # as the renditions' writer does: half the cap as VBV rate and half as buffer
        half = str(round(_bits_per_second(encoding.max_bitrate) / 2))
        rate = ["-crf", str(encoding.crf), "-maxrate", half, "-bufsize", half]
    else:
        rate = ["-qp", str(encoding.qp)]
    x264 = ["-x264-params", encoding.x264_params] if encoding.x264_params else []
    command = [
        ffmpeg, "-nostdin", "-y", "-v", "error", "-i", str(video), "-vf", f"ass=filename={ass}",
        "-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "high",
        "-preset", encoding.x264_preset, *x264, *rate, "-c:a", "copy", "-map_metadata", "0",
        "-metadata", "captions_burned=true", "-movflags", "+faststart+use_metadata_tags", str(out),
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if finished.returncode != 0:
        raise OutputError(f"ffmpeg could not burn the captions in: {finished.stderr.strip()[-400:]}")


def _bits_per_second(bitrate: str) -> float:
    from sonic_model.encode import _bits_per_second as parsed

    return parsed(bitrate)


def _over_cap(path: Path, max_bitrate: str) -> bool:
    from sonic_model.video_reader import peak_video_bitrate

    return peak_video_bitrate(path) > _bits_per_second(max_bitrate)
