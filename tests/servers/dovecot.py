"""A private, throwaway Dovecot (IMAP, IMAPS, POP3, POP3S, LMTP) on 127.0.0.1 for tests.

Dovecot runs as ``nobody:nogroup`` with everything (config, sockets, logs, mail) under a
fresh temporary directory; nothing in /etc/dovecot or /run is used. Any user name logs in
with :attr:`Dovecot.password`, so each test can take a fresh, empty mailbox from
:meth:`Dovecot.new_user`.

LMTP (:attr:`Dovecot.lmtp_port`) delivers to any user too, named by full address
(``user@example.test``, the same name then logs in over IMAP), except names starting with
:data:`UNKNOWN_PREFIX`: those do not exist, so LMTP refuses them with ``550 5.1.1`` and a
relaying Postfix bounces them with a real DSN.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import grp
import imaplib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .tls import TlsFiles

__all__ = ["UNKNOWN_PREFIX", "Dovecot", "imap_utf7_decode", "imap_utf7_encode"]

MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"
DEFAULT_PASSWORD = "test-secret"
START_TIMEOUT = 15.0
# Users whose name starts with this do not exist (no login, LMTP answers 550 5.1.1).
UNKNOWN_PREFIX = "unknown-"

_CONFIG = """\
# Private test instance; nothing is included from /etc/dovecot.
protocols = imap pop3 lmtp
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot.log

default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_uid = {user}
mail_gid = {group}

ssl = yes
ssl_cert = <{root}/tls/server.pem
ssl_key = <{root}/tls/server.key

disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_max_userip_connections = 1000

mail_location = maildir:~/Maildir
mail_fsync = never
pop3_uidl_format = %08Xu%08Xv

# The first passdb only sets "nodelay" (kept even when the password turns out wrong), so
# failed logins are answered at once instead of at the auth process's 0.5 s failure tick.
# {unknown}* users skip both static passdbs and reach only the empty passwd-file, which
# answers "user unknown" (all passdbs skipped would be a temporary failure instead). The
# static userdb checks that a user exists through a passdb lookup (no allow_all_users), so
# LMTP refuses those users with 550 5.1.1; every other name exists.
passdb {{
  driver = static
  args = noauthenticate nodelay=yes
  result_success = continue
  username_filter = !{unknown}*
}}
passdb {{
  driver = static
  args = password={password}
  username_filter = !{unknown}*
}}
passdb {{
  driver = passwd-file
  args = {root}/no-users
  username_filter = {unknown}*
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/home/%u
}}

namespace inbox {{
  inbox = yes
}}

