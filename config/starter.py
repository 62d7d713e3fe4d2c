"""The commented settings file `mailport init` writes: every section, with what it does and
its default, ready to edit. It validates as written."""

from __future__ import annotations

from pathlib import Path

__all__ = ["starter", "write_starter"]

_HEAD = """\
# mailport settings. Check them with `mailport config validate FILE`; start a node with
# `mailport run --config FILE` (one node) or `mailport run --cluster FILE` (a cluster).
# Passwords are never written here: give {env: NAME} or {file: PATH}.

node:
  shards: 2              # inbound router actors on this node
  data_dir: var          # status file, spool and Maildirs live here
"""

_LOCAL = """
cluster:
  coordinator: local     # one node on its own, with an embedded Ray (127.0.0.1 only)

store:
  url: sqlite+aiosqlite:///var/mailport.db
"""

_CLUSTER = """
cluster:
  coordinator: etcd
  etcd: [10.0.0.1:2379, 10.0.0.2:2379, 10.0.0.3:2379]   # every member of the etcd cluster
  prefix: /mailport      # one prefix per mailport cluster sharing these etcd members
  lease_ttl: 5           # seconds: a lost node's connections move after about this long
  ray_address: auto      # the Ray cluster to join (`ray start --head` prints its address)
  # node_name: mp1       # default: the host name
  # zone: eu-west-1a     # for connections pinned to a zone
  # capacity: 8          # the most connection weight this node takes
  standby: 2             # idle actors kept started, to take over a lost node's mailboxes at once

store:
  # Every node shares one PostgreSQL. Its password comes from PGPASSWORD or ~/.pgpass.
  url: postgresql+asyncpg://mailport@10.0.0.10:5432/mailport
"""

_REST = """
inbound:
  # Mail arrives by SMTP, as an MX (or behind one) ...
  - kind: smtp-listener
    name: mx
    host: 127.0.0.1
    port: 2525
  # ... or is fetched from a mailbox: IMAP (IDLE where offered) or POP3.
  # - kind: imap
  #   name: support-box
  #   host: imap.example.com
  #   port: 993
  #   security: tls          # tls | starttls | none
  #   username: support@example.com
  #   password: {env: SUPPORT_IMAP_PASSWORD}
  #   after: flag            # flag | move:FOLDER | delete, once a message is processed
  #   weight: 1              # the work it brings, for balancing over nodes
  # - kind: pop3
  #   name: sales-box
  #   host: pop.example.com
  #   port: 995
  #   username: sales@example.com
  #   password: {file: /etc/mailport/sales-pop3-password}

outbound:
  # Replies and new mail go out through these, balanced by their outstanding work.
  - kind: maildir            # into a Maildir, for trying mailport out
    name: outbox
    path: var/outbox
  # - kind: smtp
  #   name: relay
  #   host: smtp.example.com
  #   port: 587
  #   security: starttls     # certificates are verified unless verify_certificate: false
  #   username: mailport@example.com
  #   password: {env: RELAY_PASSWORD}
  #   pool_size: 4           # SMTP sessions kept warm; `mailport pool resize relay N` live
  #   max_per_minute: 600    # transactions a minute; leave out for no limit
  #   max_recipients: 100
  #   sender_domains: [example.com]   # the senders it may carry; leave out for any
  #   dsn: {notify: [FAILURE, DELAY], ret: HDRS}   # ask for delivery reports
  #   verp: false            # return paths that name each message

applications:
  # Each inbound message goes to one application: `module:function`, called with its context.
  - name: acknowledge
    handler: mailport.actors.acknowledge:acknowledge
    address: support@mailport.localhost
    # receipt_handler: mymodule:on_receipt   # bounces, read receipts, auto-replies

routing:
  default: acknowledge
  # rules:
  #   - {recipient: sales@example.com, application: acknowledge}

automatic_replies_per_sender: 20   # a day, so two autoresponders cannot loop
outbound_lifetime: 432000          # seconds a message may stay deferred before it fails
"""


def starter(*, cluster: bool = False) -> str:
    """The text of a settings file; with `cluster`, for a node of a cluster."""
    rest = _REST
    if cluster:  # the leader may give the listener to any node: it listens on every address
        rest = rest.replace(
            "    host: 127.0.0.1\n", "    host: 0.0.0.0         # any node may serve it\n", 1
        )
    return _HEAD + (_CLUSTER if cluster else _LOCAL) + rest


def write_starter(path: Path, *, cluster: bool = False, force: bool = False) -> None:
    """Write the starter settings to `path`; an existing file is kept unless `force`."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; give --force to replace it")
    path.write_text(starter(cluster=cluster), encoding="utf-8")
