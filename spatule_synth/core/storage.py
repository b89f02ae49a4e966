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

Outputs: `put_bytes` and `upload` write an object in one request, so it appears whole or not at
all (object stores have no rename: nothing is written under a temporary name and moved). Callers
write local files through `spatule_synth.core.output_dir` (temporary name + rename), which calls
these for URLs. `visible_to_other_processes` tells a store every process sees (a bucket) from one
that lives in a single process (``memory://``): image workers write to the first directly.
"""

from __future__ import annotations

import contextlib
import functools
import glob as globbing
import hashlib
import io
import os
import posixpath
import shutil
import tempfile
from typing import IO, Iterator

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
        try:  # no listing cache: other processes (workers, other machines) add files meanwhile
            return fsspec.core.url_to_fs(url, use_listings_cache=False)
        except TypeError:  # a file system without listings to cache
            return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise StorageError(f"{url}: cannot use this file system: {error}") from None


def _named_errors(function):
    """Make the URL errors of ``function(path, ...)`` `OSError`s that name the URL: fsspec's
    back-ends raise their own types for a missing credential or an unreachable endpoint (botocore's
    ``NoCredentialsError`` is no `OSError`), which would otherwise end a run with a traceback."""
    @functools.wraps(function)
    def wrapper(path, *args, **kwargs):
        if not is_url(path):
            return function(path, *args, **kwargs)
        try:
            return function(path, *args, **kwargs)
        except OSError:
            raise
        except Exception as error:  # pylint: disable=broad-except  (each back-end has its own)
            raise StorageError(f"{path}: {type(error).__name__}: {error}") from error
    return wrapper


def join(folder: str, *names: str) -> str:
    if is_url(folder):
        return posixpath.join(folder.rstrip("/") + "/", *names)
    return os.path.join(local(folder), *names)


@_named_errors
def absolute(path: str) -> str:
    """``path`` as written in a file that another program reads: a URL as it is, a local path
    made absolute."""
    return path if is_url(path) else os.path.abspath(local(path))


@_named_errors
def glob(pattern: str) -> list[str]:
    """The paths that ``pattern`` matches (``*``, ``?``, ``[...]`` in its last part), sorted, spelt
    as the pattern's folder is (a URL keeps its protocol)."""
    if not is_url(pattern):
        return sorted(globbing.glob(local(pattern)))
    fs, inner = _filesystem(pattern)
    folder = posixpath.dirname(pattern)
    stored = fs._strip_protocol(folder).rstrip("/")  # pylint: disable=protected-access
    return sorted(folder + name[len(stored):] for name in fs.glob(inner) if name.startswith(stored + "/"))


def open_binary(path: str) -> IO[bytes]:
    """The file at ``path``, opened for reading bytes."""
    if not is_url(path):
        return open(local(path), "rb")
    fs, inner = _filesystem(path)
    try:
        return fs.open(inner, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(2, "No such file or directory", path) from None


def open_text(path: str) -> IO[str]:
    """The file at ``path`` opened as UTF-8 text, as ``open(path, encoding="utf-8")`` would."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8")


def pillow_source(path: str) -> str | IO[bytes]:
    """What ``PIL.Image.open`` takes for ``path``: the local path itself (Pillow opens and closes
    it, and names it in its errors), or the URL's bytes in memory."""
    return local(path) if not is_url(path) else io.BytesIO(read_bytes(path))


@_named_errors
def read_bytes(path: str) -> bytes:
    with open_binary(path) as handle:
        return handle.read()


@_named_errors
def is_dir(path: str) -> bool:
    if not is_url(path):
        return os.path.isdir(local(path))
    fs, inner = _filesystem(path)
    return fs.isdir(inner)


@_named_errors
def is_file(path: str) -> bool:
    if not is_url(path):
        return os.path.isfile(local(path))
    fs, inner = _filesystem(path)
    return fs.isfile(inner)


@_named_errors
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


def names_in(folder: str) -> Iterator[str]:
    """The names of the entries directly in ``folder``, streamed from a local folder (a huge
    folder is never listed in memory) and listed from a URL."""
    if not is_url(folder):
        with os.scandir(local(folder)) as entries:
            yield from (entry.name for entry in entries)
        return
    yield from _url_names_in(folder)


@_named_errors
def _url_names_in(folder: str) -> list[str]:
    fs, inner = _filesystem(folder)
    return [posixpath.basename(name.rstrip("/")) for name in fs.ls(inner, detail=False)]


@_named_errors
def canonical(path: str) -> str:
    """What every spelling of ``path`` has in common (module docstring)."""
    if not is_url(path):
        return os.path.realpath(local(path))
    fs, inner = _filesystem(path)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://{fs._strip_protocol(inner).rstrip('/')}"  # pylint: disable=protected-access


@_named_errors
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


PROCESS_LOCAL_PROTOCOLS = ("memory",)  # fsspec stores that exist only inside one process


def protocol(path: str) -> str:
    """``"gs"``, ``"s3"``, ``"memory"``...; ``"file"`` for a local path."""
    return path.partition("://")[0] if is_url(path) else "file"


def visible_to_other_processes(path: str) -> bool:
    """Whether a file written at ``path`` by one process can be read by another (false only for
    in-process stores such as ``memory://``)."""
    return protocol(path) not in PROCESS_LOCAL_PROTOCOLS


@_named_errors
def exists(path: str) -> bool:
    if not is_url(path):
        return os.path.exists(local(path))
    fs, inner = _filesystem(path)
    return fs.exists(inner)


@_named_errors
def put_bytes(url: str, data: bytes) -> None:
    """Write ``data`` as the object ``url`` in one request (whole or not at all)."""
    fs, inner = _filesystem(url)
    fs.pipe_file(inner, data)


def put_file(local_path: str, url: str) -> None:
    """Send the local file to ``url`` in one request."""
    _put_file(url, local_path)


@_named_errors
def _put_file(url: str, local_path: str) -> None:
    fs, inner = _filesystem(url)
    fs.put_file(local_path, inner)


@_named_errors
def create_exclusive(url: str, data: bytes) -> bool:
    """Write the object ``url`` only if it does not exist yet, in one request; whether it was
    written. Stores that cannot refuse an existing object (the back-end does not take fsspec's
    ``mode="create"``) are written unconditionally: the caller reads the object back."""
    fs, inner = _filesystem(url)
    try:
        fs.pipe_file(inner, data, mode="create")
    except FileExistsError:
        return False
    except (TypeError, NotImplementedError):
        fs.pipe_file(inner, data)
    return True


@contextlib.contextmanager
def upload(url: str) -> Iterator[IO[bytes]]:
    """A binary handle on a local scratch file, sent to ``url`` in one request when the block
    succeeds (for outputs too large to hold in memory: shards, the manifest); nothing is sent if
    it fails."""
    with tempfile.NamedTemporaryFile(prefix="spatule_synth_upload_") as handle:
        yield handle
        handle.flush()
        put_file(handle.name, url)


@_named_errors
def makedirs(path: str) -> None:
    """Create the folder ``path`` (and its parents); object stores need none, so URLs only get a
    folder where the store keeps them."""
    if not is_url(path):
        os.makedirs(local(path), exist_ok=True)
        return
    fs, inner = _filesystem(path)
    fs.makedirs(inner, exist_ok=True)


@_named_errors
def remove(path: str) -> None:
    """Delete the file ``path``; a missing file is no error."""
    if not is_url(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local(path))
        return
    fs, inner = _filesystem(path)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(inner)


@_named_errors
def remove_tree(path: str, keep: str | None = None) -> None:
    """Delete the folder ``path`` and everything in it (on a store: every file below it, but a
    file named ``keep`` directly in it, if given; the folder or bucket itself stays); a missing
    folder is no error."""
    if not is_url(path):
        if os.path.exists(local(path)):
            shutil.rmtree(local(path))
        return
    fs, inner = _filesystem(path)
    if fs.exists(inner):  # the files only: the folder may be a bucket, which must stay as it is
        fs.rm([name for name in fs.find(inner) if keep is None or posixpath.basename(name) != keep])


@_named_errors
def files_under(folder: str) -> list[str]:
    """Every file below ``folder``, as paths relative to it (``/``-separated), sorted."""
    if not is_url(folder):
        root = local(folder)
        found = [os.path.relpath(os.path.join(base, name), root).replace(os.sep, "/")
                 for base, _, names in os.walk(root) for name in names]
        return sorted(found)
    fs, inner = _filesystem(folder)
    prefix = fs._strip_protocol(inner).rstrip("/") + "/"  # pylint: disable=protected-access
    return sorted(name[len(prefix):] for name in fs.find(inner) if name.startswith(prefix))


@_named_errors
def is_empty_or_missing(folder: str) -> bool:
    """Whether ``folder`` holds nothing (or does not exist)."""
    if not is_url(folder):
        return not os.path.isdir(local(folder)) or not os.listdir(local(folder))
    fs, inner = _filesystem(folder)
    return not fs.exists(inner) or not _holds_a_file(fs, inner)


def _holds_a_file(fs, folder: str) -> bool:
    """Whether some file lies below ``folder`` (stops at the first; empty sub-folders don't count,
    nor a listed prefix that holds nothing when listed itself, as a versioned bucket may show
    for deleted files)."""
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return False
    for entry in entries:
        if entry["type"] != "directory" or _holds_a_file(fs, entry["name"]):
            return True
    return False
