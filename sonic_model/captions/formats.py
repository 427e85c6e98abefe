"""WebVTT and SubRip: write cues, read a given file back, and check it (issue 24's rules for a given file).

A given file is used as is once it parses, its cues are in order, none overlaps the next and all
end inside the audio. Styling in a given file (VTT cue settings, SRT <i> tags) is kept verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sonic_model.errors import CaptionsError

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(.*)$")
# End slack: an end a frame past the audio (a file timed to 25 fps video) is not an error.
END_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def _stamp(seconds: float, separator: str) -> str:
    millis = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def write_vtt(cues: list[Cue], language: str) -> str:
    # `Language:` is the header line players and YouTube read for the track language.
    blocks = [f"WEBVTT\nLanguage: {language}"]
    for cue in cues:
        blocks.append(f"{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}\n" + "\n".join(cue.lines))
    return "\n\n".join(blocks) + "\n"


def write_srt(cues: list[Cue]) -> str:
    blocks = []
    for number, cue in enumerate(cues, 1):
        blocks.append(f"{number}\n{_stamp(cue.start, ',')} --> {_stamp(cue.end, ',')}\n" + "\n".join(cue.lines))
    return "\n\n".join(blocks) + "\n"


def _seconds(groups: tuple) -> float:
    hours, minutes, secs, millis = groups
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def parse_captions(text: str, name: str = "captions") -> list[Cue]:
    """Cues of a WebVTT or SubRip text (told apart by the WEBVTT header); CaptionsError if it does not parse."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    is_vtt = text.startswith("WEBVTT")
    blocks = [block for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    if is_vtt:
        blocks = blocks[1:]  # the header block
    cues: list[Cue] = []
    for number, block in enumerate(blocks, 1):
        lines = block.split("\n")
        if is_vtt and lines[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        timing_at = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if timing_at is None:
            raise CaptionsError(f"{name}: block {number} has no 'start --> end' line; is this a .vtt or .srt file?")
        match = _TIMING.match(lines[timing_at])
        if match is None:
            raise CaptionsError(f"{name}: block {number}: cannot read the times in {lines[timing_at]!r}")
        groups = match.groups()
        start, end = _seconds(groups[0:4]), _seconds(groups[4:8])
        body = tuple(line for line in lines[timing_at + 1 :] if line.strip())
        if not body:
            raise CaptionsError(f"{name}: block {number} at {_stamp(start, '.')} has no text")
        cues.append(Cue(start, end, body))
    if not cues:
        raise CaptionsError(f"{name}: no cues found; give a WebVTT or SubRip file with at least one cue")
    return cues


def check_cues(cues: list[Cue], audio_s: float, name: str = "captions") -> None:
    """CaptionsError naming the first cue that is empty, out of order, overlapping or past the audio's end."""
    for index, cue in enumerate(cues):
        where = f"{name}: cue {index + 1} ({_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')})"
        if cue.end <= cue.start:
            raise CaptionsError(f"{where} ends before it starts; fix its times")
        if cue.end > audio_s + END_TOLERANCE_S:
            raise CaptionsError(f"{where} ends after the audio ({audio_s:.2f} s); captions must fit the audio")
        if index:
            previous = cues[index - 1]
            if cue.start < previous.start:
                raise CaptionsError(f"{where} starts before the cue above it; put the cues in time order")
            if cue.start < previous.end - 1e-3:
                raise CaptionsError(f"{where} overlaps the cue above it (which ends at {previous.end:.3f} s)")
