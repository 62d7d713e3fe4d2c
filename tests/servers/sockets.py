"""Which processes listen on which addresses, read from /proc (no ss or psutil needed)."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from pathlib import Path


def _listening() -> dict[str, str]:
    """Socket inode → local address, for every TCP socket in LISTEN state."""
    found: dict[str, str] = {}
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A":
                continue
            hex_ip = local.split(":")[0]
            raw = bytes.fromhex(hex_ip)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = struct.unpack(f"<{len(raw) // 4}I", raw)
            ip = socket.inet_ntop(family, struct.pack(f">{len(words)}I", *words))
            found[inode] = ip
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def listeners_off_loopback(name_fragments: tuple[str, ...]) -> list[str]:
    """'process: address' for each listener of a matching process not bound to loopback."""
    sockets = _listening()
    result = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if not any(f in cmdline for f in name_fragments):
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                inode = target[8:-1] if target.startswith("socket:[") else None
                ip = sockets.get(inode or "")
                if ip is not None and not _loopback(ip):
                    result.append(f"{cmdline[:60]}: {ip}")
        except OSError:
            continue  # the process ended while we looked
    return result
