"""Paths anywhere: every input may be a local path or a URL that fsspec knows (``gs://``,
``s3://``, ``hdfs://``, ``memory://`` in the tests, ...).

A local path (no ``PROTOCOL://`` prefix, or ``file://``) goes straight to ``os`` and ``open``:
local runs pay nothing for this module. A URL goes through `fsspec` (its protocol's package,
e.g. ``gcsfs`` for ``gs://``, must be installed; the error says which). Paths inside a URL folder
are joined with ``/`` and keep the folder's protocol, so a listed file can be opened as it is.

`canonical` is what two spellings of one input have in common (``os.path.realpath`` locally, the
normalised URL otherwise): the key under which inputs given twice are recognised.
`local_copy` gives a local file with a URL's bytes, downloaded once into a cache folder (the
image workers decode background photos from it).
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tempfile
from typing import IO

LOCAL_PREFIX = "file://"


class StorageError(OSError):
    """A URL whose filesystem cannot be used (unknown protocol, missing package); says which."""


def is_url(path: str) -> bool:
    """Whether ``path`` names a non-local file system (``PROTOCOL://...``, not ``file://``)."""
    head, separator, _ = path.partition("://")
    return bool(separator) and head.isidentifier() and not path.startswith(LOCAL_PREFIX)


def local(path: str) -> str:
    """``path`` without a ``file://`` prefix."""
    return path[len(LOCAL_PREFIX):] if path.startswith(LOCAL_PREFIX) else path


def _filesystem(url: str):
    import fsspec  # pylint: disable=import-outside-toplevel  (only URLs need it)

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise StorageError(f"{url}: cannot use this file system: {error}") from None


def join(folder: str, *names: str) -> str:
    if is_url(folder):
        return posixpath.join(folder.rstrip("/") + "/", *names)
    return os.path.join(local(folder), *names)


def open_binary(path: str) -> IO[bytes]:
    """The file at ``path``, opened for reading bytes."""
    if not is_url(path):
        return open(local(path), "rb")
    fs, inner = _filesystem(path)
    try:
        return fs.open(inner, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(2, "No such file or directory", path) from None


def pillow_source(path: str) -> str | IO[bytes]:
    """What ``PIL.Image.open`` takes for ``path``: the local path itself (Pillow opens and closes
    it, and names it in its errors), or the URL's bytes in memory."""
    return local(path) if not is_url(path) else io.BytesIO(read_bytes(path))


def read_bytes(path: str) -> bytes:
    with open_binary(path) as handle:
        return handle.read()


def is_dir(path: str) -> bool:
    if not is_url(path):
        return os.path.isdir(local(path))
    fs, inner = _filesystem(path)
    return fs.isdir(inner)


def is_file(path: str) -> bool:
    if not is_url(path):
        return os.path.isfile(local(path))
    fs, inner = _filesystem(path)
    return fs.isfile(inner)


def list_folder(folder: str) -> tuple[list[str], list[str]]:
    """``(files, folders)`` directly in ``folder``: full paths (URLs keep their protocol), each
    list sorted by name."""
    if not is_url(folder):
        folder = local(folder)
        names = sorted(os.listdir(folder))
        paths = [os.path.join(folder, name) for name in names]
        return [p for p in paths if os.path.isfile(p)], [p for p in paths if os.path.isdir(p)]
    fs, inner = _filesystem(folder)
    files, folders = [], []
    for entry in fs.ls(inner, detail=True):
        name = posixpath.basename(entry["name"].rstrip("/"))
        (folders if entry["type"] == "directory" else files).append(join(folder, name))
    return sorted(files), sorted(folders)


def canonical(path: str) -> str:
    """What every spelling of ``path`` has in common (module docstring)."""
    if not is_url(path):
        return os.path.realpath(local(path))
    fs, inner = _filesystem(path)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://{fs._strip_protocol(inner).rstrip('/')}"  # pylint: disable=protected-access


def signature(path: str) -> tuple[int, str]:
    """Size and a version mark (modification time, or the store's own version tag) of a file:
    what changes when its content may have changed."""
    if not is_url(path):
        status = os.stat(local(path))
        return status.st_size, str(status.st_mtime_ns)
    fs, inner = _filesystem(path)
    info = fs.info(inner)
    mark = next((str(info[key]) for key in ("mtime", "LastModified", "updated", "etag", "ETag", "generation",
                                            "created") if info.get(key) is not None), "")
    return int(info.get("size") or 0), mark


def input_cache_dir() -> str:
    """Where `local_copy` keeps the local copies of input URLs: ``$SPATULE_SYNTH_INPUT_CACHE``, or
    ``spatule_synth_inputs`` in the system's temporary folder (copies are named by content
    version, so runs share them safely; delete the folder to free the space)."""
    return os.environ.get("SPATULE_SYNTH_INPUT_CACHE") or os.path.join(tempfile.gettempdir(),
                                                                       "spatule_synth_inputs")


def local_copy(path: str, cache_dir: str) -> str:
    """A local file with the bytes of ``path``: itself when local, else a copy in ``cache_dir``
    made once (named after the URL and its `signature`, written whole before it gets its name)."""
    if not is_url(path):
        return local(path)
    size, mark = signature(path)
    key = hashlib.sha256(f"{canonical(path)}\0{size}\0{mark}".encode("utf-8")).hexdigest()[:32]
    target = os.path.join(cache_dir, key + os.path.splitext(path)[1].lower())
    if not os.path.exists(target):
        os.makedirs(cache_dir, exist_ok=True)
        temporary = f"{target}.{os.getpid()}.part"
        with open(temporary, "wb") as handle:
            handle.write(read_bytes(path))
        os.replace(temporary, target)
    return target
