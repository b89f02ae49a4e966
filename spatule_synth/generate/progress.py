"""A generation run's progress on disk: what makes it crash-safe and resumable.

Images are written in *chunks* (consecutive indices of one split that share a background photo).
A chunk is finished when its *part file* exists: ``OUT/.progress/parts/SPLIT/START.pickle`` holds,
for each of its images, everything the parent needs besides the JPEG on disk (the example's
fields, the manifest entry, the COCO annotations). Workers write the chunk's images first and its
part file last, each through a temporary name and a rename, so after a crash or ``kill -9`` every
part file on disk stands for complete images, and every other chunk is simply written again (with
the same bytes: each image depends only on the flags, the inputs, its split and its index).

The shards, the per-image manifest lines and the COCO files are assembled from the part files in
index order (`spatule_synth.generate.run`), so a resumed run writes exactly what an uninterrupted
run writes. ``OUT/.progress/run.json`` records the settings and a fingerprint of the inputs; a
resume with other flags or changed inputs is refused. ``OUT/.progress/lock`` is held (``flock``)
by the run that writes the directory. The progress folder is deleted once the manifest is written.

On an object store (``--output_dir=gs://...``: `spatule_synth.core.storage`) the same holds without
renames: every image and part file is written in one request under its final name, so it exists
whole or not at all, and the manifest, written last, is still what says the run finished. The lock
is then a *lease*: ``OUT/.progress/lock``, created only if absent (where the store can refuse an
existing object; S3 and the memory store can), names the machine and process writing the run
(`this_process`). A lease left by a process of this machine that is gone (killed) is taken over; one
from another machine (or container) is honoured until deleted by hand (the error says so), since
this machine cannot tell whether that run lives.

Guarantee: a process crash or kill loses nothing that was finished (workers die with the main
process: `spatule_synth.generate.execute`). Images and part files are not ``fsync``-ed one by one (that
would cost much of the speed); a part file cut short by a power cut is detected when it is read,
deleted and reported, and the next resume writes its chunk again. ``run.json`` also records the
package versions: a resume under other versions is refused, since it could mix their bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import pickle
import socket
import uuid
from typing import Any, Iterable, Iterator

from absl import logging

from spatule_synth.formats.manifest import MANIFEST_NAME, package_versions
from spatule_synth.core.output_dir import MARKER_NAME, OutputDirError, atomic_write_bytes
from spatule_synth.core import storage

PROGRESS_DIR = ".progress"
RUN_FILE = "run.json"
JOBS_FILE = "jobs.pickle"  # what the workers need (settings, split pools): see `write_jobs`
LOCK_FILE = "lock"
TEMPORARY_PREFIX = ".tmp-"  # `spatule_synth.core.output_dir.temporary_path` names


@dataclasses.dataclass(frozen=True, order=True)
class Chunk:
    """Images ``start .. stop-1`` of ``split``: the unit of work and of resumption."""

    split: str
    start: int
    stop: int


def split_chunks(split: str, count: int, block: int) -> list[Chunk]:
    """``count`` images in chunks of ``block`` (one background photo's windows each)."""
    return [Chunk(split, start, min(start + block, count)) for start in range(0, count, block)]


class Progress:
    """The ``OUT/.progress`` folder of a run."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.folder = storage.join(output_dir, PROGRESS_DIR)
        # where the parent's scratch files go: beside the run on a local disk, else the system's
        self.scratch_dir = None if storage.is_url(output_dir) else self.folder

    def path(self, name: str) -> str:
        return storage.join(self.folder, name)

    def part_path(self, chunk: Chunk) -> str:
        return storage.join(self.folder, "parts", chunk.split, f"{chunk.start:09d}.pickle")

    def is_done(self, chunk: Chunk) -> bool:
        return storage.exists(self.part_path(chunk))

    def write_part(self, chunk: Chunk, images: list[Any]) -> None:
        """Mark ``chunk`` finished (call after its images are on disk)."""
        atomic_write_bytes(self.part_path(chunk), pickle.dumps(images, pickle.HIGHEST_PROTOCOL),
                           durable=False)

    def write_jobs(self, jobs: Any) -> str:
        """Store what every worker needs to write any chunk (pickled once, read once per worker,
        instead of being sent to each worker or with each chunk); its absolute path."""
        path = self.path(JOBS_FILE)
        path = path if storage.is_url(path) else os.path.abspath(path)
        atomic_write_bytes(path, pickle.dumps(jobs, pickle.HIGHEST_PROTOCOL), durable=False)
        return path

    def read_part(self, chunk: Chunk) -> list[Any]:
        """The chunk's images; a damaged part file (cut short by a power cut: parts are not
        fsync-ed) is deleted and reported with `OutputDirError`, so the next resume rewrites it."""
        path = self.part_path(chunk)
        with storage.open_binary(path) as handle:
            try:
                return pickle.load(handle)
            except (EOFError, pickle.UnpicklingError, ValueError, AttributeError, ImportError,
                    IndexError, TypeError) as error:
                damage = f"{type(error).__name__}: {error}"
        storage.remove(path)
        raise OutputDirError(f"{path}: damaged ({damage}; cut short by a power cut?); it has been "
                             "deleted: rerun with --resume to write that chunk again")

    def finished_images(self) -> dict[str, int]:
        """Images finished so far, per split: the chunks of ``run.json`` whose part file exists."""
        counts: dict[str, int] = {}
        state = self.read_run_file()
        for split, chunks in state.get("chunks", {}).items():
            counts[split] = sum(stop - start for start, stop in chunks
                                if self.is_done(Chunk(split, start, stop)))
        return counts

    def read_run_file(self) -> dict:
        """``run.json``; `OutputDirError` if it cannot be read as one."""
        path = self.path(RUN_FILE)
        try:
            run = json.loads(storage.read_bytes(path).decode("utf-8"))
            if not isinstance(run, dict) or not isinstance(run.get("config"), dict):
                raise ValueError("not a run description")
            return run
        except (OSError, ValueError) as error:
            raise OutputDirError(f"{path}: unreadable ({error}), so the interrupted run cannot be "
                                 "resumed: pass --overwrite instead of --resume to start again") from None

    def create(self, run: dict, splits: Iterable[str]) -> None:
        for split in splits:
            storage.makedirs(storage.join(self.folder, "parts", split))
        atomic_write_bytes(self.path(RUN_FILE), json.dumps(run, indent=1).encode("utf-8"))

    def exists(self) -> bool:
        return storage.exists(self.path(RUN_FILE))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock; `OutputDirError` if another run holds it."""
        if storage.is_url(self.output_dir):
            with self._leased():
                yield
            return
        try:
            handle = open(self.path(LOCK_FILE), "a+b")
        except FileNotFoundError:
            raise OutputDirError(f"output directory {self.output_dir} was finished or removed by "
                                 "another spatule_synth run meanwhile; run the command again") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise OutputDirError(f"output directory {self.output_dir} is being written by "
                                     "another spatule_synth run; wait for it to end") from None
            yield
        finally:
            handle.close()

    @contextlib.contextmanager
    def _leased(self) -> Iterator[None]:
        """`locked` on an object store: the lease of the module docstring."""
        if not self.exists():
            raise OutputDirError(f"output directory {self.output_dir} was finished or removed by "
                                 "another spatule_synth run meanwhile; run the command again")
        path = self.path(LOCK_FILE)
        lease = {**this_process(), "token": uuid.uuid4().hex}
        data = json.dumps(lease).encode("utf-8")
        if not storage.create_exclusive(path, data):
            holder = _read_lease(path)
            if holder is not None and not _lease_is_stale(holder):
                raise OutputDirError(
                    f"output directory {self.output_dir} is being written by another spatule_synth "
                    f"run (process {holder.get('pid')} on {holder.get('host')}, says {path}); wait "
                    "for it to end, or delete that file if no such run is alive")
            if _read_lease(path) == holder:  # its holder is gone: take the lease over
                storage.remove(path)
            if not storage.create_exclusive(path, data):
                raise OutputDirError(f"output directory {self.output_dir} is being written by "
                                     "another spatule_synth run that started at the same moment; "
                                     "wait for it to end")
        if _read_lease(path) != lease:  # a store that cannot refuse an existing object
            raise OutputDirError(f"output directory {self.output_dir} is being written by another "
                                 "spatule_synth run that started at the same moment; wait for it to end")
        _HELD_LEASES.add(lease["token"])
        try:
            yield
        finally:
            _HELD_LEASES.discard(lease["token"])
            if _read_lease(path) == lease:
                storage.remove(path)

    def remove(self) -> None:
        """Delete the progress folder (once the manifest is written, outside `locked`): a failure
        is only a warning, since the output is complete."""
        try:
            storage.remove_tree(self.folder)
        except OSError as error:
            logging.warning("%s: could not delete it (%s); the output is complete, delete it by hand",
                            self.folder, error)


