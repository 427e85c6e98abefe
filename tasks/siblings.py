"""The rows whose scripts a row's captions QA measures its audio against (its siblings).

A catalog item (`collection`, `item_id`) is said in many languages, one row each; the mistake a
catalog makes most is a swap among them (`sonic_model/captions/swaps.py`). The other is a file
list one off within a language: a row given the audio of the row next to it. A row's siblings
are the other rows of its item that have a script (at most `MAX_SIBLINGS`, in manifest order),
then its neighbours: the nearest `NEIGHBOURS` rows before it and after it, in manifest order,
among the rows of its collection in its language with a script, of another item (or none).
Taken from the whole manifest, before a run narrows it (`rerun` of one row still has its item's
other rows and its neighbours to compare with).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sonic_model.captions.languages import primary_language
from sonic_model.captions.swaps import MAX_SIBLINGS, NEIGHBOURS, Sibling


def siblings_by_row(rows: Iterable) -> dict[str, tuple[Sibling, ...]]:
    """{row_id: its item's other rows with a script, then its neighbours} for every row that has any."""
    items: dict[tuple, list] = defaultdict(list)
    languages: dict[tuple, list] = defaultdict(list)
    for row in rows:
        if not row.script_text:
            continue
        if row.item_id:
            items[(row.collection, row.item_id)].append(row)
        languages[(row.collection, primary_language(row.language))].append(row)
    as_sibling = {
        row.row_id: Sibling(row.row_id, row.language, row.script_text)
        for members in languages.values()
        for row in members
    }
    siblings: dict[str, list[Sibling]] = defaultdict(list)
    for members in items.values():
        if len(members) > 1:
            scripts = [as_sibling[row.row_id] for row in members]
            for row in members:
                siblings[row.row_id] += [sibling for sibling in scripts if sibling.row_id != row.row_id][:MAX_SIBLINGS]
    for members in languages.values():
        for index, row in enumerate(members):
            siblings[row.row_id] += [as_sibling[other.row_id] for other in _neighbours(members, index)]
    return {row_id: tuple(found) for row_id, found in siblings.items() if found}


def _neighbours(members: list, index: int) -> list:
    """The nearest `NEIGHBOURS` rows before `members[index]` and after it that are not of its item
    (scanned outwards: a language of a 100,000-row collection is not copied for each row)."""
    row = members[index]

    def nearest(positions: range) -> list:
        found = []
        for position in positions:
            other = members[position]
            if not row.item_id or other.item_id != row.item_id:
                found.append(other)
                if len(found) == NEIGHBOURS:
                    break
        return found

    return [*reversed(nearest(range(index - 1, -1, -1))), *nearest(range(index + 1, len(members)))]
