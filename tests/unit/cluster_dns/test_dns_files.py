"""The resolv.conf and /etc/hosts a pod gets, as the kubelet writes them; the table kept current from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.resolver
import pytest

from sluice.dns.files import (
    HostResolv,
    hosts_file,
    nsswitch_conf,
    parse_resolv_conf,
    pod_hosts_file,
    pod_resolv_conf,
    resolv_conf,
    sandbox_hostname,
)
from sluice.dns.watch import NameWatcher
from sluice.store.sqlite import Store


def test_resolv_conf_cluster_first() -> None:
    assert resolv_conf("tutorial", "10.96.0.10") == (
        "search tutorial.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n")


def test_resolv_conf_is_what_a_resolver_reads(tmp_path: Path) -> None:
    f = tmp_path / "resolv.conf"
    f.write_text(resolv_conf("tutorial", "10.96.0.10"))
    r = dns.resolver.Resolver(filename=str(f))
    assert r.nameservers == ["10.96.0.10"] and r.ndots == 5
    assert [s.to_text() for s in r.search] == ["tutorial.svc.cluster.local.", "svc.cluster.local.", "cluster.local."]


def test_pod_dns_policy_and_config() -> None:
    host = HostResolv(("192.168.1.1",), ("corp.example",), ("timeout:2",))
    pod = {"metadata": {"namespace": "ns"}, "spec": {"dnsConfig": {
        "nameservers": ["1.2.3.4"], "searches": ["extra.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}
    assert pod_resolv_conf(pod, "10.96.0.10", host=host) == (
        "search ns.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\n"
        "nameserver 10.96.0.10\nnameserver 1.2.3.4\noptions ndots:2 edns0\n")
    default = {"metadata": {"namespace": "ns"}, "spec": {"dnsPolicy": "Default"}}
    assert pod_resolv_conf(default, "10.96.0.10", host=host) == (
        "search corp.example\nnameserver 192.168.1.1\noptions timeout:2\n")
    none = {"metadata": {"namespace": "ns"}, "spec": {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"]}}}
    assert pod_resolv_conf(none, "10.96.0.10") == "nameserver 9.9.9.9\n"
    assert parse_resolv_conf("# c\nnameserver 8.8.8.8\nsearch a b\noptions ndots:1\n") == \
        HostResolv(("8.8.8.8",), ("a", "b"), ("ndots:1",))


BASE = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")


def test_hosts_file_is_the_kubelets() -> None:
    assert hosts_file("10.244.0.5", "web-1") == BASE + "10.244.0.5\tweb-1\n"
    pod = {"metadata": {"name": "db-0-abc", "namespace": "tutorial"},
           "spec": {"hostname": "db-0", "subdomain": "db",
                    "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}]}}
    assert pod_hosts_file(pod, "10.244.0.7") == BASE + (
        "10.244.0.7\tdb-0.db.tutorial.svc.cluster.local\tdb-0\n"
        "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n")
    assert sandbox_hostname(pod) == "db-0"
    assert sandbox_hostname({**pod, "spec": {**pod["spec"], "setHostnameAsFQDN": True}}) == \
        "db-0.db.tutorial.svc.cluster.local"
    too_long = {"metadata": {"name": "p", "namespace": "n" * 40}, "spec": {"hostname": "h" * 20, "subdomain": "s",
                                                                         "setHostnameAsFQDN": True}}
    with pytest.raises(ValueError, match="64 characters is the max"):
        sandbox_hostname(too_long)
    long = {"metadata": {"name": "x" * 62 + "-abc", "namespace": "n"}, "spec": {}}
    assert pod_hosts_file(long, "10.0.0.1").endswith("\t" + "x" * 62 + "\n")  # 63 chars, trailing "-" dropped


def test_table_follows_the_store(tmp_path: Path) -> None:
    async def main() -> None:
        store = Store(tmp_path / "s.db")
        store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tutorial"}})
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "tutorial"},
               "spec": {"clusterIP": "10.96.0.12", "ports": [{"port": 9080}]}}
        store.create("services", svc)
        w = NameWatcher(store)
        w.start()
        try:
            await w.wait_synced()
            assert w.table().lookup("reviews.tutorial.svc.cluster.local") is not None
            se = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                  "metadata": {"name": "db", "namespace": "tutorial"},
                  "spec": {"hosts": ["db.example.internal"], "addresses": ["240.240.0.9"]}}
            store.create("serviceentries.networking.istio.io", se)
            store.delete("services", "tutorial", "reviews")
            for _ in range(200):
                t = w.table()
                if t.lookup("reviews.tutorial.svc.cluster.local") is None and t.lookup("db.example.internal"):
                    break
                await asyncio.sleep(0.01)
            node = w.table().lookup("db.example.internal")
            assert node is not None and node.a == ["240.240.0.9"]
            assert w.table().lookup("reviews.tutorial.svc.cluster.local") is None
        finally:
            await w.stop()
            store.close()

    asyncio.run(main())


def test_nsswitch_asks_files_then_dns() -> None:
    hosts = [line.split()[1:] for line in nsswitch_conf().splitlines() if line.startswith("hosts:")]
    assert hosts == [["files", "dns"]]
