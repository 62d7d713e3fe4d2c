"""The `mailport` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailport.config import InvalidConfig, Settings, load
from mailport.config.models import ImapInbound, MaildirOutbound, Pop3Inbound, SmtpListenerInbound

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
STALE_AFTER = 5.0  # seconds without a status from a node that publishes every second
MAX_FILE = 256 << 20  # a file to read, message or mbox; mail servers take far less


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailport", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start a node (embedded defaults without --config)")
    run.add_argument("--config", type=Path, help="YAML settings file")
    run.add_argument(
        "--cluster",
        type=Path,
        metavar="CONFIG",
        help="join the Ray cluster and etcd that this settings file's `cluster:` names",
    )

    status = commands.add_parser("status", help="per-connection counters of the running node")
    status.add_argument("--config", type=Path, help="the settings the node runs with")
    status.add_argument("--json", action="store_true")

    parse = commands.add_parser("parse", help="read message files as mailport reads them")
    parse.add_argument("paths", nargs="+", type=Path)
    parse.add_argument("--json", action="store_true", help="one JSON object per message")

    receipt = commands.add_parser(
        "receipt", help="classify message files: DSN, MDN, auto-reply, feedback or normal"
    )
    receipt.add_argument("paths", nargs="+", type=Path)
    receipt.add_argument("--json", action="store_true", help="one JSON object per message")

    bench = commands.add_parser("bench", help="run a benchmark scenario beside its anchor")
    bench.add_argument("scenario", nargs="?", help="the scenario to run")
    bench.add_argument("--list", action="store_true", help="list the scenarios")
    bench.add_argument("--json", action="store_true", help="end with one JSON object")
    bench.add_argument("--quick", action="store_true", help="a short run")
    bench.add_argument("--corpus", help="the email corpus (default ../shared/corpus)")

    pool = commands.add_parser("pool", help="outbound connection pools")
    pool_commands = pool.add_subparsers(dest="pool_command", required=True)
    resize = pool_commands.add_parser("resize", help="change a pool's size while it sends")
    resize.add_argument("connection")
    resize.add_argument("size", type=int)
    resize.add_argument("--config", type=Path, help="the settings the node runs with")

    init = commands.add_parser("init", help="write a commented settings file to start from")
    init.add_argument("file", type=Path, nargs="?", default=Path("mailport.yaml"))
    init.add_argument("--cluster", action="store_true", help="for a node of a cluster")
    init.add_argument("--force", action="store_true", help="replace an existing file")

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser("validate", help="check a settings file")
    validate.add_argument("file", type=Path)
    push = config_commands.add_parser(
        "push", help="make a settings file's connections and rules the whole cluster's"
    )
    push.add_argument("file", type=Path)

    args = parser.parse_args(argv)
    if args.command == "run":
        if args.config and args.cluster:
            parser.error("give --config or --cluster, not both")
        return _run(args.cluster or args.config, clustered=args.cluster is not None)
    if args.command == "status":
        return _status(args.config, args.json)
    if args.command == "parse":
        return _parse(args.paths, args.json)
    if args.command == "receipt":
        return _receipt(args.paths, args.json)
    if args.command == "bench":
        return _bench(args)
    if args.command == "pool":
        return _resize(args.config, args.connection, args.size)
    if args.command == "init":
        return _init(args.file, args.cluster, args.force)
    if args.config_command == "push":
        return _push(args.file)
    return _validate(args.file)


def _init(path: Path, cluster: bool, force: bool) -> int:
    from mailport.config.starter import write_starter

    try:
        write_starter(path, cluster=cluster, force=force)
    except OSError as exc:
        err.print(f"mailport: {exc}", markup=False)
        return 1
    if path.suffix.lower() not in (".yaml", ".yml"):
        err.print(f"mailport: note: {path} holds YAML, whatever its name says", markup=False)
    then = f"mailport run --cluster {path}" if cluster else f"mailport run --config {path}"
    console.print(
        f"wrote {path}: edit it, check it with `mailport config validate {path}`, then `{then}`",
        markup=False,
    )
    return 0


def _push(path: Path) -> int:
    from mailport.cluster.admin import AdminError, push_settings
    from mailport.cluster.node import anchored

    try:
        # Relative paths mean here, where the admin runs this, not wherever an actor runs.
        settings = anchored(load(path, check_handlers=True), Path.cwd())
        revision = asyncio.run(push_settings(settings))
    except InvalidConfig as exc:
        for error in exc.errors:
            err.print(f"{exc.source}:{error}", markup=False)
        return 1
    except AdminError as exc:
        err.print(f"mailport: {exc}", markup=False)
        return 1
    console.print(
        f"{path}: the cluster's settings are now revision {revision} "
        f"({len(settings.inbound)} inbound, {len(settings.outbound)} outbound)"
    )
    return 0


def _resize(path: Path | None, connection: str, size: int) -> int:
    from mailport.cluster.admin import AdminError, resize_pool
    from mailport.cluster.node import anchored, read_status

    try:
        settings = anchored(_settings(path), Path.cwd())
        running = read_status(settings) if path is None else None
        if running is not None and "settings" in running:
            settings = Settings.model_validate(running["settings"])  # the running node's
        old, new = asyncio.run(resize_pool(settings, connection, size))
    except (InvalidConfig, AdminError) as exc:
        err.print(f"mailport: {exc}", markup=False)
        return 1
    console.print(f"{connection}: pool size {old} -> {new}", markup=False)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from mailport.bench.harness import Options, run
    from mailport.bench.scenarios import SCENARIOS

    if args.list or not args.scenario:
        for name, (description, _) in sorted(SCENARIOS.items()):
            print(f"{name}\t{description}")
        return 0
    if args.scenario not in SCENARIOS:
        err.print(f"mailport: no scenario {args.scenario!r}; see mailport bench --list")
        return 2
    options = Options(quick=args.quick, corpus=args.corpus)
    run(args.scenario, options, args.json, err if args.json else console)
    return 0


def _exit_code(status: dict[str, Any]) -> int:
    """0 when all is well, 2 while a critical alarm is open or the node has stopped
    publishing (stuck, or waiting on etcd): scripts and monitors can tell."""
    critical = any(a["severity"] == "critical" for a in status.get("alarms", []))
    return 2 if critical or status["published_s_ago"] > STALE_AFTER else 0


def _parse(paths: list[Path], as_json: bool) -> int:
    from mailport.mail import parse
    from mailport.mail.summary import summary

    unreadable: list[Path] = []
    for path, raw in _read_each(paths, unreadable):
        fields = summary(parse(raw), path=str(path))
        if as_json:
            print(json.dumps(fields, ensure_ascii=False), flush=True)
            continue
        table = Table(title=Text(str(path)), show_header=False)
        for name, value in fields.items():
            if name != "path":
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                # Text, not markup: "[b]" in a subject is the sender's, not rich's.
                table.add_row(name, Text(shown if name != "text" else shown[:500]))
        console.print(table)
    return 1 if unreadable else 0


def _receipt(paths: list[Path], as_json: bool) -> int:
    from mailport.mail.mbox import messages
    from mailport.mail.parse import has_header_fields
    from mailport.mail.receipts import classify

    unreadable: list[Path] = []
    for path, raw in _read_each(paths, unreadable):
        for index, message in enumerate(messages(raw), 1):  # an mbox file holds several
            if not has_header_fields(message):
                err.print(
                    f"mailport: {path}: no header fields: not an RFC 5322 message", markup=False
                )
                unreadable.append(path)
                continue
            fields = {"path": str(path), "index": index, **classify(message).as_dict()}
            if as_json:
                print(json.dumps(fields, ensure_ascii=False), flush=True)
            else:
                console.print(Text("\n".join(_receipt_lines(fields))))
    return 1 if unreadable else 0


def _read_each(paths: list[Path], unreadable: list[Path]) -> Iterator[tuple[Path, bytes]]:
    """Each readable file's bytes; one that cannot be read is said and noted, and the rest go on."""
    for path in paths:
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_FILE + 1)  # not the whole of /dev/zero
        except OSError as exc:
            err.print(f"mailport: {path}: {exc.strerror}", markup=False)
            unreadable.append(path)
            continue
        if len(raw) > MAX_FILE:
            err.print(f"mailport: {path}: larger than {MAX_FILE >> 20} MiB", markup=False)
            unreadable.append(path)
            continue
        yield path, raw


