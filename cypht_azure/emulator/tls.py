"""Self-made TLS material: a CA and a leaf for 127.0.0.1/localhost.

EC P-256 keys keep generation in the millisecond range. With a state dir the
PEM files are written there and reused; without one, a process-wide cache
keeps every in-process emulator (e.g. one per test) on the same CA.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
LEAF_CERT_FILE = "server-cert.pem"
LEAF_KEY_FILE = "server-key.pem"


@dataclass(frozen=True)
class TlsMaterial:
    ca_pem: bytes
    leaf_cert_pem: bytes  # leaf followed by the CA, so clients get the chain
    leaf_key_pem: bytes


_cache_lock = threading.Lock()
_process_cache: TlsMaterial | None = None


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cypht-azure emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def generate() -> TlsMaterial:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("cypht-azure emulator CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    return TlsMaterial(
        ca_pem=ca_pem,
        leaf_cert_pem=leaf_cert.public_bytes(serialization.Encoding.PEM) + ca_pem,
        leaf_key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def process_material() -> TlsMaterial:
    """One CA per process for emulators without a state dir (fast test start)."""
    global _process_cache
    with _cache_lock:
        if _process_cache is None:
            _process_cache = generate()
        return _process_cache


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_or_create(directory: Path) -> TlsMaterial:
    """Reuse the PEM files in ``directory`` or create them (first start).

    Under an flock, so processes starting together on one state dir agree on one CA.
    """
    ca, cert, key = directory / CA_FILE, directory / LEAF_CERT_FILE, directory / LEAF_KEY_FILE
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "tls.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _load_or_create(ca, cert, key)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _load_or_create(ca: Path, cert: Path, key: Path) -> TlsMaterial:
    try:
        return TlsMaterial(ca.read_bytes(), cert.read_bytes(), key.read_bytes())
    except FileNotFoundError:
        pass
    material = generate()
    # Key and leaf first: a reader that finds ca.pem finds the rest too.
    _write_private(key, material.leaf_key_pem)
    _write_private(cert, material.leaf_cert_pem)
    _write_private(ca, material.ca_pem)
    return material


def write_ca(material: TlsMaterial, path: Path) -> None:
    _write_private(path, material.ca_pem)


def server_context(material: TlsMaterial, workdir: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = workdir / LEAF_CERT_FILE, workdir / LEAF_KEY_FILE
    if not (cert.exists() and key.exists()):
        _write_private(key, material.leaf_key_pem)
        _write_private(cert, material.leaf_cert_pem)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
