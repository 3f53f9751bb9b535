"""The decommission proof's access-log witness counts inbound lines in Istio's TEXT and JSON formats alike."""

from __future__ import annotations

from sluice.rollouts.decommission import inbound_lines


def test_inbound_lines_in_text_and_json() -> None:
    text = ('[2026-12-04T04:42:37.584Z] "GET /status/200 HTTP/1.1" 200 - via_upstream - "-" 0 0 0 0 "-" "curl/7.88.1" '
            '"38916e3e" "httpbin:8000" "127.2.0.2:8080" inbound|8080|| 127.1.0.2:53758 127.1.0.2:8080 '
            '127.1.0.1:34036 - default')
    outbound = text.replace("inbound|8080||", "outbound|8000||httpbin.default.svc.cluster.local")
    json_line = '{"upstream_cluster":"inbound|8080||","method":"GET","response_code":200}'
    assert inbound_lines([text, outbound, json_line, outbound]) == (2, json_line)
    assert inbound_lines(['{"upstream_cluster":"outbound|8000||httpbin.default.svc.cluster.local"}']) == (0, "")