def _receipt_lines(fields: dict[str, Any]) -> list[str]:
    """A receipt as lines that read at any terminal width: each recipient, then what the
    server said of it."""
    title = f"{fields['path']}" + (f" #{fields['index']}" if fields["index"] > 1 else "")
    lines = [f"{title}: {fields['kind']}{_said(fields)}"]
    for r in fields["recipients"]:
        code = "-" if r["reply_code"] is None else r["reply_code"]
        hard = " (hard bounce)" if r["hard_bounce"] else ""
        lines.append(f"  {r['recipient']}: {r['action']} {r['status']} {code} {r['reason']}{hard}")
        said = " ".join(r["diagnostic"].split())  # folded lines read as one (JSON keeps them)
        said = said if len(said) <= 300 else said[:299] + "…"
        if said:
            lines.append(f"    {said}")
        if r["remote_mta"]:
            lines.append(f"    remote MTA: {r['remote_mta']}")
    return lines


def _said(fields: dict[str, Any]) -> str:
    said = {
        "original message": fields["original_message_id"],
        "envelope id": fields["envelope_id"],
        "disposition": fields["disposition"],
        "feedback type": fields["feedback_type"],
    }
    return "".join(f" · {k}: {v}" for k, v in said.items() if v)


def _settings(path: Path | None) -> Settings:
    return load(path) if path is not None else Settings()


