"""What a trial used: CPU seconds of its process, its peak resident memory and, on CUDA, the
peak of torch's GPU allocations; reported with every result and logged on its MLflow run beside
the plan's estimate (``mem_estimate_bytes``), so that the estimate's error can be read off."""

from __future__ import annotations

import resource
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_bytes() -> int:
    """The process's peak resident set since the last :func:`reset_peak` (Linux's ``VmHWM``;
    elsewhere ``ru_maxrss``, the process's whole life)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> None:
    """Starts the peak over (a reused actor ran other trials before): writing 5 to
    ``clear_refs`` resets ``VmHWM`` to the current RSS on Linux; elsewhere nothing changes."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass


class TrialUsage:
    """A trial's usage from its start: create it when the trial starts."""

    def __init__(self, device: str = "cpu") -> None:
        self.cuda = device == "cuda"
        reset_peak()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self.cpu_started = time.process_time()

    def report(self) -> dict[str, float]:
        """``cpu_seconds`` (every thread of the process), ``peak_rss_bytes`` and, on CUDA,
        ``peak_gpu_bytes`` so far."""
        usage = {
            "cpu_seconds": time.process_time() - self.cpu_started,
            "peak_rss_bytes": float(peak_rss_bytes()),
        }
        if self.cuda:
            import torch

            usage["peak_gpu_bytes"] = float(torch.cuda.max_memory_allocated())
        return usage
