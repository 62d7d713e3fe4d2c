#!/bin/sh
# Install the Debian packages the test suite needs, where missing (TEST-SERVERS.md).
# With arguments, install exactly those packages instead.
set -eu

wanted="${*:-}"
if [ -z "$wanted" ]; then
    need() { command -v "$1" >/dev/null 2>&1 || wanted="$wanted $2"; }
    need dovecot "dovecot-imapd dovecot-pop3d"
    # The private Postfix delivers into Dovecot over LMTP, a package of its own.
    [ -x /usr/lib/dovecot/lmtp ] || wanted="$wanted dovecot-lmtpd"
    # One package: the private Postfix (tests/servers/postfix.py) and smtp-sink.
    { [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/smtp-sink ]; } || wanted="$wanted postfix"
    need mbsync isync
    need etcd "etcd-server etcd-client"
    need openssl openssl
    need setpriv util-linux
    # The private PostgreSQL (tests/servers/postgres.py): Debian's server, any version.
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || wanted="$wanted postgresql"
fi
[ -n "$wanted" ] || exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# Keep the packages' own daemons from starting on the standard ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
fi
echo "installing:$wanted"
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $wanted
