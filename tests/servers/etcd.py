"""A private, throwaway etcd cluster (one or more members) on 127.0.0.1 for tests.

Each member keeps its data under a fresh temporary directory; a member can be killed and
started again to test what the cluster does without it."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .sockets import free_port

__all__ = ["EtcdCluster"]

ETCD = "etcd"
START_TIMEOUT = 20.0


@dataclass
class _Member:
    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None


def _open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


class EtcdCluster:
    """A running etcd cluster; create it with :meth:`start`."""

    def __init__(self, root: Path, members: list[_Member]) -> None:
        self.root = root
        self.members = members

    @classmethod
    def start(cls, size: int = 3) -> EtcdCluster:
        if shutil.which(ETCD) is None:
            raise FileNotFoundError("etcd missing: run tests/servers/install.sh")
        root = Path(tempfile.mkdtemp(prefix="mailport-etcd-"))
        members = [_Member(f"m{i}", free_port(), free_port(), free_port()) for i in range(size)]
        cluster = cls(root, members)
        try:
            for member in members:
                cluster._launch(member, new=True)
            cluster.wait_healthy()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{m.client_port}" for m in self.members]

    def _launch(self, member: _Member, *, new: bool) -> None:
        peers = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        log = open(self.root / f"{member.name}.log", "ab")  # noqa: SIM115 - the child keeps it
        member.process = subprocess.Popen(
            [
                ETCD,
                "--name", member.name,
                "--data-dir", str(self.root / member.name),
                "--listen-client-urls", f"http://127.0.0.1:{member.client_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{member.client_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{member.peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{member.peer_port}",
                "--listen-metrics-urls", f"http://127.0.0.1:{member.metrics_port}",
                "--initial-cluster", peers,
                "--initial-cluster-state", "new" if new else "existing",
                "--initial-cluster-token", self.root.name,
                # Elections in tens of milliseconds on loopback, as tests need.
                "--heartbeat-interval", "50",
                "--election-timeout", "500",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every running member answers a linearizable read."""
        deadline = time.monotonic() + timeout
        for member in self.members:
            if member.process is None:
                continue
            while True:
                result = subprocess.run(
                    [
                        "etcdctl",
                        f"--endpoints=http://127.0.0.1:{member.client_port}",
                        "--command-timeout=1s",
                        "endpoint",
                        "health",
                    ],
                    capture_output=True,
                    check=False,
                    env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
                )
                if result.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd {member.name} not healthy:\n{self.logs(member)}")
                time.sleep(0.1)

    def logs(self, member: _Member) -> str:
        with contextlib.suppress(OSError):
            return (self.root / f"{member.name}.log").read_text(errors="replace")[-4000:]
        return ""

    def kill(self, index: int) -> None:
        """Kill one member at once (SIGKILL), as a crashed machine would go."""
        member = self.members[index]
        if member.process is not None:
            member.process.send_signal(signal.SIGKILL)
            member.process.wait(10)
            member.process = None

    def revive(self, index: int) -> None:
        """Start a killed member again on its old data."""
        member = self.members[index]
        self._launch(member, new=False)
        self.wait_healthy()

    def stop(self) -> None:
        for i in range(len(self.members)):
            self.kill(i)
        shutil.rmtree(self.root, ignore_errors=True)