service imap-login {{
  chroot =
  service_count = 0
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  chroot =
  service_count = 0
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  chroot =
  # No brute-force penalty: tests log in with wrong passwords from 127.0.0.1, and the
  # penalty (2 s doubling to 15 s) would delay every later login from that address.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _free_ports(count: int) -> list[int]:
    """Return *count* distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def imap_utf7_encode(name: str) -> str:
    """Encode a mailbox name in IMAP modified UTF-7 (RFC 3501, section 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def imap_utf7_decode(name: str) -> str:
    """Decode a mailbox name from IMAP modified UTF-7."""

    def repl(match: re.Match[str]) -> str:
        chunk = match.group(1)
        if not chunk:
            return "&"
        data = chunk.replace(",", "/")
        data += "=" * (-len(data) % 4)
        return base64.b64decode(data).decode("utf-16-be")

    return re.sub(r"&([A-Za-z0-9+,]*)-", repl, name)


def _quote(name: str) -> str:
    """Return *name* as an IMAP quoted string, modified-UTF-7 encoded."""
    encoded = imap_utf7_encode(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(token: bytes) -> str:
    """Turn an IMAP astring/quoted string from a response into a mailbox name."""
    text = token.decode("ascii", "replace")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    return imap_utf7_decode(text)


def _check(result: tuple[str, list[Any]], what: str) -> list[Any]:
    """Raise if an imaplib result is not OK; return its data."""
    typ, data = result
    if typ != "OK":
        raise imaplib.IMAP4.error(f"{what} failed: {typ} {data!r}")
    return data


class Dovecot:
    """A running private Dovecot instance; create it with :meth:`start`."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        root: Path,
        process: subprocess.Popen[bytes],
        tls: TlsFiles,
        password: str,
        ports: dict[str, int],
    ) -> None:
        """Wrap an already started instance (use :meth:`start` instead)."""
        self.root = root
        self.process = process
        self.tls = tls
        self.password = password
        self.imap_port = ports["imap"]
        self.imaps_port = ports["imaps"]
        self.pop3_port = ports["pop3"]
        self.pop3s_port = ports["pop3s"]
        self.lmtp_port = ports["lmtp"]
        self._counter = itertools.count(1)
        self._uid = pwd.getpwnam(MAIL_USER).pw_uid
        self._gid = grp.getgrnam(MAIL_GROUP).gr_gid
        self._stopped = False

    # -- life cycle -----------------------------------------------------------------

    @classmethod
    def start(cls, tls: TlsFiles, password: str = DEFAULT_PASSWORD) -> Dovecot:
        """Write a config into a fresh temp dir, start Dovecot as nobody and wait for it."""
        uid = pwd.getpwnam(MAIL_USER).pw_uid
        gid = grp.getgrnam(MAIL_GROUP).gr_gid
        root = Path(tempfile.mkdtemp(prefix="mailport-dovecot-"))
        root.chmod(0o755)
        try:
            for sub in ("run", "state", "log", "home"):
                (root / sub).mkdir(mode=0o755)
                os.chown(root / sub, uid, gid)
            tls_dir = root / "tls"
            tls_dir.mkdir(mode=0o755)
            shutil.copyfile(tls.cert, tls_dir / "server.pem")
            shutil.copyfile(tls.key, tls_dir / "server.key")
            for path in tls_dir.iterdir():
                path.chmod(0o644)

            names = ("imap", "imaps", "pop3", "pop3s", "lmtp")
            ports = dict(zip(names, _free_ports(len(names)), strict=True))
            # Empty on purpose: the passdb that makes UNKNOWN_PREFIX users not exist.
            (root / "no-users").touch(mode=0o644)
            conf = root / "dovecot.conf"
            conf.write_text(
                _CONFIG.format(
                    root=root,
                    instance=f"mailport-test-{root.name}",
                    user=MAIL_USER,
                    group=MAIL_GROUP,
                    password=password,
                    imap_port=ports["imap"],
                    imaps_port=ports["imaps"],
                    pop3_port=ports["pop3"],
                    pop3s_port=ports["pop3s"],
                    lmtp_port=ports["lmtp"],
                    unknown=UNKNOWN_PREFIX,
                )
            )
            conf.chmod(0o644)
            with open(root / "log" / "stderr.log", "wb") as stderr:
                process = subprocess.Popen(
                    [
                        "setpriv",
                        f"--reuid={MAIL_USER}",
                        f"--regid={MAIL_GROUP}",
                        "--clear-groups",
                        "dovecot",
                        "-F",
                        "-c",
                        str(conf),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    start_new_session=True,
                )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

        server = cls(root=root, process=process, tls=tls, password=password, ports=ports)
        atexit.register(server.stop)
        try:
            server._wait_ready(list(ports.values()))
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, ports: list[int]) -> None:
        """Poll until every listener accepts a connection, or raise with the logs."""
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(ports)
        while pending:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.process.returncode}:\n{self.logs()}")
            port = pending[0]
            try:
                with socket.create_connection((self.host, port), timeout=1.0):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dovecot not listening on {port}:\n{self.logs()}")
            time.sleep(0.01)

    def logs(self) -> str:
        """Return Dovecot's log file and captured stderr (for failure messages)."""
        parts = []
        for name in ("stderr.log", "dovecot.log"):
            path = self.root / "log" / name
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the whole process group (TERM, then KILL) and remove the temp dir."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=3)
        # Anything left in the group (the master, or sessions it did not reap) dies now.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=3)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        """Use as a context manager that stops the server on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()

    # -- users and direct Maildir access ---------------------------------------------

    def new_user(self, prefix: str = "u", domain: str | None = None) -> str:
        """Return a fresh, unique user name (any name logs in with :attr:`password`).

        With *domain*, the name is a full address (``prefix1-abc123@domain``), as LMTP
        delivery needs; IMAP and POP3 log in with that same name.
        """
        name = f"{prefix}{next(self._counter)}-{uuid.uuid4().hex[:6]}"
        return f"{name}@{domain}" if domain else name

    def home(self, user: str) -> Path:
        """Return the user's home directory (it may not exist yet)."""
        return self.root / "home" / user

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        """Return the Maildir++ directory of *folder* (``.Name`` below ~/Maildir)."""
        base = self.home(user) / "Maildir"
        if folder.upper() == "INBOX":
            return base
        return base / ("." + imap_utf7_encode(folder))

    def _make_dir(self, path: Path, mode: int = 0o700) -> None:
        """Create *path* (and missing parents) owned by the mail user."""
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=mode)
                os.chown(directory, self._uid, self._gid)

    def append_many(self, user: str, raws: list[bytes], folder: str = "INBOX") -> None:
        """Deliver messages by writing Maildir files directly (fast, owned by nobody).

        Messages land in ``new/`` like a local delivery, so Dovecot sees them as new
        mail at the next sync. Non-INBOX folders are created as Maildir++ ``.Folder``.
        """
        box = self.maildir(user, folder)
        for sub in ("cur", "new", "tmp"):
            self._make_dir(box / sub)
        if box.name != "Maildir":
            marker = box / "maildirfolder"
            if not marker.exists():
                marker.touch(mode=0o600)
                os.chown(marker, self._uid, self._gid)
        tag = uuid.uuid4().hex[:10]
        now = time.time()
        seconds, micros = int(now), int((now % 1) * 1_000_000)
        for n, raw in enumerate(raws):
            name = f"{seconds}.M{micros}P{os.getpid()}Q{n}R{tag}.mailport-test,S={len(raw)}"
            tmp_path = box / "tmp" / name
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchown(fd, self._uid, self._gid)
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp_path, box / "new" / name)

    # -- IMAP helpers (stdlib imaplib, plain IMAP) -----------------------------------

    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        """Yield a logged-in plain-IMAP imaplib connection for *user*."""
        conn = imaplib.IMAP4(self.host, self.imap_port, timeout=30)
        try:
            _check(conn.login(user, self.password), "LOGIN")
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    @contextlib.contextmanager
    def _examine(self, user: str, folder: str) -> Iterator[tuple[imaplib.IMAP4, int]]:
        """Yield a connection with *folder* opened read-only, and its message count."""
        with self.imap(user) as conn:
            data = _check(conn.select(_quote(folder), readonly=True), f"EXAMINE {folder}")
            yield conn, int(data[0] or 0)

    def append(
        self, user: str, raw: bytes, folder: str = "INBOX", flags: Iterable[str] = ()
    ) -> int | None:
        """APPEND one message (creating *folder* if missing); return its UID if known."""
        flag_list = "(" + " ".join(flags) + ")"
        with self.imap(user) as conn:
            if folder.upper() != "INBOX":
                typ, data = conn.create(_quote(folder))
                if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(data):
                    raise imaplib.IMAP4.error(f"CREATE {folder} failed: {data!r}")
            data = _check(conn.append(_quote(folder), flag_list, None, raw), "APPEND")
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
        return int(match.group(1)) if match else None

    def search(self, user: str, folder: str, criterion: str) -> list[int]:
        """Return the UIDs matching an IMAP SEARCH *criterion*, e.g. ``"UNKEYWORD $X"``."""
        with self._examine(user, folder) as (conn, _):
            data = _check(conn.uid("SEARCH", criterion), f"UID SEARCH {criterion}")
        return sorted(int(uid) for uid in b" ".join(d for d in data if d).split())

    def fetch_flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        r"""Return UID -> flags (system flags and keywords; ``\Recent`` is left out)."""
        with self._examine(user, folder) as (conn, count):
            if not count:
                return {}
            data = _check(conn.uid("FETCH", "1:*", "(UID FLAGS)"), "UID FETCH FLAGS")
        result: dict[int, set[str]] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not line:
                continue
            uid = re.search(rb"\bUID (\d+)", line)
            flags = re.search(rb"\bFLAGS \(([^)]*)\)", line)
            if uid and flags:
                names = flags.group(1).decode().split()
                result[int(uid.group(1))] = {f for f in names if f != "\\Recent"}
        return result

    def fetch_all(self, user: str, folder: str = "INBOX") -> dict[int, bytes]:
        """Return UID -> raw message (BODY.PEEK[], so nothing becomes \\Seen)."""
        with self._examine(user, folder) as (conn, count):
            if not count:
                return {}
            data = _check(conn.uid("FETCH", "1:*", "(UID BODY.PEEK[])"), "UID FETCH BODY")
        result: dict[int, bytes] = {}
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"\bUID (\d+)", item[0])
                if uid:
                    result[int(uid.group(1))] = item[1]
        return result

    def message_count(self, user: str, folder: str = "INBOX") -> int:
        """Return the number of messages in *folder* (IMAP STATUS MESSAGES)."""
        with self.imap(user) as conn:
            data = _check(conn.status(_quote(folder), "(MESSAGES)"), f"STATUS {folder}")
        match = re.search(rb"MESSAGES (\d+)", b" ".join(d for d in data if d))
        if not match:
            raise imaplib.IMAP4.error(f"no MESSAGES in STATUS reply {data!r}")
        return int(match.group(1))

    def folders(self, user: str) -> list[str]:
        """Return all mailbox names of *user* (decoded from modified UTF-7)."""
        with self.imap(user) as conn:
            data = _check(conn.list('""', '"*"'), "LIST")
        names = []
        for item in data:
            if isinstance(item, tuple):  # name sent as a literal
                names.append(imap_utf7_decode(item[1].decode("ascii", "replace")))
                continue
            if not item:
                continue
            match = re.match(rb'\([^)]*\) (?:"(?:[^"\\]|\\.)*"|NIL) (.+)$', item)
            if match:
                names.append(_unquote(match.group(1)))
        return names
