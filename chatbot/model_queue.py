"""One slow model, many users: questions wait in line for the one model instance.

Each question takes a :class:`Ticket`; the first in line has the model, the others see their
place and the expected wait (the mean of the recent answer times × the answers ahead). The
line is capped: a question that finds it full, or waits longer than ``max_wait_s``, is
refused at once (:class:`~chatbot.errors.ModelBusyError`) and the reader serves the
extractive answer instead.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from chatbot.errors import ModelBusyError


@dataclass(frozen=True)
class Waiting:
    """A question's place in line (1: next) and the expected wait in seconds."""

    position: int
    expected_s: float


class ModelQueue:
    """A first-in first-out line in front of one model."""

    def __init__(self, capacity: int = 8, max_wait_s: float = 60.0, typical_s: float = 8.0) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be 0 or more, got {capacity}.")
        self.capacity = capacity  # questions that may wait behind the one being answered
        self.max_wait_s = max_wait_s
        self._line: collections.deque[object] = collections.deque()
        self._recent: collections.deque[float] = collections.deque([typical_s], maxlen=20)
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        """Questions in line, the one being answered excluded."""
        with self._changed:
            return max(len(self._line) - 1, 0)

    def join(self) -> object:
        """Take a place in line.

        Raises:
            ModelBusyError: ``capacity`` questions already wait.
        """
        with self._changed:
            if len(self._line) > self.capacity:
                raise ModelBusyError(f"{len(self._line) - 1} questions are already waiting for the model")
            ticket = object()
            self._line.append(ticket)
            return ticket

    def wait(self, ticket: object, poll_s: float = 0.5) -> Iterator[Waiting]:
        """Yields ``ticket``'s place while others are ahead; returns when it is first.

        Raises:
            ModelBusyError: waited more than ``max_wait_s``.
        """
        deadline = time.monotonic() + self.max_wait_s
        with self._changed:
            while (position := self._line.index(ticket)) > 0:
                if time.monotonic() >= deadline:
                    raise ModelBusyError(f"waited {self.max_wait_s:.0f} s for the model")
                expected = position * sum(self._recent) / len(self._recent)  # answers ahead × mean time
                self._changed.release()
                try:
                    yield Waiting(position, expected)
                finally:
                    self._changed.acquire()
                if self._line.index(ticket) == position:
                    self._changed.wait(min(poll_s, max(deadline - time.monotonic(), 0.0)))

    def done(self, ticket: object, took_s: float | None = None) -> None:
        """Leave the line (answered, stopped or refused); ``took_s`` feeds the expected waits."""
        with self._changed:
            if ticket in self._line:
                self._line.remove(ticket)
            if took_s is not None:
                self._recent.append(took_s)
            self._changed.notify_all()
