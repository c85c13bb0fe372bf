"""`kiln serve` as a user runs it, in the background: started, waited for, stopped.

The command runs as its own process (it runs until a signal), in the project folder;
the context waits for its "Ctrl-C stops it." line, yields the HTTP address it printed,
and stops it with SIGTERM (a kill if it does not stop within the grace period).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

READY_LINE = "Ctrl-C stops it."
HTTP = re.compile(r"HTTP     http://(\S+)")


@contextmanager
def serving(command: Sequence[str], cwd: Path, log: Path, timeout: float = 120) -> Iterator[str]:
    """Run `command` (a `kiln serve`) until the block ends; yields host:port of its HTTP."""
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            list(command), cwd=cwd, stdout=sink, stderr=subprocess.PIPE, text=True
        )
        try:
            yield _wait_ready(process, log, timeout)
        finally:
            _stop(process)


def _wait_ready(process: subprocess.Popen[str], log: Path, timeout: float) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break  # the process ended before it was ready
        seen.append(line)
        if line.startswith(READY_LINE):
            found = HTTP.search("".join(seen))
            assert found, "".join(seen)
            return found.group(1)
    raise AssertionError(f"kiln serve was not ready; it printed:\n{''.join(seen)}")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
