"""Structural schema check (`sluice.validation.structural.check`) against the served schemas."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.story import STORY_VS as USER_STORY_VS

from sluice.resources.kinds import KINDS
from sluice.resources.schema import schema_for
from sluice.validation.field import ErrorType
from sluice.validation.structural import check

ISTIO = "networking.istio.io"


# Istio's samples/bookinfo/platform/kube/bookinfo.yaml (services, accounts, deployments), written out.
BOOKINFO = """
apiVersion: v1
kind: Service
metadata:
  name: details
  labels: {app: details, service: details}
spec:
  ports:
  - port: 9080
    name: http
  selector: {app: details}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bookinfo-details
  labels: {account: details}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: details-v1
  labels: {app: details, version: v1}
spec:
  replicas: 1
  selector:
    matchLabels: {app: details, version: v1}
  template:
    metadata:
      labels: {app: details, version: v1}
    spec:
      serviceAccountName: bookinfo-details
      containers:
      - name: details
        image: docker.io/istio/examples-bookinfo-details-v1:1.20.2
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 9080
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  labels: {app: reviews, service: reviews}
spec:
  ports:
  - port: 9080
    name: http
  selector: {app: reviews}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v3
  labels: {app: reviews, version: v3}
spec:
  replicas: 1
  selector:
    matchLabels: {app: reviews, version: v3}
  template:
    metadata:
      labels: {app: reviews, version: v3}
    spec:
      serviceAccountName: bookinfo-reviews
      containers:
      - name: reviews
        image: docker.io/istio/examples-bookinfo-reviews-v3:1.20.2
        imagePullPolicy: IfNotPresent
        env:
        - name: LOG_DIR
          value: "/tmp/logs"
        ports:
        - containerPort: 9080
        volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: wlp-output
          mountPath: /opt/ibm/wlp/output
      volumes:
      - name: wlp-output
        emptyDir: {}
      - name: tmp
        emptyDir: {}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: productpage-v1
  labels: {app: productpage, version: v1}
spec:
  replicas: 1
  selector:
    matchLabels: {app: productpage, version: v1}
  template:
    metadata:
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9080"
        prometheus.io/path: "/metrics"
      labels: {app: productpage, version: v1}
    spec:
      serviceAccountName: bookinfo-productpage
      containers:
      - name: productpage
        image: docker.io/istio/examples-bookinfo-productpage-v1:1.20.2
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 9080
        volumeMounts:
        - name: tmp
          mountPath: /tmp
        securityContext:
          runAsUser: 1000
        readinessProbe:
          httpGet: {path: /health, port: 9080}
          periodSeconds: 5
        resources:
          requests: {cpu: 0.1, memory: 64Mi}
          limits: {cpu: "1", memory: 256Mi}
      volumes:
      - name: tmp
        emptyDir: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v3-7d8f9c-abcde
  labels: {app: reviews, version: v3, pod-template-hash: 7d8f9c}
  creationTimestamp: null
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: reviews-v3-7d8f9c, uid: "1234", controller: true}
spec:
  containers:
  - name: reviews
    image: docker.io/istio/examples-bookinfo-reviews-v3:1.20.2
    ports: [{containerPort: 9080, protocol: TCP}]
    livenessProbe: {tcpSocket: {port: http}, initialDelaySeconds: 3}
  restartPolicy: Always
  terminationGracePeriodSeconds: 30
status:
  phase: Running
  podIP: 127.0.1.7
  conditions: [{type: Ready, status: "True"}]
  containerStatuses: [{name: reviews, ready: true, restartCount: 0, state: {running: {startedAt: "2024-01-01T00:00:00Z"}}}]