def _validate(path: Path) -> int:
    try:
        settings = load(path, check_handlers=True)
    except InvalidConfig as exc:
        for error in exc.errors:
            err.print(f"{exc.source}:{error}", markup=False)
        err.print(f"{len(exc.errors)} error(s)")
        return 1
    console.print(
        f"{path}: valid: {len(settings.inbound)} inbound, {len(settings.outbound)} outbound, "
        f"{len(settings.applications)} application(s)"
    )
    return 0


def _run(path: Path | None, clustered: bool = False) -> int:
    import ray

    from mailport.actors.stats import Event
    from mailport.cluster.node import CannotStart, Node, NodeRunning, anchored
    from mailport.cluster.shared_config import shared_part

    try:
        settings = anchored(_settings(path), Path.cwd())
    except InvalidConfig as exc:
        for error in exc.errors:
            err.print(f"{exc.source}:{error}", markup=False)
        return 1
    if clustered and settings.cluster.coordinator != "etcd":
        err.print(f"mailport: {path}: --cluster needs `cluster: {{coordinator: etcd, ...}}`")
        return 1
    node = Node(settings)
    # In a cluster the leader moves connections when a node's lease lapses: look at the
    # assignment every 0.2 s, so a move costs little beyond the lease itself.
    every = 2 if node.clustered else 10

    async def serve() -> None:
        if node.clustered:
            console.print(f"mailport: node {node.name} joining the cluster (Ray, etcd)…")
        else:
            console.print("mailport: starting one node (Ray, local coordinator)…")
        await node.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # after Ray's, which would replace ours
            loop.add_signal_handler(sig, stop.set)
        for line in _describe(node.settings, node.clustered):
            console.print(f"mailport: {line}", markup=False)
        if node.clustered and shared_part(node.settings) != shared_part(settings):
            err.print(
                f"mailport: note: the cluster runs its own settings (etcd revision"
                f" {node.revision}), not {path}'s; `mailport config push {path}` makes the"
                " file the cluster's",
                markup=False,
            )
        shown: dict[str, tuple[str, str | None]] = {}
        for _ in range(50):  # up to 5 s for the connections to come up or say why not
            status = await node.publish_status()
            if all(a["state"] not in {"starting", "connecting"} for a in status["actors"]):
                break
            await asyncio.sleep(0.1)
        _print_changes(status["actors"], shown)
        console.print("mailport: ready. Ctrl-C stops.")
        ticks = 0
        while not stop.is_set():
            for event in await node.new_events():
                print(Event(**event).line(), flush=True)
            ticks += 1
            try:
                if node.clustered and ticks % every == 0:
                    await node.reconcile()
                if ticks % 10 == 0:
                    _print_changes((await node.publish_status())["actors"], shown)
            except Exception as exc:  # an actor restarting, the store away: next tick
                err.print(f"mailport: {type(exc).__name__}: {exc}", markup=False)
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass
        console.print("mailport: stopping")
        await node.stop()

    try:
        asyncio.run(serve())
    except (NodeRunning, CannotStart) as exc:
        err.print(f"mailport: {exc}", markup=False)
        return 1
    finally:
        ray.shutdown()
    return 0


