"""The listeners over real sockets, in this process: framing, attribution, limits, backpressure, acks.

Clients here are hand-written on purpose, to do what real clients never do (cross networks, break
framing, send out of sequence, flood a full spool); `test_real_clients.py` runs the real ones.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from collectors.listeners import relp
from collectors.listeners.config import Limits
from collectors.records import RecordBlock
from tests.collectors.intake_helpers import (
    DEADLINE,
    OUTSIDE,
    Running,
    fill_until_full,
    free,
    running,
    wait_for,
)


def line(marker: str, n: int) -> bytes:
    return f"<38>Jan  5 10:00:{n % 60:02d} web-01 sshd[42]: {marker} message {n}".encode()


def connect(address: tuple[str, int], *, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(address, timeout=DEADLINE, source_address=(source, 0))
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# --- syslog over TCP and UDP ------------------------------------------------------------------------------

def test_tcp_senders_of_either_framing_land_under_their_sources_tenant(tmp_path: Path) -> None:
    with running(tmp_path) as intake:
        with connect(intake.address("syslog-tcp")) as lf, connect(intake.address("syslog-tcp")) as counted:
            lf.sendall(line("lf-probe", 1) + b"\n" + line("lf-probe", 2) + b"\r\n")
            counted.sendall(b"".join(b"%d %s" % (len(m), m) for m in (line("oc-probe", 3), line("oc-probe", 4))))
            wait_for(lambda: len(intake.records("-probe")) == 4, what="4 records")
            lf.sendall(line("lf-probe", 5) + b"\n")  # a later read of the same connection
        records = wait_for(lambda: len(intake.records("-probe")) == 5 and intake.records("-probe"), what="5 records")
    assert {(tenant, source) for tenant, source, _ in records} == {("riverside-council", "syslog")}
    sent = (("lf-probe", 1), ("lf-probe", 2), ("oc-probe", 3), ("oc-probe", 4), ("lf-probe", 5))
    assert sorted(r.payload for _, _, r in records) == sorted(line(m, n) for m, n in sent)
    assert all(r.origin.startswith("tcp 127.0.0.1:") for _, _, r in records)
    origins = {r.payload: r.origin for _, _, r in records}  # each connection numbers its messages from 1 on
    assert [origins[line(m, n)].rsplit(" #", 1)[1] for m, n in sent] == ["1", "2", "1", "2", "3"]


def test_a_newline_framed_connection_spools_every_read_as_a_record_block_its_first_included(tmp_path: Path) -> None:
    with running(tmp_path) as intake:
        with connect(intake.address("syslog-tcp")) as sender:
            sender.sendall(line("block-probe", 1) + b"\n" + line("block-probe", 2) + b"\n")
            wait_for(lambda: len(intake.records("block-probe")) == 2, what="the first read")
            sender.sendall(line("block-probe", 3) + b"\n")
            wait_for(lambda: len(intake.records("block-probe")) == 3, what="a later read")
        batches = [batch for batch in intake.spool.pending() if any(b"block-probe" in r.payload for r in batch.records)]
    # the drainer then parses a pass of them as one column, never record by record
    assert [type(batch.records) for batch in batches] == [RecordBlock, RecordBlock]
    assert [(r.payload, r.origin.rsplit(" #", 1)[1]) for batch in batches for r in batch.records] == [
        (line("block-probe", n), str(n)) for n in (1, 2, 3)]


def test_udp_datagrams_are_one_record_each(tmp_path: Path) -> None:
    with running(tmp_path) as intake, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for n in range(3):
            udp.sendto(line("udp-probe", n) + b"\n" * (n % 2), intake.address("syslog-udp"))
        records = wait_for(lambda: len(intake.records("udp-probe")) == 3 and intake.records("udp-probe"),
                           what="3 datagrams")
    assert sorted(r.payload for _, _, r in records) == [line("udp-probe", n) for n in range(3)]
    assert {tenant for tenant, _, _ in records} == {"riverside-council"}


def test_a_sender_outside_every_network_is_refused_counted_and_filed_nowhere(tmp_path: Path) -> None:
    with running(tmp_path) as intake:
        with connect(intake.address("syslog-tcp"), source=OUTSIDE) as stranger:
            stranger.sendall(line("stranger-probe", 1) + b"\n")
            assert closed_by_server(stranger)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((OUTSIDE, 0))
            for n in range(5):
                udp.sendto(line("stranger-probe", n), intake.address("syslog-udp"))
            wait_for(lambda: intake.count("udp", "refused") == 5, what="5 refused datagrams")
        assert intake.count("tcp", "refused connections") == 1
        assert intake.records("stranger-probe") == []


def test_an_over_long_message_is_dead_lettered_with_its_reason_and_the_next_one_stored(tmp_path: Path) -> None:
    with running(tmp_path, limits=Limits(max_message_bytes=1024)) as intake:
        huge = line("huge-probe", 1) + b" " + b"x" * 5000
        with connect(intake.address("syslog-tcp")) as sender:
            sender.sendall(huge + b"\n" + line("after-probe", 2) + b"\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(huge, intake.address("syslog-udp"))
        after = wait_for(lambda: intake.records("after-probe"), what="the message after the long one")
        letters = wait_for(lambda: len(list(intake.dead_letters.list())) == 2 and list(intake.dead_letters.list()),
                           what="two dead letters")
    assert {letter["tenant"] for letter in letters} == {"riverside-council"}
    assert all("over the listener's limit of 1024 bytes" in letter["reason"] for letter in letters)
    assert all(letter["raw"] == huge[:1024].decode() for letter in letters)
    assert intake.records("huge-probe") == []
    # the cut message keeps its number on the connection: the next one is #2
    assert [r.origin.rsplit(" #", 1)[1] for _, _, r in after] == ["2"]
    assert [letter["origin"].rsplit(" #", 1)[1] for letter in letters if letter["origin"].startswith("tcp ")] == ["1"]


def test_a_full_spool_pushes_back_on_tcp_and_loses_nothing(tmp_path: Path) -> None:
    # one read is one batch, and a batch must fit in the spool: this small spool takes reads of a quarter of it
    with running(tmp_path, max_spool_bytes=256 * 1024, limits=Limits(read_bytes=64 * 1024)) as intake:
        fill_until_full(intake.spool)
        lines = [line("flood-probe", n) + b" " + b"p" * 900 for n in range(2000)]  # 2 MB, 8x the spool
        sender = threading.Thread(target=send_all, args=(intake.address("syslog-tcp"), b"\n".join(lines) + b"\n"))
        sender.start()
        wait_for(lambda: intake.count("tcp", "full") > 0, what="the listener to meet the full spool")
        seen: list[bytes] = []

        def drained() -> bool:  # what a drainer does: take what is pending, then commit it
            for batch in list(intake.spool.pending()):
                seen.extend(r.payload for r in batch.records if b"flood-probe" in r.payload)
                intake.spool.commit(batch.position)
            return len(seen) >= len(lines)

        wait_for(drained, what="every line through the spool")
        sender.join(DEADLINE)
    assert seen == lines  # all of them, once each, in order: held and retried, never dropped


def send_all(address: tuple[str, int], data: bytes) -> None:
    with connect(address) as sock:
        sock.sendall(data)


def test_udp_drops_and_counts_when_the_spool_is_full(tmp_path: Path) -> None:
    with running(tmp_path, max_spool_bytes=256 * 1024) as intake, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        fill_until_full(intake.spool)
        for n in range(5):
            udp.sendto(line("full-probe", n), intake.address("syslog-udp"))
        wait_for(lambda: intake.count("udp", "dropped") == 5, what="5 dropped datagrams")
        assert intake.records("full-probe") == []


# --- TLS ---------------------------------------------------------------------------------------------------

def tls_client(intake: Running, *, certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(intake.tls_dir / "ca.pem"))
    if certificate:
        (intake.tls_dir / "client.pem").write_bytes(intake.client.certificate_pem)
        (intake.tls_dir / "client-key.pem").write_bytes(intake.client.key_pem)
        context.load_cert_chain(intake.tls_dir / "client.pem", intake.tls_dir / "client-key.pem")
    return context


def test_a_tls_client_certificate_is_the_credential_and_decides_the_tenant(tmp_path: Path) -> None:
    with running(tmp_path) as intake:
        context = tls_client(intake, certificate=True)
        with context.wrap_socket(connect(intake.address("syslog-tls")), server_hostname="localhost") as sender:
            sender.sendall(line("mtls-probe", 1) + b"\n")
        records = wait_for(lambda: intake.records("mtls-probe"), what="the TLS record")
        # the same host without a certificate: the council's network is not registered for TLS
        anonymous = tls_client(intake, certificate=False)
        with anonymous.wrap_socket(connect(intake.address("syslog-tls")), server_hostname="localhost") as sender:
            sender.sendall(line("anon-probe", 2) + b"\n")
            assert closed_by_server(sender)
        assert intake.count("tls", "refused connections") == 1
    assert [(tenant, r.origin.split(" ")[0]) for tenant, _, r in records] == [("harbour-school", "tls")]


# --- RELP --------------------------------------------------------------------------------------------------

class RelpClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = relp.RelpParser()
        self.frames: list[relp.RelpFrame] = []

    def send(self, *frames: tuple[int, str, bytes]) -> None:
        self.sock.sendall(b"".join(relp.encode_frame(txnr, command, data) for txnr, command, data in frames))

    def read(self, count: int) -> list[relp.RelpFrame]:
        while len(self.frames) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed after {self.frames}")
            self.frames += self.parser.feed(data)
        taken, self.frames = self.frames[:count], self.frames[count:]
        return taken

    def open(self) -> None:
        self.send((1, "open", b"relp_version=0\nrelp_software=test\ncommands=syslog"))
        assert self.read(1)[0].data.startswith(b"200 OK\n")


def test_relp_acknowledges_each_frame_once_it_is_durable_and_closes_on_close(tmp_path: Path) -> None:
    with running(tmp_path) as intake, connect(intake.address("relp")) as sock:
        client = RelpClient(sock)
        client.open()
        client.send(*[(n, "syslog", line("relp-probe", n)) for n in (2, 3, 4)])
        acks = client.read(3)
        in_spool = intake.records("relp-probe")  # read the moment the acks are here: they must be in already
        client.send((5, "close", b""))
        assert client.read(1)[0] == relp.RelpFrame(5, "rsp", b"", 0)
        assert closed_by_server(sock)
    assert [(a.txnr, a.data) for a in acks] == [(2, b"200 OK"), (3, b"200 OK"), (4, b"200 OK")]
    assert [(r.payload, r.origin) for _, _, r in in_spool] == [
        (line("relp-probe", n), f"relp 127.0.0.1 txnr {n}") for n in (2, 3, 4)]


def test_relp_answers_500_with_the_reason_to_a_sender_no_source_claims(tmp_path: Path) -> None:
    with running(tmp_path) as intake, connect(intake.address("relp"), source=OUTSIDE) as sock:
        client = RelpClient(sock)
        client.open()
        client.send((2, "syslog", line("stranger-relp", 2)))
        answer = client.read(1)[0]
        assert answer.txnr == 2 and answer.data.startswith(b"500 no source of any member organisation accepts relp")
        assert intake.records("stranger-relp") == []


def test_relp_out_of_sequence_or_before_open_aborts_the_session(tmp_path: Path) -> None:
    with running(tmp_path) as intake:
        with connect(intake.address("relp")) as sock:
            client = RelpClient(sock)
            client.open()
            client.send((7, "syslog", line("skipped-txnr", 7)))
            assert closed_by_server(sock)
        with connect(intake.address("relp")) as sock:
            RelpClient(sock).send((1, "syslog", line("no-open", 1)))
            assert closed_by_server(sock)
        assert intake.records("skipped-txnr") == [] and intake.records("no-open") == []


def test_relp_holds_acks_while_the_spool_is_full_and_sends_them_once_it_has_room(tmp_path: Path) -> None:
    with running(tmp_path, max_spool_bytes=256 * 1024) as intake, connect(intake.address("relp")) as sock:
        client = RelpClient(sock)
        client.open()
        fill_until_full(intake.spool)
        client.send((2, "syslog", line("held-probe", 2)))
        wait_for(lambda: intake.count("relp", "full") > 0, what="the append to meet the full spool")
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # no answer while the record is not durable: neither 200 nor 500
            sock.recv(1)
        sock.setblocking(True)
        free(intake.spool)
        assert [(a.txnr, a.data) for a in client.read(1)] == [(2, b"200 OK")]
        assert [r.payload for _, _, r in intake.records("held-probe")] == [line("held-probe", 2)]


def test_shutdown_tells_open_relp_sessions_serverclose(tmp_path: Path) -> None:
    with running(tmp_path) as intake, connect(intake.address("relp")) as sock:
        client = RelpClient(sock)
        client.open()
        client.send((2, "syslog", line("last-probe", 2)))
        assert client.read(1)[0].data == b"200 OK"
        intake.thread.stop()
        assert client.read(1)[0] == relp.RelpFrame(0, "serverclose", b"", 0)
        assert closed_by_server(sock)


def test_shutdown_finishes_the_batch_being_written_acknowledges_it_then_says_serverclose(tmp_path: Path) -> None:
    gate = threading.Event()
    with running(tmp_path, gate=gate) as intake, connect(intake.address("relp")) as sock:
        client = RelpClient(sock)
        client.open()
        client.send((2, "syslog", line("in-flight-probe", 2)))
        gated = intake.intake._spool
        assert gated.entered.wait(DEADLINE)  # the batch is in the middle of its append
        stopper = threading.Thread(target=intake.thread.stop)
        stopper.start()
        wait_for(lambda: refuses_connections(intake.address("relp")), what="the listener to stop accepting")
        gate.set()
        assert client.read(2) == [relp.RelpFrame(2, "rsp", b"200 OK", 6), relp.RelpFrame(0, "serverclose", b"", 0)]
        stopper.join(DEADLINE)
    assert [r.payload for _, _, r in intake.records("in-flight-probe")] == [line("in-flight-probe", 2)]


def refuses_connections(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=DEADLINE).close()
    except (ConnectionRefusedError, ConnectionResetError):  # reset: it reached the backlog as the socket closed
        return True
    return False
