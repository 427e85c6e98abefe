"""The table suite's remembered verdicts (`_state/table-check.parquet`): one job, kept apart
from the suite itself (`tasks/table.py`), which hands in what its checks are built from.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys

from tasks.catalog import Catalog


class SuiteMemory:
    """The suite's verdicts on the last table checked for a catalog: `_state/table-check.parquet`.

    A nightly checks the same manifest night after night. The suite's verdicts depend only on
    the values of the frame it sees and on the checks themselves, so they are remembered under
    a key made of both: a SHA-256 of the pickled frame (every value with its type: `1` and
    `"1"` differ) and of what the suite is built from (`tasks/table.py`'s source, the schema's
    columns, the override ranges, the allowed schemes, the Great Expectations and Python
    versions). Any change in a value or a check gives another key, and the suite runs again.
    The checks outside the suite (URIs against the allowed roots, which depend on the
    filesystem, NaN, whole numbers, switches) run every time. Reading or writing the memory
    never fails a run: a memory that cannot be read, or does not fit the table, counts as none.
    """

    FILE = "_state/table-check.parquet"

    def __init__(self, catalog_url: str) -> None:
        self.catalog_url = catalog_url

    def _catalog(self):
        return Catalog(self.catalog_url)

    @staticmethod
    def key(frame, checks: tuple, suite_source: str) -> str | None:
        """A SHA-256 of `frame` (pickled: every value with its type), of `checks` (what the suite is
        built from) and of the suite's own source file `suite_source`; None if `frame` cannot be pickled."""
        digest = hashlib.sha256()
        try:
            with open(suite_source, "rb") as source:
                digest.update(source.read())
            digest.update(repr((checks, sys.version)).encode())  # sys.version: the regular expressions' engine
            digest.update(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:  # noqa: BLE001 - a value that cannot be pickled: no memory, the suite runs
            return None
        return digest.hexdigest()

    def recall(self, key: str, rows: int) -> list[tuple[str, list[int]]] | None:
        import pyarrow.parquet as pq

        try:
            catalog = self._catalog()
            with catalog.fs.open(catalog.path(self.FILE), "rb") as handle:
                table = pq.read_table(handle, pre_buffer=False)
            if (table.schema.metadata or {}).get(b"key") != key.encode():
                return None
            failures = [
                (str(reason_id), [int(p) for p in positions])
                for reason_id, positions in zip(
                    table.column("reason_id").to_pylist(), table.column("positions").to_pylist(), strict=True
                )
            ]
        except Exception:  # noqa: BLE001 - none yet, unreadable or malformed: the suite runs
            return None
        if any(":" not in reason_id or not all(0 <= p < rows for p in positions) for reason_id, positions in failures):
            return None
        return failures

    def remember(self, key: str, failures: list[tuple[str, list[int]]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            catalog = self._catalog()
            table = pa.table(
                {
                    "reason_id": pa.array([reason_id for reason_id, _ in failures], pa.string()),
                    "positions": pa.array([positions for _, positions in failures], pa.list_(pa.int64())),
                },
                metadata={"key": key},
            )
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            catalog.write_bytes(buffer.getvalue(), catalog.path(self.FILE))
        except Exception:  # noqa: BLE001 - best effort: the next run checks the table again
            pass