_HELD_LEASES: set[str] = set()  # the tokens of the leases this process holds now


def this_process() -> dict:
    """Who holds a lease: the host name, the *machine* (the kernel's boot id and this process's
    PID namespace: two containers that share a host name do not share both), the process id and
    its start time (so a reused process id is told apart)."""
    return {"host": socket.gethostname(), "machine": _machine(), "pid": os.getpid(),
            "started": _start_time(os.getpid())}


def _machine() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux: no process of this host is ever taken for dead
        return ""


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None if it does not run."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _read_lease(path: str) -> dict | None:
    """The lease at ``path``; None if there is none. One that is not a lease (not JSON) reads as
    held by an unknown process (so it is never taken over; the error names the file)."""
    try:
        lease = json.loads(storage.read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {"host": "an unknown host", "pid": "unknown"}
    return lease if isinstance(lease, dict) else {"host": "an unknown host", "pid": "unknown"}


def _lease_is_stale(lease: dict) -> bool:
    """Whether the lease's holder is known to be gone: a process of this machine (`this_process`)
    that no longer runs, or whose process id now belongs to another process (this one, say, when
    the lease is none of those it holds now)."""
    me = this_process()
    if not me["machine"] or lease.get("machine") != me["machine"] or lease.get("host") != me["host"]:
        return False
    pid = lease.get("pid")
    if not isinstance(pid, int) or lease.get("token") in _HELD_LEASES:
        return False
    return pid == me["pid"] or _start_time(pid) != lease.get("started")


def run_description(config_json: dict, inputs: str, chunks: dict[str, list[Chunk]]) -> dict:
    """What ``run.json`` holds: the settings, the software versions, the inputs' fingerprint and
    the chunk list."""
    return {"config": config_json, "versions": package_versions(), "inputs": inputs,
            "chunks": {split: [[c.start, c.stop] for c in split_list]
                       for split, split_list in chunks.items()}}


def fingerprint(items: Iterable[Any], files: Iterable[str]) -> str:
    """SHA-256 of ``items`` (JSON-able) and of each file's path, size and modification time."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(items), sort_keys=True).encode("utf-8"))
    for path in sorted(set(files)):
        try:
            size, mark = storage.signature(path)
            digest.update(f"{path}\0{size}\0{mark}\n".encode("utf-8"))
        except OSError:
            digest.update(f"{path}\0missing\n".encode("utf-8"))
    return digest.hexdigest()


def describe_changes(before: dict, now: dict) -> list[str]:
    """What differs between two ``run.json`` descriptions (settings, software versions, inputs),
    as ``name: A -> B``."""
    changes = [f"--{name}: {before['config'].get(name)!r} -> {now['config'].get(name)!r}"
               for name in sorted(set(before["config"]) | set(now["config"]))
               if before["config"].get(name) != now["config"].get(name)]
    versions_before, versions_now = before.get("versions", {}), now.get("versions", {})
    changes += [f"{name}: {versions_before.get(name)} -> {versions_now.get(name)}"
                for name in sorted(set(versions_before) | set(versions_now))
                if versions_before.get(name) != versions_now.get(name)]
    if before.get("inputs") != now.get("inputs"):
        changes.append("the input files (labelled photos, annotations, backgrounds) changed")
    return changes


def remove_temporary_files(output_dir: str) -> int:
    """Delete the ``.tmp-*`` files a killed run left in ``output_dir``; how many (none on an object
    store, where nothing is written under a temporary name)."""
    if storage.is_url(output_dir):
        return 0
    removed = 0
    for folder, _, files in os.walk(output_dir):
        for name in files:
            if name.startswith(TEMPORARY_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


def is_unfinished_run(output_dir: str) -> bool:
    """True for a directory a generation run started and did not finish (no manifest yet)."""
    return (storage.exists(storage.join(output_dir, MARKER_NAME))
            and Progress(output_dir).exists()
            and not storage.exists(storage.join(output_dir, MANIFEST_NAME)))
