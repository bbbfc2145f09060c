"""TLS for syslog (RFC 5425) and RELP: the server's certificate, an intake CA, and client certificates.

An operator may configure a certificate and key of their own. Otherwise the intake makes, on first
start, a CA of its own and a server certificate signed by it under `$SOC_HOME/tls/` (kept, so partners
configure the CA file once): `ca.pem` is what partners put in their rsyslog or syslog-ng configuration.

Mutual TLS is optional: a client may present a certificate chaining to the intake CA (or to an extra
CA the operator names); its SHA-256 fingerprint is the sender's `Credential`, which the registry maps to
one source. A client without a certificate is attributed by its network, like plain TCP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from collectors.attribution import Credential

_CA_YEARS = 10
_LEAF_DAYS = 825  # the longest leaf lifetime clients commonly accept


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate (chain) and key, and the CA file clients trust."""

    certificate: Path
    key: Path
    ca: Path
    client_cas: tuple[Path, ...] = ()  # CAs whose client certificates are accepted (the intake CA by default)


def default_server_names() -> list[str]:
    """Names the generated server certificate covers: this machine and the loopback addresses."""
    names = ["localhost", "127.0.0.1", "::1"]
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in names:
            names.append(name)
    return names


def ensure_tls_files(directory: Path, *, server_names: list[str]) -> TlsFiles:
    """The intake CA and server certificate in `directory`, made on first use and kept afterwards."""
    files = TlsFiles(directory / "server.pem", directory / "server-key.pem", directory / "ca.pem",
                     (directory / "ca.pem",))
    if files.certificate.exists() and files.key.exists() and files.ca.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_certificate = _new_ca()
    _write_private(directory / "ca-key.pem", _key_pem(ca_key))
    files.ca.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _leaf(ca_key, ca_certificate, key, common_name=server_names[0], server_names=server_names,
                        usage=ExtendedKeyUsageOID.SERVER_AUTH)
    _write_private(files.key, _key_pem(key))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM)
                                  + ca_certificate.public_bytes(serialization.Encoding.PEM))
    return files


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate issued by the intake CA: what the partner installs, and its fingerprint, which
    is what the source registry keeps."""

    certificate_pem: bytes
    key_pem: bytes
    fingerprint: str


def issue_client_certificate(directory: Path, *, common_name: str) -> ClientCertificate:
    """A client certificate for mutual TLS, signed by the intake CA in `directory` (made if missing)."""
    ensure_tls_files(directory, server_names=default_server_names())
    ca_key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    ca_certificate = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca-key.pem'} is not the EC key this intake made")
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _leaf(ca_key, ca_certificate, key, common_name=common_name, server_names=[],
                        usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    der = certificate.public_bytes(serialization.Encoding.DER)
    return ClientCertificate(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key),
                             certificate_fingerprint(der))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2+ server context; asks for a client certificate but does not require one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certificate, files.key)
    for ca in files.client_cas:
        context.load_verify_locations(cafile=ca)
    context.verify_mode = ssl.CERT_OPTIONAL if files.client_cas else ssl.CERT_NONE
    return context


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of the DER certificate, lower-case hex (`openssl x509 -fingerprint -sha256`, without colons)."""
    return hashlib.sha256(der).hexdigest()


def peer_credential(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> Credential | None:
    """The client certificate's fingerprint as a credential, or None when the client presented none."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return Credential("certificate", certificate_fingerprint(der)) if der else None


def _new_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CitySOC"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"CitySOC intake CA ({socket.gethostname()})")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=365 * _CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, key: ec.EllipticCurvePrivateKey, *,
          common_name: str, server_names: list[str], usage: x509.ObjectIdentifier) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in server_names]),
                                        critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    """A key file readable by its owner only, from the moment it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
