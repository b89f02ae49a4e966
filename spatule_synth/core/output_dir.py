"""Output directories and files that are never half-written and never clobber the user's data.

* `atomic_write_bytes` writes to a temporary name in the same folder and renames it into place, so a
  file under its final name is always complete.
* `output_dir_for_run` refuses an existing non-empty directory unless ``overwrite`` is set, and even
  then only replaces a directory that spatule_synth created (it carries `MARKER_NAME`) and that
  holds none of the run's inputs; the old directory is deleted only when the new run succeeds
  (if the run is killed, the next run of the same directory that finishes deletes it).

An output directory may also be a URL (``gs://``, ``s3://``, ``memory://``: `spatule_synth.core.storage`).
Object stores have no rename, so there every file is written in one request under its final name
(`storage.put_bytes`, `storage.upload`): it appears whole or not at all. ``--overwrite`` of a URL
cannot move the old output aside: it deletes the old manifest first (so the old output no longer
looks finished), then the rest but the marker, before the new run starts; only files are deleted,
never a bucket.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import threading
from typing import IO, Iterator, Sequence

from absl import logging

from spatule_synth.core import storage

MARKER_NAME = ".spatule_synth_output"
MANIFEST_FILE = "manifest.json"  # = formats.manifest.MANIFEST_NAME (that module imports this one)


class OutputDirError(RuntimeError):
    """The output directory cannot be used as asked; the message says what to do."""


class OutputWriteError(RuntimeError):
    """Writing the output failed (disk full, file too large, no permission); the message names the
    file and says how to go on."""


def cannot_write(error: OSError) -> str:
    """``"cannot write OUT/annotations/real.record: [Errno 27] File too large"``: the file (its
    final name, not the temporary one it was being written under) and the system's reason."""
    reason = f"[Errno {error.errno}] {error.strerror}" if error.errno else str(error)
    if not error.filename:
        return f"cannot write the output: {reason}"
    folder, name = os.path.split(os.fsdecode(error.filename))
    match = _TEMPORARY_NAME.fullmatch(name)
    return f"cannot write {os.path.join(folder, match.group(1)) if match else error.filename}: {reason}"


def naming(error: OSError, path: str) -> OSError:
    """``error`` with ``path`` as its file name, if it has none (a failed ``write`` says only
    "[Errno 27] File too large"); `cannot_write` then names the file."""
    if error.filename or error.errno is None:
        return error
    named = OSError(error.errno, error.strerror, path)
    named.__cause__ = error
    return named


