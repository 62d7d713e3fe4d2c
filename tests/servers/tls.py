"""A throwaway test CA and a server certificate for localhost, made with the openssl CLI."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsFiles", "make_tls"]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a test CA certificate and a server certificate/key signed by it."""

    ca_cert: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """Return a client context that trusts only the test CA (verification and host check on)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_cert))
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """Return a server context presenting the server certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def _openssl(*args: str | Path) -> None:
    """Run the openssl CLI, raising with its output on failure."""
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_tls(directory: Path) -> TlsFiles:
    """Create a CA and a server certificate (SAN localhost, 127.0.0.1) in *directory*.

    All files are made world-readable (0644) so an unprivileged server can load them.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = directory / "ca.key"
    ca_cert = directory / "ca.pem"
    key = directory / "server.key"
    csr = directory / "server.csr"
    cert = directory / "server.pem"
    ext = directory / "server.ext"

    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", ca_key, "-out", ca_cert, "-days", "3650",
        "-subj", "/CN=mailport test CA",
        "-addext", "basicConstraints=critical,CA:true",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost",
    )  # fmt: skip
    ext.write_text(
        "basicConstraints=critical,CA:false\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
        "-CAcreateserial", "-out", cert, "-days", "3650", "-sha256", "-extfile", ext,
    )  # fmt: skip
    for path in directory.iterdir():
        path.chmod(0o644)
    return TlsFiles(ca_cert=ca_cert, cert=cert, key=key)
