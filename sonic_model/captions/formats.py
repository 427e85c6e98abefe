"""WebVTT and SubRip: write cues, read a given file back, and check it (issue 24's rules for a given file).

A given file is used as is once it parses, its cues are in order, none overlaps the next and all
end inside the audio. Its styling is kept in its own format (a WebVTT file's cue identifiers,
cue settings, STYLE and REGION blocks and tags; a SubRip file's tags) and converted in the other
(`markup.py`: italic, bold and underline go across, entities and text are escaped each format's way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sonic_model.captions.markup import PLAIN, SRT, VTT, plain_text, srt_text, vtt_text
from sonic_model.errors import CaptionsError

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(.*)$")
# End slack: an end a frame past the audio (a file timed to 25 fps video) is not an error.
END_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]  # written in `markup`
    markup: str = PLAIN  # "plain" (cues made from a script), "vtt" or "srt" (a given file's)
    settings: str = ""  # a given WebVTT cue's settings ("align:start line:0")
    identifier: str = ""  # a given WebVTT cue's identifier

    @property
    def text(self) -> str:
        """The cue's words as a viewer reads them, without markup."""
        return " ".join(self.plain_lines)

    @property
    def plain_lines(self) -> tuple[str, ...]:
        return tuple(plain_text(line, self.markup) for line in self.lines)


def _stamp(seconds: float, separator: str) -> str:
    millis = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def write_vtt(cues: list[Cue], language: str, style_blocks: tuple[str, ...] = ()) -> str:
    """WebVTT of `cues`; `style_blocks` are a given file's STYLE and REGION blocks, kept before the cues."""
    # `Language:` is the header line players and YouTube read for the track language.
    blocks = [f"WEBVTT\nLanguage: {language}", *style_blocks]
    for cue in cues:
        settings = f" {cue.settings}" if cue.settings and cue.markup == VTT else ""
        identifier = f"{cue.identifier}\n" if cue.identifier and cue.markup == VTT else ""
        timing = f"{identifier}{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}{settings}\n"
        blocks.append(timing + "\n".join(vtt_text(line, cue.markup) for line in cue.lines))
    return "\n\n".join(blocks) + "\n"


def write_srt(cues: list[Cue]) -> str:
    """SubRip of `cues`; a given WebVTT cue with nothing SubRip can show (only markup) is left out."""
    blocks = []
    for cue in cues:
        lines = [converted for line in cue.lines if (converted := srt_text(line, cue.markup)).strip()]
        if lines:
            timing = f"{len(blocks) + 1}\n{_stamp(cue.start, ',')} --> {_stamp(cue.end, ',')}\n"
            blocks.append(timing + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _seconds(groups: tuple) -> float:
    hours, minutes, secs, millis = groups
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def _blocks(text: str) -> tuple[bool, list[str]]:
    """(whether it is WebVTT, its blocks after the header)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    is_vtt = text.startswith("WEBVTT")
    blocks = [block for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    return is_vtt, blocks[1:] if is_vtt else blocks


def vtt_style_blocks(text: str) -> tuple[str, ...]:
    """A WebVTT text's STYLE and REGION blocks, as written (none for SubRip)."""
    is_vtt, blocks = _blocks(text)
    return tuple(block.strip("\n") for block in blocks if is_vtt and block.startswith(("STYLE", "REGION")))


def parse_captions(text: str, name: str = "captions") -> list[Cue]:
    """Cues of a WebVTT or SubRip text (told apart by the WEBVTT header); CaptionsError if it does not parse."""
    is_vtt, blocks = _blocks(text)
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
        if is_vtt:
            identifier = lines[0].strip() if timing_at else ""
            cues.append(Cue(start, end, body, VTT, " ".join(groups[8].split()), identifier))
        else:
            cues.append(Cue(start, end, body, SRT))
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