def atomic_write_bytes(path: str, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    ``durable=False`` skips the fsync: the file still appears whole or not at all when the process
    dies, but not necessarily after a power cut (fine for bulk images; the manifest is durable).
    """
    if storage.is_url(path):
        storage.put_bytes(path, data)
        return
    with atomic_open(path, durable) as handle:
        handle.write(data)


def write_figure(figure, path: str, dpi: int) -> None:
    """Write a matplotlib ``figure`` to ``path`` as PNG, whole or not at all (local or URL)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def atomic_open(path: str, durable: bool = True) -> Iterator[IO[bytes]]:
    """A binary file handle whose content appears under ``path`` only when the block succeeds."""
    if storage.is_url(path):
        with storage.upload(path) as handle:
            yield handle
        return
    temporary = temporary_path(path)
    try:
        handle = open(temporary, "wb")  # plain permissions (umask), unlike tempfile's private 0600
    except OSError as error:
        raise naming(error, path) from error
    try:
        with handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise naming(error, path) from error
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


_TEMPORARY_NAME = re.compile(r"\.tmp-[0-9]+-[0-9]+-(.+)")


def temporary_path(path: str) -> str:
    """A sibling name for writing ``path``: hidden, and unique per process and thread, so that
    workers writing different files never collide and a crash leaves only ``.tmp-*`` names."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}-{name}")


def check_output_dir(path: str, overwrite: bool, input_dirs: Sequence[str] = ()) -> None:
    """Raise `OutputDirError` unless `output_dir_for_run` may use ``path``; changes nothing."""
    if storage.is_url(path):
        _check_output_url(path, overwrite, input_dirs)
        return
    output = os.path.realpath(path)
    for input_dir in input_dirs:
        if _is_within(os.path.realpath(input_dir), output):
            raise OutputDirError(f"output directory {path} contains the input directory {input_dir}; "
                                 "choose an output directory that holds none of the inputs")
    if os.path.exists(output) and not os.path.isdir(output):
        raise OutputDirError(f"output directory {path} is an existing file")
    if os.path.isdir(output) and os.listdir(output):
        if not overwrite:
            raise OutputDirError(f"output directory {path} already exists and is not empty; "
                                 "pass --overwrite to replace it, or choose another --output_dir")
        if not os.path.exists(os.path.join(output, MARKER_NAME)):
            raise OutputDirError(f"output directory {path} was not created by spatule_synth "
                                 f"(no {MARKER_NAME} file in it); refusing to delete it even with "
                                 "--overwrite: remove it yourself or choose another --output_dir")


@contextlib.contextmanager
def output_dir_for_run(path: str, overwrite: bool, input_dirs: Sequence[str] = ()) -> Iterator[str]:
    """Create ``path`` (marked as ours) for the duration of a run; yields it.

    With ``overwrite``, an existing output is moved aside, deleted only once the run succeeds, and
    put back if the run fails: a failed ``--overwrite`` run never costs the previous good output.
    """
    check_output_dir(path, overwrite, input_dirs)
    if storage.is_url(path):
        with _output_url_for_run(path):
            yield path
        return
    previous = None
    if os.path.isdir(path) and os.listdir(path):
        previous = f"{path.rstrip(os.sep)}.replaced-{os.getpid()}"
        os.rename(path, previous)
    try:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, MARKER_NAME), "w", encoding="utf-8") as marker:
            marker.write("Created by spatule_synth; --overwrite may delete this directory.\n")
        yield path
    except BaseException:
        if previous is not None:
            shutil.rmtree(path, ignore_errors=True)
            os.rename(previous, path)
        raise
    if previous is not None:
        shutil.rmtree(previous)
    remove_replaced_leftovers(path)


def _check_output_url(url: str, overwrite: bool, input_dirs: Sequence[str]) -> None:
    """`check_output_dir` for a URL."""
    output = storage.canonical(url)
    for input_dir in input_dirs:
        inside = storage.canonical(input_dir)
        if inside == output or inside.startswith(output + "/"):
            raise OutputDirError(f"output directory {url} contains the input directory {input_dir}; "
                                 "choose an output directory that holds none of the inputs")
    if storage.is_file(url):
        raise OutputDirError(f"output directory {url} is an existing file")
    if not storage.is_empty_or_missing(url):
        if not overwrite:
            raise OutputDirError(f"output directory {url} already exists and is not empty; "
                                 "pass --overwrite to replace it, or choose another --output_dir")
        if not storage.exists(storage.join(url, MARKER_NAME)):
            raise OutputDirError(f"output directory {url} was not created by spatule_synth "
                                 f"(no {MARKER_NAME} file in it); refusing to delete it even with "
                                 "--overwrite: remove it yourself or choose another --output_dir")


@contextlib.contextmanager
def _output_url_for_run(url: str) -> Iterator[None]:
    """`output_dir_for_run` for a URL: an old output is deleted first, its manifest before the
    rest and its marker never (so an interrupted deletion can be started again); the marker is
    written before anything else."""
    if not storage.is_empty_or_missing(url):
        storage.remove(storage.join(url, MANIFEST_FILE))
        storage.remove_tree(url, keep=MARKER_NAME)
    storage.makedirs(url)
    storage.put_bytes(storage.join(url, MARKER_NAME),
                      b"Created by spatule_synth; --overwrite may delete this directory.\n")
    yield


def remove_replaced_leftovers(path: str) -> list[str]:
    """Delete the ``PATH.replaced-PID`` directories that `output_dir_for_run` moved aside for an
    ``overwrite`` run killed before it could delete them (a finished run of ``path`` makes them
    obsolete; only directories with our marker are touched); their paths."""
    if storage.is_url(path):
        return []  # an output URL is never moved aside
    folder, name = os.path.split(os.path.abspath(path))
    removed = []
    for entry in os.listdir(folder):
        suffix = entry[len(name):]
        leftover = os.path.join(folder, entry)
        if (entry.startswith(name) and suffix.startswith(".replaced-") and suffix[10:].isdigit()
                and os.path.exists(os.path.join(leftover, MARKER_NAME))):
            try:
                shutil.rmtree(leftover)
            except OSError as error:  # the new output is complete: only a warning
                logging.warning("%s: could not delete it (%s); delete it by hand", leftover, error)
                continue
            removed.append(leftover)
    return removed


def _is_within(child: str, parent: str) -> bool:
    return os.path.commonpath([child, parent]) == parent
