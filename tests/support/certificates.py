"""Throwaway certificate authorities and certificates for the TLS tests, made with openssl."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.prerequisites import missing


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path

    def pem(self) -> tuple[bytes, bytes]:
        return self.cert.read_bytes(), self.key.read_bytes()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def require_openssl() -> None:
    if shutil.which("openssl") is None:
        missing("openssl is not installed")


def authority(directory: Path, name: str) -> Issued:
    """A self-signed CA."""
    require_openssl()
    issued = Issued(directory / f"{name}.pem", directory / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(issued.key), "-out", str(issued.cert),
    )  # fmt: skip
    return issued


def issue(ca: Issued, directory: Path, name: str, *, usage: str) -> Issued:
    """A leaf certificate for localhost and 127.0.0.1 signed by `ca` (serverAuth or clientAuth)."""
    issued = Issued(directory / f"{name}.pem", directory / f"{name}.key")
    request = directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\n"
        f"extendedKeyUsage={usage}\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", f"/CN={name}", "-keyout", str(issued.key), "-out", str(request),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(issued.cert),
    )  # fmt: skip
    return issued
