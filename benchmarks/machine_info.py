"""Where a benchmark ran: CPU, thread count, load, and the versions of what it measured (for the header lines
of ``benchmarks/peers.py``)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch


def versions() -> str:
    import fcndetect

    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    try:
        import cv2

        parts.append(f"cv2 {cv2.__version__}")
    except ImportError:
        parts.append("cv2 -")
    try:
        parts.append(f"facenet-pytorch {importlib.metadata.version('facenet-pytorch')}")
    except importlib.metadata.PackageNotFoundError:
        parts.append("facenet-pytorch -")
    parts.append(f"fcndetect {fcndetect.__version__}")
    return ", ".join(parts)


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo where there is one, else ``platform.processor()``, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu_name()}, os.cpu_count() {os.cpu_count()}, torch threads {torch.get_num_threads()}{load}"
