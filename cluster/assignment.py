"""Which node serves which inbound connection: balanced by weight, sticky, zone-aware.

Pure: the leader calls :func:`assign` with what it read from the coordinator and writes
back what changed. A connection keeps its owner while that node lives, may serve it and is
not loaded more than its share; only then does it move, and a move takes a new epoch, which
fences the old owner out of the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Want:
    """A connection to be served: its weight (the work it brings) and its zone, if pinned."""

    weight: int = 1
    zone: str | None = None


@dataclass(frozen=True)
class Member:
    """A live node: the total weight it may carry (None: no limit), and its zone."""

    capacity: int | None = None
    zone: str | None = None


@dataclass(frozen=True)
class Owner:
    node: str
    epoch: int


def assign(
    connections: Mapping[str, Want],
    members: Mapping[str, Member],
    current: Mapping[str, Owner],
    epoch: int,
) -> dict[str, Owner]:
    """The new assignment. Connections that move, or are new, take `epoch`, which must be
    larger than any epoch given before; a connection no live node may serve is left out."""
    load = dict.fromkeys(members, 0)
    placed: dict[str, str] = {}

    def fits(name: str, node: str) -> bool:
        want, member = connections[name], members[node]
        if want.zone is not None and want.zone != member.zone:
            return False
        return member.capacity is None or load[node] + want.weight <= member.capacity

    # Keep what may stay, heaviest first, so a shrunken capacity sheds the light ones.
    for name in sorted(connections, key=lambda n: (-connections[n].weight, n)):
        owner = current.get(name)
        if owner is not None and owner.node in members and fits(name, owner.node):
            placed[name] = owner.node
            load[owner.node] += connections[name].weight
    # Place the rest, heaviest first, on the least loaded node that may take each.
    for name in sorted(connections, key=lambda n: (-connections[n].weight, n)):
        if name in placed:
            continue
        nodes = [n for n in sorted(members, key=lambda n: (load[n], n)) if fits(name, n)]
        if nodes:
            placed[name] = nodes[0]
            load[nodes[0]] += connections[name].weight
    _even_out(connections, members, placed, load, set(current))
    return {
        name: current[name]
        if name in current and current[name].node == node
        else Owner(node, epoch)
        for name, node in sorted(placed.items())
    }


def _even_out(
    connections: Mapping[str, Want],
    members: Mapping[str, Member],
    placed: dict[str, str],
    load: dict[str, int],
    owned: set[str],
) -> None:
    """Move connections from the most to the least loaded nodes while a move narrows the
    gap: each move lowers the sum of squared loads, so this ends, and it moves no more
    than balance needs (a gap no larger than a connection's weight stays). Of equal moves,
    one that was placed just now goes first: it has no owner to fence yet."""
    while True:
        best: tuple[int, bool, str, str] | None = None
        for name, node in placed.items():
            want = connections[name]
            for other, member in members.items():
                if other == node or (want.zone is not None and want.zone != member.zone):
                    continue
                if member.capacity is not None and load[other] + want.weight > member.capacity:
                    continue
                gap = load[node] - load[other]
                rank = (gap, name not in owned)
                if gap > want.weight and (best is None or rank > best[:2]):
                    best = (gap, name not in owned, name, other)
        if best is None:
            return
        *_, name, other = best
        load[placed[name]] -= connections[name].weight
        load[other] += connections[name].weight
        placed[name] = other
