"""A private, throwaway Postfix on 127.0.0.1 that relays to the test Dovecot over LMTP.

It exists so tests can get real DSNs: Postfix accepts any recipient in its one domain at
RCPT, hands the mail to Dovecot's LMTP listener, and writes the DSNs itself (failure, and
success for ``NOTIFY=SUCCESS``), delivering them back into the sender's Dovecot mailbox.

Unknown users: ``virtual_mailbox_maps`` is empty, so Postfix does not know which users exist
and accepts every recipient in :attr:`Postfix.domain`. Dovecot decides: users whose local part
starts with :data:`~tests.servers.dovecot.UNKNOWN_PREFIX` (``unknown-``) do not exist there,
so its LMTP answers ``550 5.1.1`` and Postfix bounces the mail with a ``5.1.1`` failure DSN to
the sender. Every other address is delivered (and reported ``relayed``, status 2.0.0, when
success notices are asked for).

Everything (config, queue, data, log) lives in a fresh temp directory; ``/etc/postfix`` is
only read for the package's file list, and nothing listens outside 127.0.0.1. Mail for any
other domain fails at once (``default_transport`` and ``relay_transport`` are ``error:``).
Postfix must be started as root; it drops to the ``postfix`` user itself.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .sockets import free_port

__all__ = ["Postfix"]

POSTFIX = "/usr/sbin/postfix"
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

_MAIN_CF = """\
# Private test instance (tests/servers/postfix.py); nothing is read from /etc/postfix/main.cf.
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = {owner}
setgid_group = {group}
syslog_name = postfix-mailport-test

# No syslog here: postlogd writes this file (the prefix list must allow its location).
maillog_file = {root}/log/maillog
maillog_file_prefixes = {root}

myhostname = postfix.mailport.test
mydomain = mailport.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
readme_directory = no
# No DNS for anything: clients are 127.0.0.1, the only next hop is a numeric address.
smtpd_peername_lookup = no
lmtp_host_lookup = native
smtp_host_lookup = native

# Every user of the domain is accepted at RCPT; Dovecot's LMTP decides who exists.
virtual_mailbox_domains = {domain}
virtual_mailbox_maps =
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
# Nothing may leave the machine.
default_transport = error:mail for other domains is refused by the test Postfix
relay_transport = error:mail for other domains is refused by the test Postfix

# Short timers so deferred mail and bounces move within a test's time.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 30s
bounce_queue_lifetime = 30s
"""

# Every service runs unchrooted: the chroot would need copies of libraries and /etc files.
_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _port_open(host: str, port: int) -> bool:
    """Return whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class Postfix:
    """A running private Postfix instance; create it with :meth:`start`."""

    host = "127.0.0.1"

    def __init__(self, *, root: Path, port: int, lmtp_port: int, domain: str) -> None:
        """Wrap an already started instance (use :meth:`start` instead)."""
        self.root = root
        self.port = port
        self.lmtp_port = lmtp_port
        self.domain = domain
        self.config_dir = root / "etc"
        self.log_path = root / "log" / "maillog"
        self._stopped = False

    # -- life cycle -----------------------------------------------------------------

    @classmethod
    def start(cls, lmtp_port: int, domain: str = "example.test") -> Postfix:
        """Write a config into a fresh temp dir, run ``postfix -c DIR start`` and wait for it.

        *lmtp_port* is the LMTP listener on 127.0.0.1 that receives all mail for *domain*.
        """
        if os.geteuid() != 0:
            raise PermissionError("the test Postfix must be started as root")
        if not os.access(POSTFIX, os.X_OK):
            raise FileNotFoundError(f"{POSTFIX} missing: run tests/servers/install.sh")
        uid = pwd.getpwnam(MAIL_OWNER).pw_uid
        gid = grp.getgrnam(MAIL_OWNER).gr_gid
        root = Path(tempfile.mkdtemp(prefix="mailport-postfix-"))
        # Postfix's own checks want every parent of its directories readable (755).
        root.chmod(0o755)
        port = free_port()
        server = cls(root=root, port=port, lmtp_port=lmtp_port, domain=domain)
        try:
            for sub in ("etc", "queue", "log"):
                (root / sub).mkdir(mode=0o755)
            # Only the data directory belongs to postfix; the queue's subdirectories are
            # created with their owners by ``postfix start`` (post-install).
            (root / "data").mkdir(mode=0o700)
            os.chown(root / "data", uid, gid)
            config = {
                "main.cf": _MAIN_CF.format(
                    root=root,
                    owner=MAIL_OWNER,
                    group=SETGID_GROUP,
                    domain=domain,
                    lmtp_port=lmtp_port,
                ),
                "master.cf": _MASTER_CF.format(port=port),
            }
            past = time.time() - 10
            for name, text in config.items():
                path = server.config_dir / name
                path.write_text(text)
                path.chmod(0o644)
                # A main.cf younger than a few seconds is re-read during start-up (slow).
                os.utime(path, (past, past))
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

        atexit.register(server.stop)
        try:
            server._postfix("start")
            server._wait(open_=True, timeout=START_TIMEOUT)
        except BaseException:
            server.stop()
            raise
        return server

    def _postfix(self, command: str) -> None:
        """Run ``postfix -c CONFIG command``; raise with the logs if it fails."""
        result = subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(
                f"postfix {command} exited with {result.returncode}:\n{output}\n{self.logs()}"
            )

    def _wait(self, *, open_: bool, timeout: float) -> None:
        """Poll until the smtpd port is open (or closed), or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while _port_open(self.host, self.port) != open_:
            if time.monotonic() > deadline:
                state = "listening" if open_ else "closed"
                raise TimeoutError(f"postfix not {state} on {self.port}:\n{self.logs()}")
            time.sleep(0.02)

    def _master_pid(self) -> int | None:
        """Return the master's pid from its pid file, if there is one."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        return None

    def logs(self) -> str:
        """Return Postfix's log file (for failure messages)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def _group_alive(self, pgid: int) -> bool:
        """Return whether any process of group *pgid* is still running (zombies aside)."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    def stop(self) -> None:
        """Stop Postfix, wait until its port is closed, and remove the temp dir.

        This does what ``postfix stop`` does (SIGTERM to the master, which takes its whole
        process group down) without the script's one-second polling sleep.
        """
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            pid = self._master_pid()
            if pid is None:  # never started, or the master did not write its pid yet
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._postfix("stop")
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            # The master lingers as a zombie (nobody may reap it here), so ``kill -0`` says
            # nothing: the closed port and no live process in its group say it is gone.
            deadline = time.monotonic() + STOP_TIMEOUT
            while _port_open(self.host, self.port) or self._group_alive(pid):
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                    self._wait(open_=False, timeout=STOP_TIMEOUT)
                    break
                time.sleep(0.01)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postfix:
        """Use as a context manager that stops the server on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()
