"""The leader's assignment of inbound connections to nodes: balanced, sticky, zone-aware."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailport.cluster.assignment import Member, Owner, Want, assign


def _loads(result: dict[str, Owner], members: dict[str, Member]) -> dict[str, int]:
    loads = dict.fromkeys(members, 0)
    for owner in result.values():
        loads[owner.node] += 1
    return loads


def _connections(n: int) -> dict[str, Want]:
    return {f"c{i:02}": Want() for i in range(n)}


def test_twelve_connections_over_three_nodes_are_four_each() -> None:
    members = {n: Member() for n in ("a", "b", "c")}
    result = assign(_connections(12), members, {}, epoch=7)
    assert _loads(result, members) == {"a": 4, "b": 4, "c": 4}
    assert {o.epoch for o in result.values()} == {7}


def test_a_joining_node_takes_its_share_and_nothing_else_moves() -> None:
    three = {n: Member() for n in ("a", "b", "c")}
    before = assign(_connections(12), three, {}, epoch=1)
    four = {**three, "d": Member()}
    after = assign(_connections(12), four, before, epoch=2)
    assert _loads(after, four) == {"a": 3, "b": 3, "c": 3, "d": 3}
    moved = {name for name in after if after[name] != before[name]}
    assert len(moved) == 3
    assert {after[name].node for name in moved} == {"d"}
    assert {after[name].epoch for name in moved} == {2}


def test_a_lost_node_s_connections_alone_move() -> None:
    three = {n: Member() for n in ("a", "b", "c")}
    before = assign(_connections(12), three, {}, epoch=1)
    two = {"a": Member(), "b": Member()}
    after = assign(_connections(12), two, before, epoch=2)
    assert _loads(after, two) == {"a": 6, "b": 6}
    moved = {name for name in after if after[name] != before[name]}
    assert moved == {name for name, owner in before.items() if owner.node == "c"}


def test_weights_balance_the_work_not_the_count() -> None:
    connections = {"big": Want(weight=4), **{f"s{i}": Want() for i in range(4)}}
    members = {"a": Member(), "b": Member()}
    result = assign(connections, members, {}, epoch=1)
    heavy = result["big"].node
    assert [n for n, o in result.items() if o.node == heavy] == ["big"]


def test_a_pinned_connection_runs_only_in_its_zone() -> None:
    connections = {"eu": Want(zone="eu"), "us": Want(zone="us"), "any": Want()}
    members = {"a": Member(zone="eu"), "b": Member(zone="eu")}
    result = assign(connections, members, {}, epoch=1)
    assert set(result) == {"eu", "any"}  # no live node may serve "us"
    assert members[result["eu"].node].zone == "eu"


def test_capacity_is_a_ceiling_and_a_shrunken_one_sheds_the_lightest() -> None:
    connections = {"heavy": Want(weight=3), "light": Want(weight=1)}
    before = {"heavy": Owner("a", 1), "light": Owner("a", 1)}
    members = {"a": Member(capacity=3), "b": Member(capacity=1)}
    after = assign(connections, members, before, epoch=2)
    assert after == {"heavy": Owner("a", 1), "light": Owner("b", 2)}


_members = st.dictionaries(st.sampled_from("abcdefgh"), st.builds(Member), min_size=1, max_size=8)


@given(n=st.integers(0, 60), members=_members, later=_members)
def test_balanced_within_one_and_stable_once_balanced(
    n: int, members: dict[str, Member], later: dict[str, Member]
) -> None:
    connections = _connections(n)
    first = assign(connections, members, {}, epoch=1)
    assert set(first) == set(connections)
    loads = _loads(first, members).values()
    assert max(loads) - min(loads) <= 1
    # Asked again with nothing changed, nothing moves.
    assert assign(connections, members, first, epoch=2) == first
    # After a change of members: balanced again, and what stayed kept its epoch.
    second = assign(connections, later, first, epoch=3)
    loads = _loads(second, later).values()
    assert max(loads) - min(loads) <= 1
    for name, owner in second.items():
        assert owner.epoch == (1 if first[name].node == owner.node else 3)
    # Each survivor keeps at least its new share (no more moves than balance needs).
    share = n // len(later)
    for node in set(members) & set(later):
        kept = sum(1 for c in connections if first[c].node == node == second[c].node)
        assert kept >= min(share, sum(1 for c in connections if first[c].node == node))
