"""Where the commands print: a text stream (:class:`TextOutput`), standard output that
survives a closed pipe (:class:`PipeSafe`) and the silence of ``--quiet`` (:class:`Silent`)."""

from __future__ import annotations

import os
from typing import IO, Protocol

__all__ = ["PipeSafe", "Silent", "TextOutput"]


class TextOutput(Protocol):
    """What a command prints to: ``write`` and ``flush``, as ``print(..., file=out)`` uses them."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class Silent:
    """Standard output under --quiet."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class PipeSafe:
    """Standard output that survives a closed pipe (``evcsa play … | head``): once the reader
    has gone, the rest is dropped and the run goes on to write its results."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.closed_pipe = True
        try:  # so that the interpreter's own flush at exit does not complain either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
