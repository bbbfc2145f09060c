"""What a partner configures to send a source to the intake: an rsyslog snippet, a syslog-ng snippet, a curl line.

`partner_config(kind, host=, port=, ...)` returns the text `soc sources add` prints and the docs show.
The rsyslog snippets are checked by the real rsyslogd in the tests (`rsyslogd -N1`) and used there to
forward to a running intake, so what a partner copies is known to work. Every rsyslog action keeps
what it cannot send in a disk-assisted queue and retries forever, so an intake restart loses nothing
on the partner's side.

Kinds: `syslog-udp`, `syslog-tcp`, `syslog-tls` (RFC 5425), `syslog-relp` (RELP; over TLS when a CA
file is given), `http` (HTTPS when a CA file is given). syslog-ng has no RELP output: for RELP sources
its snippet is None and the partner uses syslog-tls instead.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from citysoc.errors import CitySocError

KINDS = ("syslog-udp", "syslog-tcp", "syslog-tls", "syslog-relp", "http")
PARTNER_CA = "/etc/citysoc/ca.pem"  # where the snippets expect the files on the partner's machine
PARTNER_CERT = "/etc/citysoc/client.pem"
PARTNER_KEY = "/etc/citysoc/client-key.pem"

# A disk-assisted queue per action: the partner's rsyslog holds what the intake cannot take yet.
_QUEUE = ('queue.type="LinkedList" queue.filename="{name}" queue.saveOnShutdown="on" '
          'queue.maxDiskSpace="1g" action.resumeRetryCount="-1"')


class OnboardingError(CitySocError):
    """A kind this intake has no listener for, or a TLS kind without the files it needs."""


@dataclass(frozen=True)
class PartnerConfig:
    """What the partner configures; a field is None where that tool cannot send this kind."""

    kind: str
    rsyslog: str | None
    syslog_ng: str | None
    curl: str | None

    def text(self) -> str:
        """All of it, as `soc sources add` prints it."""
        parts = [f"# rsyslog (/etc/rsyslog.d/60-citysoc.conf)\n{self.rsyslog}" if self.rsyslog else "",
                 f"# syslog-ng (/etc/syslog-ng/conf.d/citysoc.conf)\n{self.syslog_ng}" if self.syslog_ng else "",
                 f"# HTTP\n{self.curl}" if self.curl else ""]
        return "\n\n".join(part for part in parts if part) + "\n"


def partner_config(kind: str, *, host: str, port: int, server_name: str | None = None, ca_file: str | None = None,
                   certificate_file: str | None = None, key_file: str | None = None, token: str = "<TOKEN>",
                   parser: str | None = None, name: str = "citysoc") -> PartnerConfig:
    """The configuration for a source of `kind` sending to `host:port`.

    `server_name` is the name in the intake's certificate (default `host`); `certificate_file` and
    `key_file` a client certificate for mutual TLS; `parser` the `?source=` an HTTP source needs when
    its registration fixes none; `name` names the queue files. TLS kinds default to PARTNER_CA.
    """
    if kind not in KINDS:
        raise OnboardingError(f"no listener for kind {kind!r}: choose one of {', '.join(KINDS)}")
    if (certificate_file is None) != (key_file is None):
        raise OnboardingError("a client certificate needs both its file and its key file")
    queue = _QUEUE.format(name=_slug(name))
    peer = server_name or host
    if kind == "syslog-udp":
        return PartnerConfig(kind, f'action(type="omfwd" target="{host}" port="{port}" protocol="udp")',
                             _syslog_ng(name, f'network("{host}" port({port}) transport("udp"))'), None)
    if kind == "syslog-tcp":
        rsyslog = (f'action(type="omfwd" target="{host}" port="{port}" protocol="tcp" TCP_Framing="octet-counted"\n'
                   f'       {queue})')
        return PartnerConfig(kind, rsyslog, _syslog_ng(name, f'syslog("{host}" port({port}) transport("tcp"))'), None)
    if kind == "syslog-tls":
        ca = ca_file or PARTNER_CA
        client = (f'\n       streamDriver.CertFile="{certificate_file}" streamDriver.KeyFile="{key_file}"'
                  if certificate_file else "")
        rsyslog = (f'action(type="omfwd" target="{host}" port="{port}" protocol="tcp" TCP_Framing="octet-counted"\n'
                   f'       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"\n'
                   f'       StreamDriverPermittedPeers="{peer}" streamDriver.CAFile="{ca}"{client}\n'
                   f'       {queue})')
        ng_client = f' key-file("{key_file}") cert-file("{certificate_file}")' if certificate_file else ""
        syslog_ng = _syslog_ng(name, f'syslog("{host}" port({port}) transport("tls")\n'
                                     f'      tls(ca-file("{ca}"){ng_client} peer-verify(required-trusted)))')
        return PartnerConfig(kind, rsyslog, syslog_ng, None)
    if kind == "syslog-relp":
        tls = ""
        if ca_file or certificate_file:
            tls = (f'\n       tls="on" tls.caCert="{ca_file or PARTNER_CA}" tls.authMode="name" '
                   f'tls.permittedPeer=["{peer}"]')
            if certificate_file:
                tls += f'\n       tls.myCert="{certificate_file}" tls.myPrivKey="{key_file}"'
        rsyslog = (f'module(load="omrelp")\n'
                   f'action(type="omrelp" target="{host}" port="{port}"{tls}\n'
                   f'       {queue})')
        return PartnerConfig(kind, rsyslog, None, None)
    scheme = "https" if ca_file else "http"
    query = f"?source={parser}" if parser else ""
    command = ["curl", "--fail-with-body", "--silent", "--show-error"]
    if ca_file:
        command += ["--cacert", ca_file]
    command += ["-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/x-ndjson",
                "--data-binary", "@events.ndjson", f"{scheme}://{host}:{port}/v1/events{query}"]
    return PartnerConfig(kind, None, None, shlex.join(command) + "\n# gzip: add -H 'Content-Encoding: gzip' "
                         "and send events.ndjson.gz; each line is one event (or post a JSON array)")


def instructions(kind: str, *, host: str, port: int, token: str | None, ca_file: str | None,
                 client_certificate: bool = False) -> str:
    """`partner_config(...).text()` for `soc sources add`: `client_certificate` when the source is known by a
    certificate the partner installs at PARTNER_CERT / PARTNER_KEY."""
    files = {"certificate_file": PARTNER_CERT, "key_file": PARTNER_KEY} if client_certificate else {}
    return partner_config(kind, host=host, port=port, server_name=host, ca_file=ca_file, token=token or "<TOKEN>",
                          **files).text()


def push_guidance(parser: str | None, *, host: str, port: int, token: str, https: bool,
                  push_identity: tuple[str, str] | None = None) -> str | None:
    """How a provider that pushes (rather than a script posting files) points at an http source of `parser`:
    GitHub's audit log streaming to the intake's Splunk HEC routes, a Pub/Sub push subscription, an Okta event
    hook. None for other parsers."""
    base = f"{'https' if https else 'http'}://{host}:{port}"
    if parser == "github.audit":
        return ("# GitHub audit log streaming (enterprise settings > Audit log > Log streaming > Configure stream > "
                f"Splunk)\nDomain: {host}   Port: {port}   Token: {token}\n"
                "# the intake answers as Splunk's HTTP Event Collector at /services/collector; GitHub streams over "
                "HTTPS only: keep SSL verification on, with a certificate GitHub trusts")
    if parser == "gcp.audit":
        if push_identity is not None:
            return ("# Pub/Sub push subscription with authentication (the ID token names the source)\n"
                    f"endpoint: {base}/v1/events?source=gcp.audit   service account: {push_identity[0]}   "
                    f"audience: {push_identity[1]}")
        return ("# Pub/Sub push subscription (a push cannot set a header: the endpoint URL carries the token; or ask "
                "the city SOC to register the subscription's service account and audience, and push with "
                f"authentication)\nendpoint: {base}/v1/events?source=gcp.audit&token={token}")
    if parser == "okta.system":
        return ("# Okta event hook (Workflow > Event Hooks): the verification GET is answered by the intake\n"
                f"URL: {base}/v1/events?source=okta.system   header: Authorization   value: Bearer {token}")
    return None


def _syslog_ng(name: str, driver: str) -> str:
    slug = _slug(name)
    return (f"destination d_{slug} {{\n  {driver};\n}};\n"
            f"log {{ source(s_src); destination(d_{slug}); }};  # s_src: Debian's default local source")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "citysoc"
