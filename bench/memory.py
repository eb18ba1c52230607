"""Peak resident memory of this process between two points (Linux: /proc/self)."""

from __future__ import annotations

from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _field(name: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss() -> int:
    return _field("VmRSS")


class PeakMemory:
    """`with PeakMemory() as peak:` ... `peak.added_mb`: how far the run raised resident memory.

    Writing 5 to clear_refs resets the kernel's high-water mark (VmHWM), so each run is measured
    on its own; where that is not allowed, the figure is None.
    """

    def __init__(self) -> None:
        self.added_mb: float | None = None
        self._start = 0
        self._reset = False

    def __enter__(self) -> PeakMemory:
        try:
            CLEAR_REFS.write_text("5")
            self._reset = True
        except OSError:
            self._reset = False
        self._start = rss()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reset:
            self.added_mb = max(0, _field("VmHWM") - self._start) / 1e6
