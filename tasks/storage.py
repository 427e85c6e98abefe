"""The one storage layer: every read of manifest media goes through fsspec and through here.

Three rules, because manifests are written by people and scripts we do not control:
- only URIs whose scheme is on an allow-list are opened (default: local paths, file, memory,
  s3, gs; never http/ftp, which would let a manifest make us fetch arbitrary URLs);
- only objects inside the allowed roots are read (default, chosen by the caller: the
  manifest's own directory tree); `..` escapes and symlinks resolving outside are refused;
- credentials come from the environment / fsspec configuration only. A URI carrying
  `user:password@` is refused, and no message ever repeats a credential or a query string.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from sonic_model.errors import MediaNotFoundError, MediaTooLargeError, StorageReadError, UriNotAllowedError

# "" stands for a plain local path (no scheme).
DEFAULT_ALLOWED_SCHEMES = ("", "file", "memory", "s3", "gs")
# Schemes that name the same filesystem as a plain local path.
LOCAL_SCHEMES = ("", "file", "local")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_CONTROL = re.compile(r"[\x00-\x1f]")
READ_CHUNK = 1 << 20


def uri_scheme(uri: str) -> str:
    """'s3' for s3://b/k, '' for a plain path (also a Windows drive path), lower case."""
    match = _SCHEME.match(uri)
    if match:
        return match.group(1).lower()
    if _DRIVE.match(uri):
        return ""
    # "mailto:x" / "data:..." style: a scheme without "//" is still a scheme, not a path.
    head = uri.split("/", 1)[0]
    if ":" in head and re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", head):
        return head.split(":", 1)[0].lower()
    return ""


def redact(uri: str) -> str:
    """The URI safe to print: user info (credentials) and query/fragment (signed tokens) removed."""
    uri = str(uri)
    if not _SCHEME.match(uri):
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    suffix = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{suffix}"


def check_uri_allowed(
    uri: str,
    allowed_schemes: Iterable[str] = DEFAULT_ALLOWED_SCHEMES,
    allowed_roots: Iterable[str] | None = None,
    *,
    realpath_cache: dict[str, str] | None = None,
) -> str:
    """Return the normalised URI when it may be read; raise `UriNotAllowedError` otherwise.

    `uri` must already be resolved (absolute; see `manifests.resolve_uri`). `allowed_roots` are
    URLs or local directories; the object must lie inside one of them, after resolving `..` and,
    for local files, symlinks. `None` checks the scheme only: callers reading manifest media pass
    the manifest's directory (what `default_roots` returns), so the default there is that tree.

    `realpath_cache` (a dict the caller keeps for one batch) remembers resolved directories, so
    checking 100,000 files in a few folders costs one `lstat` per file instead of one per path
    component; do not keep it across batches (a folder could become a symlink in between).
    """
    uri = str(uri)
    if not uri.strip():
        raise UriNotAllowedError("URI is empty")
    if _CONTROL.search(uri):
        raise UriNotAllowedError(f"URI contains control characters: {uri!r}")
    if "::" in uri:
        # fsspec reads "a::b" as a chain of filesystems (e.g. a local name wrapping a remote one).
        raise UriNotAllowedError(
            f"chained fsspec URLs ('::') are not allowed ({redact(uri)}); give one plain URL or path"
        )
    allowed = {scheme.lower().rstrip(":/") for scheme in allowed_schemes}
    scheme = uri_scheme(uri)
    if scheme not in allowed:
        shown = ", ".join(sorted(s or "local paths" for s in allowed))
        raise UriNotAllowedError(
            f"URI scheme {scheme!r} is not allowed ({redact(uri)}); allowed: {shown}. "
            "Copy the file to allowed storage or extend the allow-list"
        )
    if scheme and "@" in urlsplit(uri).netloc:
        raise UriNotAllowedError(
            f"URI carries credentials ({redact(uri)}); put credentials in the environment or fsspec "
            "configuration, never in the manifest"
        )
    if scheme not in LOCAL_SCHEMES:
        # Object stores do not resolve "..", but fsspec's path handling sometimes does: refuse
        # them outright rather than guess which object would be read.
        segments = (urlsplit(uri).netloc + urlsplit(uri).path).split("/")
        if ".." in segments:
            raise UriNotAllowedError(f"URI contains a '..' segment ({redact(uri)}); write the object's full path")
    normalised = _normalise(uri, scheme)
    if allowed_roots is None:
        return normalised
    roots = [_normalise(str(root), uri_scheme(str(root))) for root in allowed_roots]
    if scheme in LOCAL_SCHEMES:
        lexical = _local_path(normalised)
        if not any(_inside(lexical, _local_path(root)) for root in roots if uri_scheme(root) in LOCAL_SCHEMES):
            raise UriNotAllowedError(
                f"path {lexical} is outside the allowed roots ({', '.join(redact(r) for r in roots)}); "
                "keep media under the manifest's directory or add its folder to the allowed roots"
            )
        real = _realpath(lexical, realpath_cache)
        real_roots = [
            _realpath_of_folder(_local_path(root), realpath_cache)
            for root in roots
            if uri_scheme(root) in LOCAL_SCHEMES
        ]
        if not any(_inside(real, root) for root in real_roots):
            raise UriNotAllowedError(
                f"path {lexical} is a symlink (or under one) resolving to {real}, outside the allowed roots; "
                "copy the file itself into the manifest's directory"
            )
        return normalised
    if not any(uri_scheme(root) == scheme and _inside(normalised, root, sep="/") for root in roots):
        raise UriNotAllowedError(
            f"{redact(normalised)} is outside the allowed roots ({', '.join(redact(r) for r in roots)}); "
            "keep media under the manifest's location or add its prefix to the allowed roots"
        )
    return normalised