def _print_changes(actors: list[dict[str, Any]], shown: dict[str, tuple[str, str | None]]) -> None:
    """Say when a connection's state or error changes; silence while nothing does."""
    for actor in actors:
        now = (actor["state"], actor.get("error"))
        if shown.get(actor["connection"], ("starting", None)) != now:
            line = f"mailport: {actor['connection']}: {now[0]}" + (f": {now[1]}" if now[1] else "")
            (err if now[1] else console).print(line, markup=False)
        shown[actor["connection"]] = now


def _print_cluster(cluster: dict[str, Any]) -> None:
    if cluster.get("coordinator") != "etcd" and "error" not in cluster:
        return
    if "error" in cluster:
        err.print(f"cluster: {cluster['error']}", markup=False)
        return
    members = ", ".join(
        f"{m}{' (leader)' if m == cluster['leader'] else ''}" for m in cluster["members"]
    )
    console.print(Text(f"cluster: this node {cluster['node']}; nodes {members}"))
    table = Table(title="assignment")
    for column in ("connection", "node", "epoch"):
        table.add_column(column)
    for name, owner in cluster["assignment"].items():
        table.add_row(name, owner["node"], str(owner["epoch"]))
    console.print(table)


def _describe(settings: Settings, clustered: bool = False) -> list[str]:
    lines = [f"store {settings.store.url}"]
    if clustered:
        # Every node lists the cluster's connections; the leader decides which it serves.
        lines.append("the cluster's connections (`mailport status` shows which node serves each):")
    for c in settings.inbound:
        if isinstance(c, SmtpListenerInbound):
            verb = "SMTP listener on" if clustered else "listening for SMTP on"
            lines.append(f"{verb} {c.host}:{c.port} ({c.name})")
        elif isinstance(c, ImapInbound | Pop3Inbound):
            lines.append(f"reading {c.kind} {c.username}@{c.host}:{c.port} ({c.name})")
    for o in settings.outbound:
        if isinstance(o, MaildirOutbound):
            lines.append(f"delivering outbound mail into the Maildir {o.path} ({o.name})")
        else:
            lines.append(f"sending through SMTP {o.host}:{o.port}, pool {o.pool_size} ({o.name})")
    return lines


def _status(path: Path | None, as_json: bool) -> int:
    from mailport.cluster.node import anchored, read_status

    try:
        settings = anchored(_settings(path), Path.cwd())
    except InvalidConfig as exc:
        err.print(f"mailport: {exc}")
        return 1
    status = read_status(settings)
    if status is None:
        err.print(f"mailport: no node is running from {settings.node.data_dir}")
        return 1
    age = round(time.time() - float(status["updated_at"]), 1)
    status["published_s_ago"] = age
    if as_json:
        print(json.dumps(status, sort_keys=True))
        return _exit_code(status)
    if age > STALE_AFTER:
        err.print(f"mailport: the node last published {age} s ago: these figures are that old")
    states = {a["connection"]: a for a in status["actors"]}
    table = Table(title=f"mailport node (pid {status['pid']})")
    numbers = {"in", "receipts", "out", "failed", "pool"}
    for column in ("connection", "state", "in", "receipts", "out", "failed", "pool", "last error"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for name in sorted(set(status["counts"]) | set(states)):
        counts = status["counts"].get(name, {})
        state = states.get(name, {})
        pool = state.get("pool") or {}
        table.add_row(
            name,
            state.get("state", "-"),
            *(str(counts.get(k, 0)) for k in ("in", "receipt", "out", "failed")),
            str(pool.get("size", "")),
            Text(state.get("error") or ""),
        )
    console.print(table)
    _print_cluster(status.get("cluster") or {})
    receipts = status.get("receipts") or {}
    if receipts:
        # Orphaned: reports about nothing we sent, kept for an operator to look at.
        said = ", ".join(f"{n} {state}" for state, n in sorted(receipts.items()))
        console.print(Text(f"receipts kept in the store: {said}"))
    for alarm in status.get("alarms", []):
        err.print(
            f"ALARM {alarm['severity']} {alarm['key']} (x{alarm['count']}): {alarm['text']}",
            markup=False,
        )
    return _exit_code(status)


if __name__ == "__main__":
    sys.exit(main())
