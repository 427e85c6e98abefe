"""Captions burned into a rendition's picture (open captions), inside the platforms' safe area.

Rendered by ffmpeg's `ass` filter (libass with HarfBuzz shaping and FriBidi, so Arabic joins
and runs right to left and Devanagari clusters are shaped). Fonts are the Noto families the
project's set-up installs (`fonts-noto-core`, `fonts-noto-cjk`; .ci/run and the README), found
through fontconfig; nothing is downloaded at run time. libass falls back per glyph to any
installed font that has it, so a Latin word inside a Chinese script still renders.

Safe area (bottom margin, as a share of the picture's height):
- 9:16 (vertical): 35% clear at the bottom (Meta's Reels safe zone: keep text out of the bottom
  35%; TikTok's and YouTube Shorts' bottom UI is smaller, so this clears all three), 6% at the sides;
- other shapes: 8% at the bottom (EBU R 95 action-safe / title-safe, 5% and 10%), 6% at the sides.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from sonic_model.captions.formats import Cue

VERTICAL_BOTTOM_SHARE = 0.35
OTHER_BOTTOM_SHARE = 0.08
SIDE_SHARE = 0.06
# Font size (libass: about the line height) as a share of the width: 42 characters of Noto Sans
# (about 0.5 em each) fill the width between the side margins.
FONT_SIZE_SHARE = 0.042

_FONTS = {  # primary font by the script's language; libass falls back per glyph from there
    "zh": "Noto Sans CJK SC", "ja": "Noto Sans CJK JP", "ko": "Noto Sans CJK KR", "yue": "Noto Sans CJK TC",
    "ar": "Noto Sans Arabic", "fa": "Noto Sans Arabic", "ur": "Noto Sans Arabic",
    "hi": "Noto Sans Devanagari", "mr": "Noto Sans Devanagari", "ne": "Noto Sans Devanagari",
    "he": "Noto Sans Hebrew", "th": "Noto Sans Thai",
}  # fmt: skip
DEFAULT_FONT = "Noto Sans"  # Latin, Cyrillic, Greek


def font_for(language: str) -> str:
    tag = language.lower().replace("_", "-")
    if tag in ("zh-hant", "zh-tw", "zh-hk"):
        return "Noto Sans CJK TC"
    return _FONTS.get(tag.split("-")[0], DEFAULT_FONT)


def _ass_time(seconds: float) -> str:
    centis = max(0, int(round(seconds * 100)))
    return f"{centis // 360000}:{centis // 6000 % 60:02d}:{centis // 100 % 60:02d}.{centis % 100:02d}"


def _ass_text(lines: tuple[str, ...]) -> str:
    escaped = [line.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}") for line in lines]
    return "\\N".join(escaped)


def ass_document(cues: list[Cue], width: int, height: int, language: str) -> str:
    """An ASS script drawing the cues bottom-centred in the safe area of a width x height picture."""
    vertical = height * 9 >= width * 16 - 1
    bottom = int(round(height * (VERTICAL_BOTTOM_SHARE if vertical else OTHER_BOTTOM_SHARE)))
    side = int(round(width * SIDE_SHARE))
    size = max(16, int(round(width * FONT_SIZE_SHARE)))
    outline = max(2, size // 8)
    header = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
        "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
        "MarginL, MarginR, MarginV, Encoding\n"
        # BorderStyle 3: an opaque box behind each line (black at 40% transparency), white text.
        f"Style: Caption,{font_for(language)},{size},&H00FFFFFF,&H00FFFFFF,&H66000000,&H66000000,0,0,0,0,"
        f"100,100,0,0,3,{outline},0,2,{side},{side},{bottom},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )
    events = [f"Dialogue: 0,{_ass_time(c.start)},{_ass_time(c.end)},Caption,,0,0,0,,{_ass_text(c.lines)}" for c in cues]
    return header + "\n".join(events) + "\n"


def burn_captions(video: str | Path, cues: list[Cue], language: str, width: int, height: int, out_path: str | Path):
    """`video` with the cues drawn into its picture (H.264 encoded again, sound and metadata copied)."""
    from sonic_model.captions.track import ffmpeg_executable

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="burn-") as folder:
        ass = Path(folder) / "captions.ass"
        ass.write_text(ass_document(cues, width, height, language), encoding="utf-8")
        command = [
            ffmpeg_executable(), "-nostdin", "-y", "-v", "error", "-i", str(video),
            "-vf", f"ass={ass}", "-map", "0:v", "-map", "0:a?", "-c:v", "libx264", "-preset", "veryfast",
            "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy", "-map_metadata", "0",
            "-movflags", "+faststart", str(out_path),
        ]  # fmt: skip
        finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"ffmpeg could not burn the captions in: {finished.stderr.strip()[-400:]}")
    return out_path
