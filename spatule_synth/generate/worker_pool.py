"""Process pools of ``generate``: how many workers, and how a worker starts.

Used by the read stage's mask pool (`spatule_synth.generate.mask_jobs`); the same rules as the image
pool of `spatule_synth.generate.execute`: workers are started with ``spawn`` (no fork of a process
that may hold threads), leave Ctrl-C to the parent, are killed by Linux when the parent dies (so no
orphan goes on writing), and run OpenCV on one thread (one process per core already). This module
imports nothing of the pipeline, so any stage may use it without an import cycle.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import cv2

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Have Linux kill this worker when the parent dies (``kill -9``, out of memory), so that no
    orphan goes on working for a run that is over."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own checks remain
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def start_worker(parent: int) -> None:
    """What every worker does first (module docstring)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    cv2.setNumThreads(1)  # one process per core already


def spawn_pool(workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes; ``initializer`` should call `start_worker`.
    Processes are started as tasks come (Python >= 3.9 with ``spawn``), not all at once."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer, initargs=initargs)


def end_workers(executor: ProcessPoolExecutor | None) -> None:
    """Terminate the pool's processes after one died: Python 3.11 leaves the others waiting for
    work the broken pool never sends, and shutting the pool down would wait for them."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()
