"""The name table and the answers built from it, message by message (dnspython messages, no sockets)."""

from __future__ import annotations

import asyncio
import ipaddress

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from tests.unit.cluster_dns.cluster import objects

from sluice.dns.answer import formerr, local_answer, nxdomain_upstream, refused_upstream, respond
from sluice.dns.names import NameTable, build_table


@pytest.fixture
def table() -> NameTable:
    return build_table(**objects(), serial=1700000000)  # type: ignore[arg-type]


def ask(table: NameTable, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    r = local_answer(table, q)
    assert r is not None, f"{name} is not answered locally"
    return r


def texts(section: list[dns.rrset.RRset], rdtype: str | None = None) -> list[str]:
    return sorted(rd.to_text() for rrset in section for rd in rrset
                  if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype))


def test_service_names_resolve_to_the_cluster_ip(table: NameTable) -> None:
    r = ask(table, "reviews.tutorial.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert texts(r.answer) == ["10.96.0.12"] and r.answer[0].ttl == 30
    # Case is kept as asked (0x20), matching is not case-sensitive.
    r = ask(table, "Reviews.Tutorial.SVC.cluster.local.")
    assert r.answer[0].name.to_text() == "Reviews.Tutorial.SVC.cluster.local."


def test_headless_service_resolves_to_ready_endpoints(table: NameTable) -> None:
    assert texts(ask(table, "db.tutorial.svc.cluster.local.").answer) == ["10.244.0.7", "10.244.0.8"]
    # A pod with hostname + subdomain = the Service's name is named by its hostname, others by dashed IP.
    assert texts(ask(table, "db-0.db.tutorial.svc.cluster.local.").answer) == ["10.244.0.7"]
    assert texts(ask(table, "10-244-0-8.db.tutorial.svc.cluster.local.").answer) == ["10.244.0.8"]
    assert ask(table, "10-244-0-9.db.tutorial.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN  # not ready
    # Headless without endpoints: no name (CoreDNS's NXDOMAIN).
    assert ask(table, "lonely.tutorial.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    # Endpoint names exist for ClusterIP Services too; the Service's own name stays the ClusterIP.
    assert texts(ask(table, "10-244-0-20.reviews.tutorial.svc.cluster.local.").answer) == ["10.244.0.20"]


def test_srv_records_as_coredns(table: NameTable) -> None:
    r = ask(table, "_http._tcp.reviews.tutorial.svc.cluster.local.", "SRV")
    assert texts(r.answer) == ["0 100 9080 reviews.tutorial.svc.cluster.local."]
    assert texts(r.additional) == ["10.96.0.12"]
    r = ask(table, "reviews.tutorial.svc.cluster.local.", "SRV")  # every port, weights split evenly
    assert texts(r.answer) == ["0 33 7000 reviews.tutorial.svc.cluster.local.",
                               "0 33 9080 reviews.tutorial.svc.cluster.local.",
                               "0 33 9090 reviews.tutorial.svc.cluster.local."]
    r = ask(table, "_pg._tcp.db.tutorial.svc.cluster.local.", "SRV")  # headless: the endpoints' port
    assert texts(r.answer) == ["0 50 15432 10-244-0-8.db.tutorial.svc.cluster.local.",
                               "0 50 15432 db-0.db.tutorial.svc.cluster.local."]
    assert texts(r.additional) == ["10.244.0.7", "10.244.0.8"]
    assert ask(table, "_http._udp.reviews.tutorial.svc.cluster.local.", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_pod_names(table: NameTable) -> None:
    assert texts(ask(table, "10-244-0-7.tutorial.pod.cluster.local.").answer) == ["10.244.0.7"]
    assert texts(ask(table, "10-1-2-3.tutorial.pod.cluster.local.").answer) == ["10.1.2.3"]  # pods insecure
    assert ask(table, "10-1-2-3.nowhere.pod.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    verified = build_table(**objects(), pod_mode="verified")  # type: ignore[arg-type]
    assert ask(verified, "10-1-2-3.tutorial.pod.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert texts(ask(verified, "10-244-0-8.tutorial.pod.cluster.local.").answer) == ["10.244.0.8"]


def test_unknown_names_are_nxdomain_with_the_soa(table: NameTable) -> None:
    r = ask(table, "nope.tutorial.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA and not r.answer
    assert [rr.to_text() for rr in r.authority] == [
        "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 30"]
    # Names above existing ones exist (empty non-terminals): NOERROR, no data.
    for name in ("tutorial.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "empty.svc.cluster.local.",
                 "tutorial.pod.cluster.local."):
        r = ask(table, name)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority
    assert ask(table, "nowhere.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN  # no such namespace
    assert texts(ask(table, "cluster.local.", "SOA").answer)[0].startswith("ns.dns.cluster.local.")


def test_aaaa_for_an_a_only_name_is_nodata(table: NameTable) -> None:
    r = ask(table, "reviews.tutorial.svc.cluster.local.", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA


def test_external_name_is_a_cname_chased_in_the_table(table: NameTable) -> None:
    r = ask(table, "ext.tutorial.svc.cluster.local.")
    assert texts(r.answer, "CNAME") == ["reviews.tutorial.svc.cluster.local."]
    assert texts(r.answer, "A") == ["10.96.0.12"]


def test_dns_version(table: NameTable) -> None:
    assert texts(ask(table, "dns-version.cluster.local.", "TXT").answer) == ['"1.1.0"']


def test_external_name_outside_the_cluster_is_chased_upstream() -> None:
    svc = {"metadata": {"name": "api", "namespace": "tutorial"},
           "spec": {"type": "ExternalName", "externalName": "api.example.com"}}
    table = build_table(services=[svc])

    async def upstream(query: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(query)
        if query.question[0].name.to_text() == "api.example.com." and query.question[0].rdtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text("api.example.com.", 60, "IN", "A", "203.0.113.7"))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
        return r

    async def main() -> None:
        q = dns.message.make_query("api.tutorial.svc.cluster.local.", "A")
        r = dns.message.from_wire(await respond(q.to_wire(), table, upstream, max_size=None) or b"")
        assert texts(r.answer, "CNAME") == ["api.example.com."] and texts(r.answer, "A") == ["203.0.113.7"]
        r = dns.message.from_wire(await respond(q.to_wire(), table, nxdomain_upstream, max_size=None) or b"")
        assert texts(r.answer) == ["api.example.com."] and r.rcode() == dns.rcode.NOERROR

    asyncio.run(main())


def test_reverse_names(table: NameTable) -> None:
    assert texts(ask(table, "12.0.96.10.in-addr.arpa.", "PTR").answer) == ["reviews.tutorial.svc.cluster.local."]
    assert texts(ask(table, "7.0.244.10.in-addr.arpa.", "PTR").answer) == ["db-0.db.tutorial.svc.cluster.local."]
    assert local_answer(table, dns.message.make_query("1.1.1.10.in-addr.arpa.", "PTR")) is None  # upstream's


def test_service_entry_addresses(table: NameTable) -> None:
    r = ask(table, "mysql.example.internal.")
    assert texts(r.answer) == ["240.240.0.5"]  # the /16 range is not an address
    assert not ask(table, "mysql.example.internal.", "AAAA").answer
    # A wildcard host answers for the names below it, with the name asked.
    r = ask(table, "a.b.wild.example.")
    assert texts(r.answer) == ["240.240.0.5"] and r.answer[0].name.to_text() == "a.b.wild.example."
    for name in ("wild.example.", "example.org."):  # not below / unknown
        assert local_answer(table, dns.message.make_query(name, "A")) is None


def test_service_entry_auto_allocated_address(table: NameTable) -> None:
    """Without `addresses`, a host gets Istio's auto-allocated address from 240.240.0.0/16 — the same one the
    sidecars listen on — unless the ServiceEntry opted out or its resolution is NONE."""
    from tests.unit.cluster_dns.cluster import SERVICE_ENTRIES

    from sluice.autoallocate import auto_addresses

    r = ask(table, "api.example.com.")
    [ip] = texts(r.answer)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("240.240.0.0/16")
    assert auto_addresses(SERVICE_ENTRIES) == {"api.example.com": ip}
    for name in ("optout.example.com.", "none.example.com."):
        assert local_answer(table, dns.message.make_query(name, "A")) is None


def test_respond_goes_upstream_for_other_names_and_bounds_it(table: NameTable) -> None:
    async def main() -> None:
        q = dns.message.make_query("example.org.", "A")
        r = dns.message.from_wire(await respond(q.to_wire(), table, nxdomain_upstream, max_size=None) or b"")
        assert r.rcode() == dns.rcode.NXDOMAIN and r.id == q.id
        r = dns.message.from_wire(await respond(q.to_wire(), table, refused_upstream, max_size=None) or b"")
        assert r.rcode() == dns.rcode.REFUSED

        async def hang(query: dns.message.Message) -> dns.message.Message:
            await asyncio.Event().wait()
            raise AssertionError

        async def boom(query: dns.message.Message) -> dns.message.Message:
            raise RuntimeError("upstream broke")

        for bad in (hang, boom):
            out = await respond(q.to_wire(), table, bad, max_size=None, upstream_timeout=0.05)
            assert dns.message.from_wire(out or b"").rcode() == dns.rcode.SERVFAIL

    asyncio.run(main())


def test_malformed_and_odd_queries(table: NameTable) -> None:
    async def main() -> None:
        q = dns.message.make_query("reviews.tutorial.svc.cluster.local.", "A")
        wire = q.to_wire()
        bad = await respond(wire[:-3], table, nxdomain_upstream, max_size=None)  # question cut short
        assert bad is not None and bad[:2] == wire[:2]
        assert dns.message.from_wire(bad).rcode() == dns.rcode.FORMERR
        assert await respond(b"\x01\x02\x03", table, nxdomain_upstream, max_size=None) is None
        response = dns.message.make_response(q).to_wire()
        assert await respond(response, table, nxdomain_upstream, max_size=None) is None  # never answer answers
        assert formerr(response) is None
        two = dns.message.make_query("reviews.tutorial.svc.cluster.local.", "A")
        two.question.append(two.question[0])
        r = dns.message.from_wire(await respond(two.to_wire(), table, nxdomain_upstream, max_size=None) or b"")
        assert r.rcode() == dns.rcode.FORMERR
        notify = dns.message.make_query("cluster.local.", "SOA")
        notify.set_opcode(dns.opcode.NOTIFY)
        r = dns.message.from_wire(await respond(notify.to_wire(), table, nxdomain_upstream, max_size=None) or b"")
        assert r.rcode() == dns.rcode.NOTIMP

    asyncio.run(main())


def test_udp_answers_are_truncated_to_the_query_limit() -> None:
    many = {"metadata": {"name": "big", "namespace": "tutorial"}, "spec": {"clusterIP": "None", "ports": []}}
    ep = {"metadata": {"name": "big", "namespace": "tutorial"},
          "subsets": [{"addresses": [{"ip": f"10.244.1.{i}"} for i in range(1, 120)], "ports": []}]}
    table = build_table(services=[many], endpoints=[ep])

    async def main() -> None:
        q = dns.message.make_query("big.tutorial.svc.cluster.local.", "A", use_edns=False)
        out = await respond(q.to_wire(), table, nxdomain_upstream, max_size=None) or b""
        assert len(out) <= 512 and dns.message.from_wire(out).flags & dns.flags.TC
        full = await respond(q.to_wire(), table, nxdomain_upstream, max_size=65535) or b""
        assert len(dns.message.from_wire(full).answer[0]) == 119

    asyncio.run(main())


def test_a_malformed_object_loses_only_its_own_names() -> None:
    o = objects()
    bad_svc = {"metadata": {"name": "bad", "namespace": "tutorial"}, "spec": {"clusterIP": "10.96.0.99", "ports": 7}}
    bad_ep = {"metadata": {"name": "db", "namespace": "tutorial"}, "subsets": ["nope"]}
    bad_se = {"metadata": {"name": "x", "namespace": "tutorial"}, "spec": {"hosts": 5, "addresses": ["1.2.3.4"]}}
    table = build_table(services=[bad_svc, *o["services"]], endpoints=[bad_ep], pods=o["pods"],
                        namespaces=o["namespaces"], service_entries=[bad_se, *o["service_entries"]])
    assert texts(ask(table, "reviews.tutorial.svc.cluster.local.").answer) == ["10.96.0.12"]
    assert texts(ask(table, "mysql.example.internal.").answer) == ["240.240.0.5"]


def test_no_auto_address_for_names_of_the_cluster_zone() -> None:
    from sluice.autoallocate import auto_addresses

    se = {"metadata": {"name": "pg-0", "namespace": "tutorial"},
          "spec": {"hosts": ["pg-0.pg.tutorial.svc.cluster.local", "db.example.net", "*.wild.example.net"],
                   "resolution": "DNS"}}
    assert list(auto_addresses([se])) == ["db.example.net"]


def test_status_addresses_as_istio_writes_them() -> None:
    from sluice.autoallocate import auto_addresses
    from sluice.controllers.autoallocate import desired_addresses

    se = {"metadata": {"name": "ext", "namespace": "default"},
          "spec": {"hosts": ["API.example.net", "*.wild.example.net"], "resolution": "DNS"}}
    given = {"metadata": {"name": "given", "namespace": "default"},
             "spec": {"hosts": ["db.example.net"], "addresses": ["192.0.2.1"], "resolution": "STATIC"}}
    allocated = auto_addresses([se, given])
    assert desired_addresses(se, allocated) == [{"host": "API.example.net", "value": allocated["api.example.net"]}]
    assert desired_addresses(given, allocated) == []  # its own addresses: nothing allocated
