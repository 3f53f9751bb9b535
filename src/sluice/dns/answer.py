"""DNS queries → responses from a `NameTable`, as CoreDNS answers for the cluster zone.

Used by `sluice.dns.server` for every UDP datagram and TCP message. `local_answer` is pure: authoritative
answers (AA) for the cluster zone and the known reverse names, NXDOMAIN or NODATA with the zone's SOA in the
authority section (CoreDNS's: `ns.dns.<zone>. hostmaster.<zone>. <serial> 7200 1800 86400 <ttl>`), SRV
targets' addresses in the additional section, ServiceEntry hosts. Anything else (and the target of an
ExternalName's CNAME outside the cluster) goes to an `Upstream` callback: the default answers NXDOMAIN at
once (this machine has no resolver to forward to), `forwarder` asks real resolvers, and a slow or failing
upstream gives SERVFAIL after a bound. A packet that does not parse gets FORMERR when its header can be read,
and is dropped otherwise; responses are never sent back to responses.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable, Sequence

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from sluice.dns.names import NameTable, Node

__all__ = ["Upstream", "nxdomain_upstream", "refused_upstream", "forwarder", "local_answer", "respond", "formerr"]

log = logging.getLogger("sluice.dns")

Upstream = Callable[[dns.message.Message], Awaitable[dns.message.Message | None]]
UDP_PLAIN = 512  # the largest UDP answer to a query without EDNS (RFC 1035)
UDP_MAX = 4096  # the largest UDP answer whatever buffer a query advertises (bigger ones fragment)
_HEADER = struct.Struct("!HHHHHH")
_QR = 0x8000


async def nxdomain_upstream(query: dns.message.Message) -> dns.message.Message:
    """No resolver outside the cluster: every other name does not exist, answered at once."""
    r = dns.message.make_response(query)
    r.set_rcode(dns.rcode.NXDOMAIN)
    return r


async def refused_upstream(query: dns.message.Message) -> dns.message.Message:
    """Answer REFUSED for names outside the cluster (a resolver then tries its next server)."""
    r = dns.message.make_response(query)
    r.set_rcode(dns.rcode.REFUSED)
    return r


def forwarder(servers: Sequence[tuple[str, int]], timeout: float = 1.0) -> Upstream:
    """An upstream that asks real resolvers in turn (UDP, then TCP when the answer is truncated), for machines
    that have one; it raises when none answers, which `respond` turns into SERVFAIL."""
    async def ask(query: dns.message.Message) -> dns.message.Message:
        error: Exception | None = None
        for host, port in servers:
            try:
                answer = await dns.asyncquery.udp(query, host, timeout=timeout, port=port)
                if answer.flags & dns.flags.TC:
                    answer = await dns.asyncquery.tcp(query, host, timeout=timeout, port=port)
                return answer
            except (dns.exception.DNSException, OSError) as e:
                error = e
        raise error or LookupError("no upstream DNS server configured")
    return ask


def formerr(wire: bytes) -> bytes | None:
    """FORMERR for a packet whose header is readable but whose body is not; None when nothing can be said."""
    if len(wire) < _HEADER.size:
        return None
    ident, flags = struct.unpack("!HH", wire[:4])
    if flags & _QR:
        return None
    # Same id, QR set, the query's opcode and RD, no sections.
    out_flags = _QR | (flags & 0x7900) | dns.rcode.FORMERR
    return _HEADER.pack(ident, out_flags, 0, 0, 0, 0)


def _rrset(owner: dns.name.Name, ttl: int, rdtype: dns.rdatatype.RdataType, texts: list[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(owner, ttl, dns.rdataclass.IN, rdtype, texts)


def _soa(table: NameTable) -> dns.rrset.RRset:
    zone = table.zone
    text = f"ns.dns.{zone}. hostmaster.{zone}. {table.serial} 7200 1800 86400 {table.ttl}"
    return _rrset(dns.name.from_text(zone), min(table.ttl, 300), dns.rdatatype.SOA, [text])


def _records(owner: dns.name.Name, node: Node, rdtype: dns.rdatatype.RdataType, ttl: int) -> list[dns.rrset.RRset]:
    T = dns.rdatatype
    texts = {T.A: node.a, T.AAAA: node.aaaa, T.PTR: [f"{p}." for p in node.ptr], T.TXT: [f'"{t}"' for t in node.txt],
             T.SRV: [f"{s.priority} {s.weight} {s.port} {s.target}." for s in node.srv]}
    return [_rrset(owner, ttl, t, values) for t, values in texts.items() if values and rdtype in (t, T.ANY)]


def local_answer(table: NameTable, query: dns.message.Message) -> dns.message.Message | None:
    """The response for a query the table answers (one question, class IN), or None for the upstream."""
    q = query.question[0]
    name = q.name.to_text(omit_final_dot=True)
    authoritative = table.authoritative(name)
    node = table.lookup(name)
    if not authoritative and node is None:
        return None
    r = dns.message.make_response(query)
    r.flags |= dns.flags.AA
    rdtype = dns.rdatatype.RdataType(q.rdtype)
    if node is not None and node.cname and rdtype != dns.rdatatype.CNAME:
        r.answer.append(_rrset(q.name, table.ttl, dns.rdatatype.CNAME, [f"{node.cname}."]))
        target = table.lookup(node.cname)
        if target is not None:
            r.answer += _records(dns.name.from_text(node.cname), target, rdtype, table.ttl)
        return r
    if node is not None:
        if node.cname:
            r.answer.append(_rrset(q.name, table.ttl, dns.rdatatype.CNAME, [f"{node.cname}."]))
        r.answer += _records(q.name, node, rdtype, table.ttl)
        if rdtype == dns.rdatatype.SRV:
            for srv_target in dict.fromkeys(s.target for s in node.srv):
                t = table.lookup(srv_target)
                if t is not None:
                    owner = dns.name.from_text(srv_target)
                    r.additional += _records(owner, t, dns.rdatatype.A, table.ttl)
                    r.additional += _records(owner, t, dns.rdatatype.AAAA, table.ttl)
    if authoritative and rdtype == dns.rdatatype.SOA and name.lower() == table.zone:
        r.answer.append(_soa(table))
    if not r.answer:
        if authoritative and not table.exists(name):
            r.set_rcode(dns.rcode.NXDOMAIN)
        if authoritative:
            r.authority.append(_soa(table))
    return r


async def respond(wire: bytes, table: NameTable, upstream: Upstream, *, max_size: int | None,
                  upstream_timeout: float = 2.0) -> bytes | None:
    """The wire response to one query (None: drop it). `max_size` None means the query's UDP limit."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # any parse failure, dnspython's or not, is the sender's
        return formerr(wire)
    if query.flags & dns.flags.QR:
        return None
    limit = max_size if max_size is not None else (min(UDP_MAX, max(UDP_PLAIN, query.payload))
                                                   if query.edns >= 0 else UDP_PLAIN)
    response: dns.message.Message | None
    if query.opcode() != dns.opcode.QUERY:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.NOTIMP)
    elif len(query.question) != 1:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.FORMERR)
    elif query.question[0].rdclass != dns.rdataclass.IN:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.REFUSED)
    else:
        response = local_answer(table, query)
        if response is None:
            response = await _ask_upstream(query, upstream, upstream_timeout)
        else:
            await _chase_outside(response, table, upstream, upstream_timeout)
    try:
        return response.to_wire(max_size=limit, prefer_truncation=True)
    except Exception:
        log.exception("dns: cannot encode the answer to %s", query.question)
        fail = dns.message.make_response(query)
        fail.set_rcode(dns.rcode.SERVFAIL)
        return fail.to_wire(max_size=limit, prefer_truncation=True)


async def _chase_outside(response: dns.message.Message, table: NameTable, upstream: Upstream,
                         timeout: float) -> None:
    """An ExternalName's CNAME to a name outside the cluster: add the upstream's records for it, as CoreDNS does."""
    if len(response.answer) != 1 or response.answer[0].rdtype != dns.rdatatype.CNAME:
        return
    rdtype = response.question[0].rdtype
    if rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return
    target = response.answer[0][0].target
    if table.lookup(target.to_text(omit_final_dot=True)) is not None:
        return
    answer = await _ask_upstream(dns.message.make_query(target, rdtype), upstream, timeout)
    if answer.rcode() == dns.rcode.NOERROR:
        response.answer += answer.answer


async def _ask_upstream(query: dns.message.Message, upstream: Upstream, timeout: float) -> dns.message.Message:
    try:
        answer = await asyncio.wait_for(upstream(query), timeout)
    except Exception:  # a failing or slow upstream is SERVFAIL, never a hang or an error out of the loop
        log.debug("dns: upstream failed for %s", query.question, exc_info=True)
        answer = None
    if answer is None or answer.id != query.id:
        answer = dns.message.make_response(query)
        answer.set_rcode(dns.rcode.SERVFAIL)
    return answer
