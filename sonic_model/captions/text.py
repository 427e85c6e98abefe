"""A script split into caption tokens: words, or single characters for scripts written without spaces.

Chinese, Japanese and Thai are written without spaces between words; without a dictionary the
only safe break points are characters and punctuation (issue 24), so each of their characters
is a token that joins its neighbours with no space. Punctuation belongs to the token before it,
so a caption line never starts with a comma and a break never falls inside a word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Han, kana, Hangul is spaced (a word script), Thai and Lao have no spaces.
_UNSPACED = (
    "\u2e80-\u2fff\u3005-\u3007\u3021-\u3029\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0002fa1f\u0e00-\u0e7f\u0e80-\u0eff"
)
# Full-width punctuation (。，、「」) ends a run of Latin letters too: "界。OK" is "界。" and "OK".
_WIDE_PUNCT = "\u3000-\u3004\u3008-\u3020\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
_TOKEN = re.compile(rf"[{_UNSPACED}]|[{_WIDE_PUNCT}]+|[^\s{_UNSPACED}{_WIDE_PUNCT}]+")
# Marks that end a phrase (a caption may break after them); full-width forms for CJK, Arabic's
# comma and question mark, the Devanagari danda.
PHRASE_END = set(",;:.!?…—–)]}\"'»”’、。，；：！？）」』】〕〉》\u060c\u061b\u061f\u06d4\u0964\u0965")
SENTENCE_END = set(".!?…。！？\u061f\u06d4\u0964\u0965")
# Invisible characters text pasted from word processors and web pages carries: zero-width space,
# word joiner, a byte-order mark inside the text, soft hyphen. They are left out of captions: a
# sentence's "use.\ufeff" did not end with a full stop, and its cue ran on into the next sentence.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"))


@dataclass(frozen=True)
class Token:
    """One word (or one character of an unspaced script) of the script and where it lies in it."""

    text: str
    start_char: int  # index into the normalized script
    end_char: int
    spaced: bool  # written after a space (False for unspaced characters and leading tokens)

    @property
    def ends_phrase(self) -> bool:
        visible = _without_format_marks(self.text)
        return bool(visible) and visible[-1] in PHRASE_END

    @property
    def ends_sentence(self) -> bool:
        return _without_format_marks(self.text).rstrip("\"'»”’)]」』").endswith(tuple(SENTENCE_END))

    @property
    def is_punctuation(self) -> bool:
        return all(unicodedata.category(c).startswith("P") for c in self.text)


def normalize_script(script: str) -> str:
    """NFC, invisible characters left out, one space for any run of white space (line breaks
    included), trimmed."""
    return " ".join(unicodedata.normalize("NFC", script).translate(_INVISIBLE).split())


def _without_format_marks(text: str) -> str:
    """`text` without trailing format characters (a right-to-left mark after Arabic's full stop)."""
    end = len(text)
    while end and unicodedata.category(text[end - 1]) == "Cf":
        end -= 1
    return text[:end]


def is_unspaced(text: str) -> bool:
    return re.fullmatch(f"[{_UNSPACED}]", text) is not None


def tokenize(script: str) -> list[Token]:
    """Tokens of a normalized script; punctuation is glued to the token before it."""
    tokens: list[Token] = []
    for match in _TOKEN.finditer(script):
        text, start, end = match.group(), match.start(), match.end()
        spaced = start > 0 and script[start - 1].isspace()
        all_punct = all(unicodedata.category(c).startswith("P") for c in text)
        if tokens and all_punct and not spaced:
            last = tokens[-1]
            tokens[-1] = Token(last.text + text, last.start_char, end, last.spaced)
            continue
        tokens.append(Token(text, start, end, spaced))
    return tokens


def join_tokens(tokens: list[Token]) -> str:
    """Caption text of consecutive tokens: spaces only where the script had them."""
    parts = []
    for index, token in enumerate(tokens):
        if index and token.spaced:
            parts.append(" ")
        parts.append(token.text)
    return "".join(parts)


def display_width(text: str) -> int:
    """Characters as caption guidelines count them: one per character, combining marks and
    format characters (direction marks, joiners) not counted."""
    return sum(1 for c in text if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
