"""Table validation speed: a generated 100,000-row manifest through `validate_table`.

Media probes are excluded (they open files); the URI allow-list and root checks are included.
1% of the rows carry a fault so the quarantine path is exercised too. Target: <= 10 s.

    .venv/bin/python benchmarks/validate_table.py [ROWS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.schema import read_manifest  # noqa: E402
from tasks.table import validate_table  # noqa: E402

TARGET_S = 10.0


def make_manifest(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    languages = np.array(["en", "es", "fr", "de", "zh-Hans", "pt-BR", "ja", "es-419"])
    frame = pd.DataFrame(
        {
            "row_id": [f"row-{i:06d}" for i in range(rows)],
            "portrait_uri": [f"media/presenter_{i % 50}.jpg" for i in range(rows)],
            "audio_uri": [f"media/script_{i}.wav" for i in range(rows)],
            "language": languages[rng.integers(0, len(languages), rows)],
            "consent_ref": [f"release/2026/presenter-{i % 50:03d}" for i in range(rows)],
            "duration_s": rng.uniform(2, 60, rows).round(2),
            "collection": "course-101",
            "item_id": [f"lesson-{i // 10}" for i in range(rows)],
            "title": [f"Lesson {i // 10}, part {i % 10}" for i in range(rows)],
            "seed": pd.array(rng.integers(0, 1000, rows), dtype="Int64"),
            "dynamic_scale": rng.uniform(0.5, 2.0, rows).round(2),
        }
    )
    bad = rng.choice(rows, rows // 100, replace=False)
    frame.loc[bad[0::4], "consent_ref"] = None
    frame.loc[bad[1::4], "language"] = "english"
    frame.loc[bad[2::4], "portrait_uri"] = "http://example.com/p.jpg"
    frame.loc[bad[3::4], "seed"] = -1
    return frame


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.parquet"
        make_manifest(rows).to_parquet(path)
        started = time.perf_counter()
        frame = read_manifest(path)
        read_s = time.perf_counter() - started
        validate_table(frame.head(10))  # warm-up: GX context and suite creation happen once per process
        started = time.perf_counter()
        good, quarantined = validate_table(frame)
        validate_s = time.perf_counter() - started
    print(
        f"validate_table: {rows} rows in {validate_s:.2f} s ({validate_s / rows * 1e6:.1f} us/row; "
        f"{len(good)} good, {len(quarantined)} quarantined); read_manifest {read_s:.2f} s; "
        f"target <= {TARGET_S:.0f} s: {'met' if validate_s <= TARGET_S else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
