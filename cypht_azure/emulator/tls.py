"""Self-made TLS material: a CA and a leaf for 127.0.0.1, localhost and any extra host names.

EC P-256 keys keep generation in the millisecond range. With a state dir the
PEM files are written there and reused (the CA key too, so that a leaf for new
host names keeps the CA clients already trust); without one, a process-wide
cache keeps every in-process emulator (e.g. one per test) on the same CA.
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
CA_KEY_FILE = "ca-key.pem"
DEFAULT_NAMES = ("127.0.0.1", "localhost")
LEAF_CERT_FILE = "server-cert.pem"
LEAF_KEY_FILE = "server-key.pem"


@dataclass(frozen=True)
class TlsMaterial:
    ca_pem: bytes
    leaf_cert_pem: bytes  # leaf followed by the CA, so clients get the chain
    leaf_key_pem: bytes
    ca_key_pem: bytes | None = None


_cache_lock = threading.Lock()
_process_cache: dict[frozenset[str], TlsMaterial] = {}


def wanted_names(hosts: tuple[str, ...] | list[str] = ()) -> frozenset[str]:
    """The names the leaf must carry: the defaults plus each extra host (a DNS name or an IP address)."""
    return frozenset(DEFAULT_NAMES) | {h.strip().lower().strip("[]") for h in hosts if h.strip()}


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def leaf_names(cert_pem: bytes) -> frozenset[str]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return frozenset([str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
                     + [d.lower() for d in san.get_values_for_type(x509.DNSName)])


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cypht-azure emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def generate(names: frozenset[str] = frozenset(DEFAULT_NAMES)) -> TlsMaterial:
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
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    ca_key_pem = ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    return issue_leaf(ca_pem, ca_key_pem, names)


def issue_leaf(ca_pem: bytes, ca_key_pem: bytes, names: frozenset[str]) -> TlsMaterial:
    """A server certificate for ``names`` signed by the given CA."""
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ordered = [n for n in DEFAULT_NAMES if n in names] + sorted(names - set(DEFAULT_NAMES))
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in ordered]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return TlsMaterial(
        ca_pem=ca_pem,
        leaf_cert_pem=leaf_cert.public_bytes(serialization.Encoding.PEM) + ca_pem,
        leaf_key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        ca_key_pem=ca_key_pem,
    )


def process_material(names: frozenset[str] = frozenset(DEFAULT_NAMES)) -> TlsMaterial:
    """One CA per process for emulators without a state dir (fast test start); a leaf per set of names."""
    with _cache_lock:
        if names not in _process_cache:
            first = next(iter(_process_cache.values()), None)
            if first is None or first.ca_key_pem is None:
                _process_cache[names] = generate(names)
            else:
                _process_cache[names] = issue_leaf(first.ca_pem, first.ca_key_pem, names)
        return _process_cache[names]


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_or_create(directory: Path, names: frozenset[str] = frozenset(DEFAULT_NAMES)) -> TlsMaterial:
    """Reuse the PEM files in ``directory`` or create them (first start); a new leaf when it lacks a name.

    Under an flock, so processes starting together on one state dir agree on one CA.
    """
    ca, cert, key = directory / CA_FILE, directory / LEAF_CERT_FILE, directory / LEAF_KEY_FILE
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "tls.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _load_or_create(ca, cert, key, directory / CA_KEY_FILE, names)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _load_or_create(ca: Path, cert: Path, key: Path, ca_key: Path, names: frozenset[str]) -> TlsMaterial:
    try:
        material = TlsMaterial(ca.read_bytes(), cert.read_bytes(), key.read_bytes(),
                               ca_key.read_bytes() if ca_key.exists() else None)
    except FileNotFoundError:
        material = None
    if material is not None and names <= leaf_names(material.leaf_cert_pem):
        return material
    if material is not None and material.ca_key_pem is not None:
        material = issue_leaf(material.ca_pem, material.ca_key_pem, names | leaf_names(material.leaf_cert_pem))
    else:  # first start (or a state dir from before the CA key was kept): a new CA
        material = generate(names)
    # Key and leaf first: a reader that finds ca.pem finds the rest too.
    assert material.ca_key_pem is not None
    _write_private(ca_key, material.ca_key_pem)
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
    if not (cert.exists() and key.exists()) or cert.read_bytes() != material.leaf_cert_pem:
        _write_private(key, material.leaf_key_pem)
        _write_private(cert, material.leaf_cert_pem)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
