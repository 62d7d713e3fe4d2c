"""A connection to an etcd cluster through aetcd, over any of several members.

aetcd takes one host and port; gRPC's address-list form (``ipv4:A:P,B:P,C:P``) makes that
one channel fail over between members, so losing one member costs one failed call."""

from __future__ import annotations

import ipaddress

import aetcd


def client(endpoints: list[str], timeout: float = 2.0) -> aetcd.Client:
    """A client for `endpoints` (``host:port`` each; several must be IPv4 addresses)."""
    if not endpoints:
        raise ValueError("no etcd endpoints")
    hosts = [_split(e) for e in endpoints]
    if len(hosts) == 1:
        host, port = hosts[0]
        return aetcd.Client(host=host, port=port, timeout=int(max(1, timeout)))
    for host, _ in hosts:
        ipaddress.IPv4Address(host)  # the address-list form takes numeric IPv4 only
    *others, (last_host, last_port) = hosts
    listed = ",".join([f"{h}:{p}" for h, p in others] + [last_host])
    return aetcd.Client(host=f"ipv4:{listed}", port=last_port, timeout=int(max(1, timeout)))


def _split(endpoint: str) -> tuple[str, int]:
    endpoint = endpoint.removeprefix("http://")
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"etcd endpoint {endpoint!r} is not host:port")
    return host, int(port)
