"""The catalog as a filesystem: a root on any fsspec URL with atomic writes, and its layout.

Catalog layout (any fsspec URL: local path, file://, s3://, gs://, memory://):

    <catalog>/<collection>/<language>/<row_id>.mp4    the video (the master)
    <catalog>/<collection>/<language>/<row_id>.<rendition>.mp4   each rendition (vertical, square, landscape)
    <catalog>/<collection>/<language>/<row_id>.jpg    its poster
    <catalog>/<collection>/<language>/<row_id>.json   the sidecar (written last: the commit mark)
    <catalog>/index.parquet, index.json               every published video (`tasks.catalog_index`)
    <catalog>/_state/                                 what the nightly plan remembers (`tasks.catalog_state`)
    <catalog>/_runs/<run_id>/...                      ledger, report, QA plots, rejected videos

Atomic: every object is written under a hidden temporary name in its final folder and then
moved onto its final name (a rename on local disks, a server-side copy on object stores, both
all-or-nothing), so a reader never finds half an object under a final name.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from fsspec.core import url_to_fs

from sonic_model.internals.fsspec import fs_path

INDEX_PARQUET = "index.parquet"
INDEX_JSON = "index.json"
RUNS_DIR = "_runs"


# --- the catalog as a filesystem -------------------------------------------------------------


class Catalog:
    """A catalog root on some fsspec filesystem, with atomic writes."""

    def __init__(self, url: str | os.PathLike) -> None:
        url = str(url)
        self.url = url.rstrip("/") or url
        self.fs, root = url_to_fs(self.url)
        self.local = "file" in _protocols(self.fs)
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def uri(self, path: str) -> str:
        """A URI a person (or the next run) can open: plain paths for local catalogs."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def relative(self, path: str) -> str:
        return path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path

    def exists(self, path: str) -> bool:
        try:
            return self.fs.exists(path)
        except OSError:
            return False

    def published_objects(self) -> set[str]:
        """Relative paths of every object in the catalog's published area, from one listing.

        The published area is every top-level folder except `_runs` and other `_`-folders (keys
        never start with `_` or `.`: `safe_key_part`); hidden names (`.x.partial-...`
        temporaries) are left out. One recursive listing per collection folder (on an object
        store: one paginated LIST, 1,000 keys a request) instead of a request per entry, so
        checking that 100,000 entries still have their video and sidecar costs seconds.
        """
        self.fs.invalidate_cache(self.root)  # s3fs/gcsfs cache listings: a stale one could hide a deletion
        found: set[str] = set()
        if self.local:
            if not os.path.isdir(self.root):
                return found
            for top in os.scandir(self.root):
                if top.name.startswith(("_", ".")) or not top.is_dir(follow_symlinks=False):
                    continue
                for folder, subfolders, files in os.walk(top.path):
                    subfolders[:] = [name for name in subfolders if not name.startswith(".")]
                    relative = self.relative(folder)
                    found.update(f"{relative}/{name}" for name in files if not name.startswith("."))
            return found
        try:
            top_entries = self.fs.ls(self.root, detail=True)
        except (FileNotFoundError, OSError):
            return found
        for entry in top_entries:
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if name.startswith(("_", ".")) or entry.get("type") != "directory":
                continue
            for path in self.fs.find(entry["name"]):
                relative = self.relative(fs_path(self.fs, path).rstrip("/"))
                if not any(part.startswith(".") for part in relative.split("/")):
                    found.add(relative)
        return found

    def read_json(self, path: str) -> dict | None:
        try:
            with self.fs.open(path, "rb") as handle:
                return json.loads(handle.read().decode("utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def _temporary_sibling(self, final: str) -> str:
        folder, name = final.rsplit("/", 1)
        return f"{folder}/.{name}.partial-{uuid.uuid4().hex[:12]}"

    def _discard(self, temporary: str) -> None:
        try:
            self.fs.rm(temporary)
        except (OSError, FileNotFoundError):
            pass

    def _write_atomically(self, final: str, upload) -> str:
        """Write with `upload(temporary)` beside `final`, then move it onto `final`.

        Whatever fails (the upload or the move), the temporary object is removed and the error
        re-raised, so nothing half-written is left under either name.
        """
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        temporary = self._temporary_sibling(final)
        try:
            upload(temporary)
            self.fs.mv(temporary, final)
        except BaseException:
            self._discard(temporary)
            raise
        return final

    def put_file(self, local_path: str | Path, final: str) -> str:
        """Copy a local file to `final` atomically; returns `final`."""
        return self._write_atomically(final, lambda temporary: self.fs.put_file(str(local_path), temporary))

    def write_bytes(self, data: bytes, final: str) -> str:
        """Write `data` to `final` atomically; returns `final`."""
        return self._write_atomically(final, lambda temporary: self.fs.pipe_file(temporary, data))


def withdraw(catalog: Catalog, sidecar_path: str) -> None:
    """Remove a published entry's sidecar (the video stays until it is replaced)."""
    try:
        if catalog.exists(sidecar_path):
            catalog.fs.rm(sidecar_path)
    except FileNotFoundError:
        pass


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rendition_key(prefix: str, name: str) -> str:
    """A rendition's key beside its master's: `<collection>/<language>/<row_id>.<name>`."""
    return f"{prefix}.{name}"


def published_renditions(catalog: Catalog, renditions: list[dict]) -> tuple[dict, ...]:
    """A sidecar's `renditions` as a row's outcome lists them (each published, its URI, its size)."""
    return tuple(
        {
            "name": r["name"],
            "uri": catalog.uri(catalog.path(r["video"])),
            "width": r.get("width"),
            "height": r.get("height"),
            "passed": True,
        }
        for r in renditions
    )
