"""A cue's text between plain text, WebVTT markup and SubRip markup.

Each format reads some characters as markup, so text written as is into the other loses words:
a course script's "Use the <video> element" showed as "Use the  element" (a WebVTT tag, and one
ffmpeg's SubRip reader drops when it makes the MP4's caption track), and a given WebVTT file's
"Fish &amp; chips" or "<v Roger>" showed verbatim in the SubRip file made from it. So every cue
keeps the markup its text is written in, and each writer converts:

- WebVTT (W3C WebVTT, "cue text"): `&`, `<` and `>` are written `&amp;` `&lt;` `&gt;`; tags are
  `<i> <b> <u> <c.class> <v Speaker> <lang xx> <ruby>/<rt>` and timestamps `<00:01.500>`.
- SubRip has no escapes; players read `<i> <b> <u> <font ...>` and ASS override blocks such as
  `{\\an8}`. A `<` before a letter or `/`, and a `{` before a backslash, that are not markup get a
  word joiner (U+2060) after them, so no player or ffmpeg takes "<video>" for a tag; it shows as
  written.

Italic, bold and underline, which both formats have, go across; the rest of a format's own
styling (voices, classes, positions, colours, ruby readings) is dropped on the way to the other
and kept where the format stays the same.
"""

from __future__ import annotations

import html
import re

PLAIN, VTT, SRT = "plain", "vtt", "srt"
_SHARED_TAGS = ("i", "b", "u")  # styling both formats have
# A tag: `<name ...>` or `</name>`, or a WebVTT timestamp `<00:01.500>` / `<01:00:01.500>`.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)(?:[.\s][^<>]*)?>|<\d+(?::\d+)+\.\d+>")
_RUBY_READING = re.compile(r"<rt(?:[.\s][^<>]*)?>.*?(?:</rt>|(?=</ruby>)|$)", re.DOTALL)
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # SubRip files from Aegisub and the like: {\an8}
_TAG_LIKE = re.compile(r"<(?=[/A-Za-z])|\{(?=\\)")
_JOINED = re.compile("([<{])\u2060")


def plain_text(line: str, markup: str) -> str:
    """The words a viewer reads in `line`, without markup (for burning into the picture)."""
    if markup == VTT:
        return html.unescape(_TAG.sub("", _RUBY_READING.sub("", line)))
    if markup == SRT:
        return _JOINED.sub(r"\1", _TAG.sub("", _ASS_OVERRIDE.sub("", line)))
    return line


def vtt_text(line: str, markup: str) -> str:
    """`line` as WebVTT cue text."""
    if markup == VTT:
        return line
    if markup == SRT:
        return _converted(_ASS_OVERRIDE.sub("", line), lambda text: _escape_vtt(_JOINED.sub(r"\1", text)))
    return _escape_vtt(line)


def srt_text(line: str, markup: str) -> str:
    """`line` as SubRip cue text."""
    if markup == SRT:
        return line
    if markup == VTT:
        return _converted(_RUBY_READING.sub("", line), lambda text: _escape_srt(html.unescape(text)))
    return _escape_srt(line)


def _converted(line: str, convert_text) -> str:
    """`line` with the shared tags kept (lower case, without classes), other tags dropped and the
    text between them passed through `convert_text`."""
    out, at = [], 0
    for tag in _TAG.finditer(line):
        out.append(convert_text(line[at : tag.start()]))
        closing, name = tag.group(1), (tag.group(2) or "").lower()
        if name in _SHARED_TAGS:
            out.append(f"<{closing}{name}>")
        at = tag.end()
    out.append(convert_text(line[at:]))
    return "".join(out)


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_srt(text: str) -> str:
    return _TAG_LIKE.sub(lambda mark: mark.group(0) + "\u2060", text)
