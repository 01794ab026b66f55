"""Linux /proc helpers for the Ray tests: processes by environment mark or mount namespace, their listening
TCP sockets, ending them by PID (never by name: other Ray instances may run on the machine)."""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from pathlib import Path


def _pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def marked_pids(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (a run's processes inherit the test's environment)."""
    found = []
    for pid in _pids():
        try:
            if mark.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def namespace_pids(ns: str) -> list[int]:
    """Processes in mount namespace ``ns`` (``readlink /proc/PID/ns/mnt``)."""
    found = []
    for pid in _pids():
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") == ns:
                found.append(pid)
        except OSError:
            continue
    return found


def _address(hex_addr: str) -> str:
    """``/proc/net/tcp{,6}``'s hex address (host byte order words) as text."""
    raw = bytes.fromhex(hex_addr)
    raw = b"".join(raw[k:k + 4][::-1] for k in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def listening_sockets(pids: list[int]) -> set[tuple[str, int, str]]:
    """``(address, port, process name)`` of every listening TCP socket the processes hold (IPv4 and IPv6)."""
    inodes: dict[str, tuple[str, int]] = {}
    for fam in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{fam}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A":  # TCP_LISTEN
                addr, port = f[1].split(":")
                inodes[f[9]] = (_address(addr), int(port, 16))
    out = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                out.add((*inodes[target[8:-1]], name))
    return out


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def end_pids(pids_of: callable, grace: float = 10.0) -> list[int]:  # type: ignore[valid-type]
    """SIGTERM every process ``pids_of()`` lists (never this one), SIGKILL after ``grace`` seconds; the PIDs
    still alive at the end (none, normally)."""
    deadline, sig = time.monotonic() + grace, signal.SIGTERM
    while pids := [p for p in pids_of() if p != os.getpid()]:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        if time.monotonic() > deadline:
            if sig == signal.SIGKILL:
                return pids
            sig, deadline = signal.SIGKILL, time.monotonic() + 5
        time.sleep(0.2)
    return []
