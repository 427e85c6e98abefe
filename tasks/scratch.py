"""Scratch storage: where a rendered video waits between its render and its QA and publishing.

In one process the render leaves the video (and the exact inputs it was made from) in a local
temporary directory. On a cluster QA and publish may run on another machine, so the render
task copies them under `<catalog>/_runs/<run_id>/scratch/<key>/<attempt>/` (any fsspec URL,
`upload_to_scratch`). `localized` hands QA/publish local paths (in place on a shared disk, a
temporary download from an object store), `discard_scratch` removes one row's scratch once it
is published or rejected, and `remove_tree` the whole run's scratch at the end (with whatever
attempts of dead workers left behind).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from tasks.records import RenderedVideo
from tasks.storage import _local_path, is_local


def join_uri(base: str, *parts: str) -> str:
    """`base/part/part`, each part without its own leading or trailing slashes."""
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def _fs(url: str):
    """(filesystem, path on it, whether it is this machine's disk) for a scratch URL."""
    from fsspec.core import url_to_fs

    if is_local(url):
        import fsspec

        return fsspec.filesystem("file"), os.path.abspath(_local_path(url)), True
    fs, path = url_to_fs(url)
    return fs, path, False


def upload_to_scratch(scratch_uri: str, files: dict[str, Path]) -> tuple[str, ...]:
    """Copy local `files` (name -> path) into the folder `scratch_uri`; their new locations."""
    fs, root, local = _fs(scratch_uri)
    fs.makedirs(root, exist_ok=True)
    locations = []
    for name, path in files.items():
        target = f"{root}/{name}"
        fs.put_file(str(path), target)
        locations.append(target if local else join_uri(scratch_uri, name))
    return tuple(locations)


def _is_here(location: str) -> bool:
    return is_local(location) and Path(_local_path(location)).is_file()


@contextlib.contextmanager
def localized(rendered: RenderedVideo) -> Iterator[RenderedVideo]:
    """`rendered` with local file paths: in place when they are on this machine's filesystem
    (one process, or a shared catalog disk), else downloaded to a temporary directory that is
    removed on exit. The scratch itself is left alone (see `discard_scratch`)."""
    wanted = (
        rendered.video_path,
        rendered.portrait_path,
        rendered.audio_path,
        *(r["path"] for r in rendered.renditions),
    )
    if all(_is_here(location) for location in wanted):
        yield rendered
        return
    import fsspec

    download = Path(tempfile.mkdtemp(prefix="sonic-scratch-"))
    try:
        local = []
        for location in wanted:
            if _is_here(location):
                local.append(location)
                continue
            target = download / location.rstrip("/").rsplit("/", 1)[-1]
            with fsspec.open(location, "rb") as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            local.append(str(target))
        renditions = tuple(
            {**rendition, "path": path} for rendition, path in zip(rendered.renditions, local[3:], strict=False)
        )
        yield replace(rendered, video_path=local[0], portrait_path=local[1], audio_path=local[2], renditions=renditions)
    finally:
        shutil.rmtree(download, ignore_errors=True)


def discard_scratch(rendered: RenderedVideo) -> None:
    """Remove a rendered row's scratch (its shared-storage attempt folder, or local directory)."""
    if rendered.scratch_uri:
        remove_tree(rendered.scratch_uri)
        return
    shutil.rmtree(Path(rendered.video_path).parent, ignore_errors=True)


def remove_tree(url: str) -> None:
    """Delete a scratch folder (any fsspec URL); a missing one is fine."""
    fs, root, local = _fs(url)
    if local:
        shutil.rmtree(root, ignore_errors=True)
        return
    try:
        if fs.exists(root):
            fs.rm(root, recursive=True)
    except (FileNotFoundError, OSError):
        pass
