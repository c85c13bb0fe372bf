"""Work shared between forked processes: the plumbing, apart from what is shared.

Linux only (elsewhere everything runs in this process). Forked processes inherit
the parent's memory, so only the items and the results cross a pipe. `KILN_JOBS`
sets how many processes take part (1 turns sharing off); the default is one per
core this process may run on.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

JOBS_ENV = "KILN_JOBS"

T = TypeVar("T")
R = TypeVar("R")


def jobs_wanted() -> int:
    """Processes to use: `KILN_JOBS` when set, else one per core this process may run on."""
    setting = os.environ.get(JOBS_ENV, "").strip()
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    return sys.platform == "linux"


class WorkerLost(RuntimeError):
    """A worker process ended without an answer (killed, or out of memory)."""


def forked_map(function: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """`[function(item) for item in items]`, in `jobs` forked processes, in order.

    `function` must be a module-level function (it is named, not sent); items and
    results are pickled. A process pool from `concurrent.futures`, not
    `multiprocessing.Pool`: when a worker dies, it fails at once (WorkerLost)
    where the latter waits for the lost answer forever.
    """
    if jobs <= 1 or len(items) < 2 or not can_fork():
        return [function(item) for item in items]
    # Objects the workers inherit stay out of their garbage collector's reach: its
    # passes would touch (and so copy) every page the parent built.
    gc.freeze()
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(jobs, len(items)), mp_context=context) as pool:
            chunk = max(1, len(items) // (jobs * 8))
            return list(pool.map(function, items, chunksize=chunk))
    except BrokenProcessPool as exc:
        raise WorkerLost(
            f"a worker process ended unexpectedly (out of memory?); set {JOBS_ENV}=1 "
            "to work in one process"
        ) from exc
    finally:
        gc.unfreeze()


def forked_each(items: Sequence[T], action: Callable[[T], R], jobs: int) -> list[R]:
    """`[action(item) for item in items]`, shared between this process and `jobs - 1`
    forked ones, for work done mostly through the kernel (writing files), where a
    pool's set-up would cost more than it saves. Results come back in item order.
    Raises OSError with a child's message when any share failed."""
    if jobs <= 1 or len(items) < 2 or not can_fork():
        return [action(item) for item in items]
    shares = min(jobs, len(items))
    children: list[tuple[int, int]] = []  # pid, read end of its pipe
    for share in range(1, shares):
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: do its share, send the results or the failure back
            os.close(reader)
            status = 0
            try:
                answer = pickle.dumps((True, [action(item) for item in items[share::shares]]))
            except BaseException as exc:  # whatever it is, the parent reports it
                answer = pickle.dumps((False, str(exc)[:4000]))
                status = 1
            try:
                with os.fdopen(writer, "wb") as pipe:
                    pipe.write(answer)
            finally:
                os._exit(status)
        os.close(writer)
        children.append((pid, reader))
    results: list[Any] = [None] * len(items)
    failure: str | None = None
    try:
        results[0::shares] = [action(item) for item in items[0::shares]]
    except OSError as exc:
        failure = str(exc)
    finally:  # every child is waited for, whatever happened here
        for share, (pid, reader) in enumerate(children, start=1):
            with os.fdopen(reader, "rb") as pipe:
                answer = pipe.read()
            _, status = os.waitpid(pid, 0)
            # A pipe from a child this process forked: nobody else writes to it.
            done, carried = pickle.loads(answer) if answer else (False, "")  # noqa: S301
            if done and status == 0:
                results[share::shares] = carried
            elif failure is None:
                failure = carried or f"a writer process ended with status {status}"
    if failure is not None:
        raise OSError(failure)
    return results
