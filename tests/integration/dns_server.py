"""A small authoritative DNS server for tests (dnslib, UDP on 127.0.0.1, port chosen by the OS).

    with ZoneServer(ZONE, servfail={"broken.test"}, drop={"slow.test"}) as server:
        resolver = DnsResolver(nameservers=["127.0.0.1"], port=server.port, timeout_s=0.5)

Names with no record at all (and no records below them) answer NXDOMAIN; names in `servfail` answer SERVFAIL;
names in `drop` never get an answer (a timeout for the client). CNAMEs are followed inside the zone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType

from dnslib import QTYPE, RCODE, RR, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer


def _key(name: object) -> str:
    return str(name).lower().rstrip(".")


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, zone: str, *, servfail: Iterable[str], drop: Iterable[str]) -> None:
        self.records: list[RR] = RR.fromZone(zone)
        self.servfail = {_key(n) for n in servfail}
        self.drop = {_key(n) for n in drop}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _exists(self, name: str) -> bool:
        return any(_key(r.rname) == name or _key(r.rname).endswith("." + name) for r in self.records)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        name = _key(request.q.qname)
        qtype = request.q.qtype
        with self._lock:
            self.queries.append((name, QTYPE[qtype]))
        if name in self.drop:
            raise DNSError("dropped on purpose")  # dnslib then sends nothing
        reply = request.reply()
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        current = name
        for _ in range(8):  # follow a CNAME chain inside the zone
            matches = [r for r in self.records if _key(r.rname) == current]
            cname = [r for r in matches if r.rtype == QTYPE.CNAME and qtype != QTYPE.CNAME]
            if cname:
                reply.add_answer(cname[0])
                current = _key(cname[0].rdata.label)
                continue
            for record in matches:
                if record.rtype == qtype:
                    reply.add_answer(record)
            if not matches and not self._exists(current):
                reply.header.rcode = RCODE.NXDOMAIN
            break
        return reply


class ZoneServer:
    def __init__(self, zone: str, *, servfail: Iterable[str] = (), drop: Iterable[str] = ()) -> None:
        self.resolver = _ZoneResolver(zone, servfail=servfail, drop=drop)
        self._server = DNSServer(self.resolver, address="127.0.0.1", port=0, logger=DNSLogger(log="none"))
        self.port: int = self._server.server.server_address[1]

    @property
    def queries(self) -> list[tuple[str, str]]:
        return list(self.resolver.queries)

    def start(self) -> ZoneServer:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.thread.join(5)
        self._server.server.server_close()

    def __enter__(self) -> ZoneServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