"""

GROUP = {"v1": "", "apps/v1": "apps"}


def _group(obj: dict[str, Any]) -> str:
    api = obj["apiVersion"]
    return GROUP.get(api, api.split("/")[0])


def _vs(**spec: Any) -> dict[str, Any]:
    obj = yaml.safe_load(USER_STORY_VS)
    obj["spec"].update(spec)
    return obj


def test_every_kind_has_a_schema() -> None:
    for k in KINDS:
        s = schema_for(k.group, k.kind)
        assert set(s["properties"]) >= {"apiVersion", "kind", "metadata", "status"}


def test_user_story_virtualservice_passes() -> None:
    r = check(schema_for(ISTIO, "VirtualService"), yaml.safe_load(USER_STORY_VS))
    assert r.unknown_fields == [] and r.errors == [] and r.ok


def test_unknown_fields_are_reported_with_paths() -> None:
    obj = _vs(bogusField=1)
    obj["spec"]["http"][0]["route"][0]["destination"]["hots"] = "reviews"
    obj["metadata"]["labelz"] = {}
    r = check(schema_for(ISTIO, "VirtualService"), obj)
    assert sorted(r.unknown_fields) == ["metadata.labelz", "spec.bogusField",
                                        "spec.http[0].route[0].destination.hots"]
    assert r.errors == []


def test_weight_string_is_a_type_error() -> None:
    obj = yaml.safe_load(USER_STORY_VS)
    obj["spec"]["http"][0]["route"][1]["weight"] = "ninety"
    r = check(schema_for(ISTIO, "VirtualService"), obj)
    assert len(r.errors) == 1
    e = r.errors[0]
    assert e.type is ErrorType.TYPE_INVALID
    assert e.field == "spec.http[0].route[1].weight"
    assert str(e) == ('spec.http[0].route[1].weight: Invalid value: "string": '
                      'spec.http[0].route[1].weight in body must be of type integer: "string"')


def test_hosts_string_message_matches_kube_apiserver() -> None:
    r = check(schema_for(ISTIO, "VirtualService"), _vs(hosts="reviews"))
    assert [e.message for e in r.errors] == [
        'Invalid value: "string": spec.hosts in body must be of type array: "string"']


def test_enum_violation() -> None:
    dr = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "r"},
          "spec": {"host": "reviews", "trafficPolicy": {"tls": {"mode": "FOO"}}}}
    r = check(schema_for(ISTIO, "DestinationRule"), dr)
    assert len(r.errors) == 1
    assert r.errors[0].type is ErrorType.NOT_SUPPORTED
    assert r.errors[0].field == "spec.trafficPolicy.tls.mode"
    assert r.errors[0].message == ('Unsupported value: "FOO": supported values: '
                                   '"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"')


def test_booleans_are_not_integers_and_maps_check_values() -> None:
    obj = _vs()
    obj["spec"]["http"][0]["route"][0]["weight"] = True
    obj["metadata"]["labels"] = {"app": 3}
    r = check(schema_for(ISTIO, "VirtualService"), obj)
    assert sorted(e.field for e in r.errors) == ["metadata.labels[app]", "spec.http[0].route[0].weight"]


@pytest.mark.parametrize("doc", [d for d in yaml.safe_load_all(BOOKINFO)], ids=lambda d: d["metadata"]["name"])
def test_bookinfo_objects_pass(doc: dict[str, Any]) -> None:
    r = check(schema_for(_group(doc), doc["kind"]), doc)
    assert r.unknown_fields == []
    assert r.errors == []


def test_int_or_string_and_quantity() -> None:
    dep = next(d for d in yaml.safe_load_all(BOOKINFO) if d["metadata"]["name"] == "details-v1")
    schema = schema_for("apps", "Deployment")
    dep["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
    assert check(schema, dep).ok
    dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1.5
    r = check(schema, dep)
    assert [e.field for e in r.errors] == ["spec.strategy.rollingUpdate.maxSurge"]
    dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1
    dep["spec"]["strategy"]["type"] = "Sometimes"
    assert [e.type for e in check(schema, dep).errors] == [ErrorType.NOT_SUPPORTED]


def test_preserve_unknown_fields_and_status() -> None:
    pod = next(d for d in yaml.safe_load_all(BOOKINFO) if d["kind"] == "Pod")
    pod["spec"]["affinity"] = {"nodeAffinity": {"anything": [1, 2]}}
    pod["spec"]["volumes"] = [{"name": "x", "csi": {"driver": "d"}}]
    pod["status"]["containerStatuses"][0]["allocatedResources"] = {"cpu": "1"}
    r = check(schema_for("", "Pod"), pod)
    assert r.ok, r
    vs = _vs()
    vs["status"] = {"observedGeneration": "3", "conditions": [{"type": "Reconciled", "status": "True"}]}
    assert check(schema_for(ISTIO, "VirtualService"), vs).ok


def test_nulls() -> None:
    vs = _vs(gateways=None)
    assert check(schema_for(ISTIO, "VirtualService"), vs).ok
    vs = _vs(hosts=["reviews", None])
    assert [e.field for e in check(schema_for(ISTIO, "VirtualService"), vs).errors] == ["spec.hosts[1]"]


def test_check_does_not_mutate_input() -> None:
    obj = _vs(bogusField={"a": 1})
    before = yaml.safe_dump(obj)
    check(schema_for(ISTIO, "VirtualService"), obj)
    assert yaml.safe_dump(obj) == before


@pytest.mark.parametrize("kind", ["Gateway", "ServiceEntry", "DestinationRule"])
def test_istio_samples_pass(kind: str) -> None:
    samples = {
        "Gateway": {"spec": {"selector": {"istio": "ingressgateway"}, "servers": [
            {"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]},
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["bookinfo.example.com"],
             "tls": {"mode": "SIMPLE", "credentialName": "bookinfo-cert", "minProtocolVersion": "TLSV1_2"}}]}},
        "ServiceEntry": {"spec": {"hosts": ["api.example.com"], "location": "MESH_EXTERNAL", "resolution": "DNS",
                                  "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
                                  "endpoints": [{"address": "1.2.3.4", "ports": {"https": 8443}}],
                                  "workloadSelector": {"labels": {"app": "vm"}}, "exportTo": ["."]}},
        "DestinationRule": {"spec": {"host": "reviews", "trafficPolicy": {
            "loadBalancer": {"simple": "LEAST_REQUEST"},
            "connectionPool": {"tcp": {"maxConnections": 100, "connectTimeout": "30ms"},
                               "http": {"http2MaxRequests": 1000, "h2UpgradePolicy": "UPGRADE"}},
            "outlierDetection": {"consecutive5xxErrors": 7, "interval": "5m", "baseEjectionTime": "15m"},
            "portLevelSettings": [{"port": {"number": 9080}, "loadBalancer": {"consistentHash": {
                "httpCookie": {"name": "user", "ttl": "0s"}}}}]},
            "subsets": [{"name": "v2", "labels": {"version": "v2"}},
                        {"name": "v3", "labels": {"version": "v3"}, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}],
            "workloadSelector": {"matchLabels": {"app": "productpage"}}}},
    }
    obj = {"apiVersion": "networking.istio.io/v1", "kind": kind, "metadata": {"name": "x"}, **samples[kind]}
    r = check(schema_for(ISTIO, kind), obj)
    assert r.ok, r


def test_full_virtualservice_fields() -> None:
    vs = _vs(gateways=["mesh", "bookinfo-gateway"], exportTo=["*"], http=[{
        "name": "r1",
        "match": [{"uri": {"prefix": "/reviews"}, "headers": {"end-user": {"exact": "jason"}},
                   "queryParams": {"v": {"regex": "^3$"}}, "ignoreUriCase": True, "port": 9080,
                   "sourceLabels": {"app": "productpage"}, "withoutHeaders": {"x": {"exact": "1"}}}],
        "rewrite": {"uri": "/", "authority": "reviews"},
        "timeout": "10s",
        "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure"},
        "fault": {"delay": {"fixedDelay": "7s", "percentage": {"value": 100}},
                  "abort": {"httpStatus": 500, "percentage": {"value": 0.5}}},
        "mirror": {"host": "reviews", "subset": "v3"}, "mirrorPercentage": {"value": 10.0},
        "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET"],
                       "maxAge": "24h", "allowCredentials": False},
        "headers": {"request": {"set": {"x-a": "1"}, "remove": ["x-b"]}},
        "route": [{"destination": {"host": "reviews", "subset": "v3", "port": {"number": 9080}}, "weight": 100,
                   "headers": {"response": {"add": {"x-c": "2"}}}}],
    }, {"redirect": {"uri": "/v1", "authority": "x", "redirectCode": 302, "derivePort": "FROM_REQUEST_PORT"}},
        {"delegate": {"name": "d", "namespace": "n"}},
        {"directResponse": {"status": 503, "body": {"string": "down"}}}],
        tcp=[{"match": [{"port": 27017}], "route": [{"destination": {"host": "mongo"}, "weight": 100}]}],
        tls=[{"match": [{"sniHosts": ["a.example.com"], "port": 443}], "route": [{"destination": {"host": "a"}}]}])
    r = check(schema_for(ISTIO, "VirtualService"), vs)
    assert r.ok, r