def _realpath(path: str, cache: dict[str, str] | None) -> str:
    """os.path.realpath, with the parent directory's resolution cached when `cache` is given."""
    if cache is None or os.path.islink(path):
        return os.path.realpath(path)
    parent, name = os.path.split(path)
    real_parent = cache.get(parent)
    if real_parent is None:
        real_parent = cache[parent] = os.path.realpath(parent)
    return os.path.join(real_parent, name)


def _realpath_of_folder(folder: str, cache: dict[str, str] | None) -> str:
    """os.path.realpath of a folder (an allowed root), once per batch when `cache` is given."""
    if cache is None:
        return os.path.realpath(folder)
    real = cache.get(folder)
    if real is None:
        real = cache[folder] = os.path.realpath(folder)
    return real


def default_roots(manifest_url: str) -> list[str]:
    """The default allowed root: the directory holding the manifest (and everything below it)."""
    manifest_url = str(manifest_url)
    scheme = uri_scheme(manifest_url)
    if scheme in LOCAL_SCHEMES:
        return [os.path.dirname(os.path.abspath(_local_path(manifest_url)))]
    return [manifest_url.rsplit("/", 1)[0]]


def _normalise(uri: str, scheme: str) -> str:
    if scheme in LOCAL_SCHEMES:
        return os.path.normpath(os.path.abspath(_local_path(uri)))
    parts = urlsplit(uri)
    path = posixpath.normpath(parts.path) if parts.path else ""
    if path == ".":
        path = ""
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{path}"


def _local_path(uri: str) -> str:
    if uri.lower().startswith("file://"):
        return uri[len("file://") :] or "/"
    if uri.lower().startswith("local://"):
        return uri[len("local://") :] or "/"
    return uri


def _inside(path: str, root: str, sep: str = os.sep) -> bool:
    root = root.rstrip(sep) if root not in (sep, f"{uri_scheme(root)}://") else root
    return path == root or path.startswith(root if root.endswith(sep) else root + sep)


def is_local(uri: str) -> bool:
    return uri_scheme(str(uri)) in LOCAL_SCHEMES


def read_bytes(uri: str, max_bytes: int) -> bytes:
    """All bytes of the object at `uri` (local path or fsspec URL), refusing more than `max_bytes`.

    The size is checked before reading when the filesystem reports it, and the read stops at
    `max_bytes + 1` otherwise, so a huge object never fills memory. Does not check the
    allow-list: call `check_uri_allowed` first.
    """
    import fsspec

    uri = str(uri)
    try:
        if is_local(uri):
            # Never let fsspec parse a local name: "::" or a glob in it must stay literal.
            fs, path = fsspec.filesystem("file"), os.path.abspath(_local_path(uri))
        else:
            fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        raise StorageReadError(f"cannot open {redact(uri)}: {exc}") from None
    try:
        if fs.isdir(path):
            raise StorageReadError(f"{redact(uri)} is a directory, not a file")
        try:
            size = fs.size(path)
        except FileNotFoundError:
            raise
        except Exception:  # some filesystems cannot tell; the capped read below still protects us
            size = None
        if size is not None and size > max_bytes:
            raise MediaTooLargeError(
                f"{redact(uri)} is {size / 1e6:.1f} MB, over the file-size limit of {max_bytes / 1e6:.1f} MB; "
                "use a smaller file or raise max_file_bytes"
            )
        with fs.open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise MediaNotFoundError(f"not found: {redact(uri)}") from None
    except PermissionError:
        raise StorageReadError(f"permission denied reading {redact(uri)}") from None
    except (MediaTooLargeError, StorageReadError):
        raise
    except OSError as exc:
        raise StorageReadError(f"cannot read {redact(uri)} ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise MediaTooLargeError(
            f"{redact(uri)} is over the file-size limit of {max_bytes / 1e6:.1f} MB; use a smaller file or raise "
            "max_file_bytes"
        )
    return data


def materialize(uri: str, dest_dir: str | Path) -> Path:
    """A local path holding the object's bytes, for tools that need a file (ffmpeg, PyAV).

    Local files are used in place (no copy). Remote objects are copied to `dest_dir` under a
    name derived from the URI's hash (same URI -> same file, never a manifest-chosen name),
    keeping the extension so decoders can sniff the format.
    """
    import fsspec

    uri = str(uri)
    if is_local(uri):
        path = Path(_local_path(uri))
        if not path.is_file():
            raise MediaNotFoundError(f"not found: {path}")
        return path
    suffix = posixpath.splitext(urlsplit(uri).path)[1][:10]
    if not re.fullmatch(r"(\.[A-Za-z0-9]+)?", suffix):
        suffix = ""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / (hashlib.sha256(uri.encode()).hexdigest()[:24] + suffix)
    partial = target.with_name(target.name + ".part")
    try:
        with fsspec.open(uri, "rb") as source, open(partial, "wb") as sink:
            shutil.copyfileobj(source, sink, READ_CHUNK)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        raise MediaNotFoundError(f"not found: {redact(uri)}") from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageReadError(f"cannot copy {redact(uri)} ({exc.strerror or type(exc).__name__})") from None
    os.replace(partial, target)  # atomic: a reader never sees a half-copied file
    return target
