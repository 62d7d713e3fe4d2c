"""A real multi-node mailport cluster on one machine, for tests and benchmarks: Ray nodes
from `ray.cluster_utils.Cluster`, each with a `mailport run --cluster` process of its own.

Each Ray node carries a custom resource named after its mailport node, which that node's
settings name in `cluster.ray_node`, so its actors run there."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ray.cluster_utils import Cluster

from mailport.cluster.node import loopback_only

REPO = Path(__file__).resolve().parents[1]


class RayNodes:
    """A Ray cluster on 127.0.0.1: a head with no mailport node, and a node per name."""

    def __init__(self, env: dict[str, str]) -> None:
        # The raylets' workers inherit this process's environment: the test applications
        # are imported from the repository, and Ray stays on loopback.
        os.environ.update(env)
        # Ray keeps to 127.0.0.1 only where it believes clusters are off; the belief is
        # read at import, which happened long ago in this process.
        loopback_only()
        self.cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={"num_cpus": 1, "include_dashboard": False},
        )
        self.nodes: dict[str, Any] = {}

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add(self, name: str) -> None:
        self.nodes[name] = self.cluster.add_node(num_cpus=1, resources={name: 1})

    def remove(self, name: str, *, graceful: bool) -> None:
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=graceful)

    def shutdown(self) -> None:
        self.cluster.shutdown()  # type: ignore[no-untyped-call]


class MailportNode:
    """One `mailport run --cluster` process, with its own data directory."""

    def __init__(self, root: Path, name: str, settings: dict[str, Any], env: dict[str, str]):
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {**settings, "node": {**settings.get("node", {}), "data_dir": str(self.dir)}}
        data["cluster"] = {**data["cluster"], "node_name": name, "ray_node": name}
        self.config = self.dir / "mailport.yaml"
        self.config.write_text(json.dumps(data, indent=1))  # JSON is YAML
        self.log = self.dir / "node.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mailport.cluster.cli",
                    "run",
                    "--cluster",
                    str(self.config),
                ],
                cwd=self.dir,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def status(self) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            status: dict[str, Any] = json.loads((self.dir / "status.json").read_text())
            return status
        return None

    def running(self) -> dict[str, tuple[str, int]]:
        """The node's inbound connections, each with its state and epoch, from its
        published status."""
        status = self.status() or {}
        actors = status.get("actors", [])
        return {a["connection"]: (a["state"], a["epoch"]) for a in actors if "epoch" in a}

    def stop(self, timeout: float = 30) -> None:
        """Stop as an operator would (SIGTERM): the node gives its lease up on the way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """Kill the whole node at once, as a lost machine goes."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def logs(self) -> str:
        """The node's own lines (not one per message), the last of them."""
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").splitlines()
            return "\n".join(line for line in lines if not line.startswith(("in ", "out ")))[-4000:]
        return ""


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def cluster_settings(
    root: Path,
    users: list[str],
    dovecot: Any,
    etcd_endpoints: list[str],
    ray_address: str,
    lease_ttl: int,
    store_url: str,
) -> dict[str, Any]:
    """Settings for nodes that share the store at `store_url` and serve one IMAP mailbox a
    user, answering each message (the `recorder` test application) into a Maildir."""
    secret = root / "imap-password"
    secret.write_text(dovecot.password)
    return {
        "node": {"shards": 1},
        "cluster": {
            "coordinator": "etcd",
            "etcd": etcd_endpoints,
            "prefix": f"/cluster-{uuid.uuid4().hex[:8]}",
            "lease_ttl": lease_ttl,
            "ray_address": ray_address,
        },
        "store": {"url": store_url},
        "inbound": [
            {
                "kind": "imap",
                "name": f"box-{i:02}",
                "host": "127.0.0.1",
                "port": dovecot.imap_port,
                "security": "none",
                "username": user,
                "password": {"file": str(secret)},
                "timeout": 10,
            }
            for i, user in enumerate(users)
        ],
        "outbound": [{"kind": "maildir", "name": "outbox", "path": str(root / "outbox")}],
        "applications": [
            {"name": "recorder", "handler": "tests.apps:record", "address": "s@example.test"}
        ],
        "routing": {"default": "recorder"},
        "automatic_replies_per_sender": 1_000_000,
    }
