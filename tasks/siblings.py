"""The other rows of each row's item: what its captions QA measures its audio against.

A catalog item (`collection`, `item_id`) is said in many languages, one row each; the mistake a
catalog makes most is a swap among them (`sonic_model/captions/swaps.py`). A row's siblings are
the other rows of its item that have a script, in manifest order. Rows without an `item_id` have
none. Taken from the whole manifest, before a run narrows it (`rerun` of one row still has its
item's other rows to compare with).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sonic_model.captions.swaps import Sibling


def siblings_by_row(rows: Iterable) -> dict[str, tuple[Sibling, ...]]:
    """{row_id: the other rows of its item with a script} for every row that has any."""
    items: dict[tuple, list] = defaultdict(list)
    for row in rows:
        if row.item_id and row.script_text:
            items[(row.collection, row.item_id)].append(row)
    siblings: dict[str, tuple[Sibling, ...]] = {}
    for members in items.values():
        if len(members) < 2:
            continue
        scripts = [Sibling(row.row_id, row.language, row.script_text) for row in members]
        for row in members:
            siblings[row.row_id] = tuple(sibling for sibling in scripts if sibling.row_id != row.row_id)
    return siblings
