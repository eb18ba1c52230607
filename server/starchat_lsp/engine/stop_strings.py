"""Stop strings on streamed text: emit what is safe, hold back what could start a stop string."""

from __future__ import annotations


class StopStringMatcher:
    """Feed text as it streams; `feed` returns the part that can be shown now.

    Text that might be the beginning of a stop string is held back until the next chunk settles it,
    so the user never sees half of a stop string appear and vanish.
    """

    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.hit: str | None = None  # the stop string that ended the text

    def feed(self, text: str) -> str:
        if self.hit is not None:
            return ""
        buffer = self._pending + text
        first = self._first_stop(buffer)
        if first is not None:
            index, stop = first
            self.hit = stop
            self._pending = ""
            return buffer[:index]
        keep = self._longest_partial_suffix(buffer)
        self._pending = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """The held-back text, once the stream has ended without completing a stop string."""
        rest, self._pending = self._pending, ""
        return "" if self.hit is not None else rest

    def _first_stop(self, buffer: str) -> tuple[int, str] | None:
        found: tuple[int, str] | None = None
        for stop in self._stops:
            index = buffer.find(stop)
            if index >= 0 and (found is None or index < found[0]):
                found = (index, stop)
        return found

    def _longest_partial_suffix(self, buffer: str) -> int:
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:length]):
                    longest = length
                    break
        return longest
