"""Caption cues from timed words, by common caption rules.

Sources of each value:
- Netflix Timed Text Style Guide, General Requirements: at most 42 characters a line for Latin,
  Cyrillic, Greek, Arabic and Indic scripts; at most 2 lines; a cue at most 7 seconds; adult
  reading speed up to 20 characters a second; line breaks after punctuation and before
  conjunctions, never inside a word.
- Netflix Timed Text Style Guide, Simplified Chinese / Japanese pages: 16 (zh) and 13 (ja)
  characters a line; reading speed 9 (zh) and 4 (ja) characters a second. We use 16 and 9 for
  every unspaced script (a single figure: Japanese scripts here are read aloud at speaking pace,
  which the Japanese figure, made for translated subtitles, would fail).
- BBC Subtitle Guidelines, "Timing": a subtitle should stay long enough to be read, not shorter
  than about 0.3 s a word; we use issue 24's floor of 1 s a cue.
"""

from __future__ import annotations

from dataclasses import dataclass

from sonic_model.captions.align import TimedToken
from sonic_model.captions.formats import Cue
from sonic_model.captions.text import display_width, is_unspaced, join_tokens


@dataclass(frozen=True)
class CaptionRules:
    max_line_chars: int
    max_lines: int = 2  # Netflix, BBC
    min_cue_s: float = 1.0  # issue 24 (BBC: readable; Netflix: 5/6 s minimum)
    max_cue_s: float = 7.0  # Netflix: 7 seconds
    max_chars_per_s: float = 20.0  # Netflix adult reading speed
    max_silence_s: float = 1.0  # issue 24: no cue stays up over more than 1 s of silence


LATIN_RULES = CaptionRules(max_line_chars=42)  # Netflix: 42 characters a line
UNSPACED_RULES = CaptionRules(max_line_chars=16, max_chars_per_s=9.0)  # Netflix zh: 16 a line, 9 a second


def rules_for(tokens: list[TimedToken]) -> CaptionRules:
    """CJK/Thai rules when most of the script's characters are unspaced, else the Latin-script rules."""
    unspaced = sum(1 for timed in tokens for c in timed.token.text if is_unspaced(c))
    total = sum(len(timed.token.text) for timed in tokens) or 1
    return UNSPACED_RULES if unspaced * 2 > total else LATIN_RULES


def split_lines(tokens: list[TimedToken], rules: CaptionRules) -> list[str] | None:
    """The cue's text in at most `max_lines` lines of at most `max_line_chars`, or None if it does not fit.

    Two lines break after punctuation where that fits, else where the lines are most even
    (Netflix: keep the lines balanced, break after punctuation).
    """
    plain = [timed.token for timed in tokens]
    whole = join_tokens(plain)
    if display_width(whole) <= rules.max_line_chars:
        return [whole]
    if rules.max_lines < 2:
        return None
    best: tuple[float, list[str]] | None = None
    for cut in range(1, len(plain)):
        top, bottom = join_tokens(plain[:cut]), join_tokens(plain[cut:])
        top_width, bottom_width = display_width(top), display_width(bottom)
        if top_width > rules.max_line_chars or bottom_width > rules.max_line_chars:
            continue
        score = abs(top_width - bottom_width) - (12 if plain[cut - 1].ends_phrase else 0)
        if best is None or score < best[0]:
            best = (score, [top, bottom])
    return None if best is None else best[1]


def build_cues(tokens: list[TimedToken], rules: CaptionRules | None = None) -> list[Cue]:
    """Greedy cues: a token joins the cue unless the text would not fit, the cue would pass 7 s, a pause
    over `max_silence_s` lies before it, or the cue already ends a sentence; an overfull cue is cut
    at its last phrase end in its second half (never inside a word: tokens are whole words)."""
    if not tokens:
        return []
    rules = rules or rules_for(tokens)
    groups: list[list[TimedToken]] = []
    current: list[TimedToken] = []
    for timed in tokens:
        if current:
            previous = current[-1]
            pause = timed.start - previous.end
            candidate = current + [timed]
            too_long = timed.end - current[0].start > rules.max_cue_s
            too_wide = split_lines(candidate, rules) is None
            sentence_done = previous.token.ends_sentence and previous.end - current[0].start >= rules.min_cue_s
            if pause > rules.max_silence_s or sentence_done or too_long or too_wide:
                if too_long or too_wide:
                    cut = _phrase_cut(current)
                    groups.append(current[:cut])
                    current = current[cut:]
                    if current and (pause > rules.max_silence_s or split_lines(current + [timed], rules) is None):
                        groups.append(current)
                        current = []
                else:
                    groups.append(current)
                    current = []
        current.append(timed)
    groups.append(current)
    return _timed_cues(groups, rules)


def _phrase_cut(group: list[TimedToken]) -> int:
    for index in range(len(group) - 1, len(group) // 2 - 1, -1):
        if index > 0 and group[index - 1].token.ends_phrase:
            return index
    return len(group)


def _timed_cues(groups: list[list[TimedToken]], rules: CaptionRules) -> list[Cue]:
    cues: list[Cue] = []
    for index, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        next_start = groups[index + 1][0].start if index + 1 < len(groups) else None
        # Too short or too fast to read: stay up a little into the pause after it (never onto the
        # next cue, never more than max_silence_s past the speech).
        width = display_width(join_tokens([timed.token for timed in group]))
        wanted = max(rules.min_cue_s, width / rules.max_chars_per_s)
        if end - start < wanted:
            limit = end + rules.max_silence_s * 0.9
            if next_start is not None:
                limit = min(limit, next_start)
            end = max(end, min(start + wanted, limit))
        lines = split_lines(group, rules) or [join_tokens([timed.token for timed in group])]
        cues.append(Cue(round(start, 3), round(end, 3), tuple(lines)))
    return cues
