"""Detect VirtualService rules and matches that can never be used (Istio's analyzeUnreachable*Rules).

`validate` turns the findings into warnings; `sluice analyze` turns them into IST0130 / IST0131.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["RuleFinding", "find_unreachable_rules", "UNREACHABLE_RULE", "INEFFECTIVE_MATCH"]

FindingType = Literal["VirtualServiceUnreachableRule", "VirtualServiceIneffectiveMatch"]
UNREACHABLE_RULE: Final = "VirtualServiceUnreachableRule"
INEFFECTIVE_MATCH: Final = "VirtualServiceIneffectiveMatch"


@dataclass(frozen=True)
class RuleFinding:
    """One unreachable rule (params: rule, reason) or ineffective match (params: rule, match, earlier rule)."""

    type: FindingType
    params: tuple[str, ...]

    @property
    def message(self) -> str:
        """The validator's warning text (lower-case `virtualService`, as Istio's webhook says it)."""
        if self.type == UNREACHABLE_RULE:
            return f"virtualService rule {self.params[0]} not used ({self.params[1]})"
        rule, match, dup = self.params
        return f"virtualService rule {rule} match {match} is not used (duplicate/overlapping match in rule {dup})"


def _rule_name(route: dict[str, Any], index: int, http: bool) -> str:
    name = route.get("name") if http else None
    return json.dumps(name) if isinstance(name, str) and name else f"#{index}"


def _match_name(match: Any, index: int, http: bool) -> str:
    name = match.get("name") if http and isinstance(match, dict) else None
    return json.dumps(name) if isinstance(name, str) and name else f"#{index}"


def _match_key(match: Any, http: bool) -> str:
    """Identity of a match for duplicate detection; an HTTP match's `name` does not affect routing."""
    if http and isinstance(match, dict):
        match = {k: v for k, v in match.items() if k != "name"}
    return json.dumps(match, sort_keys=True, default=str)


@dataclass(frozen=True)
class _PrefixMatch:
    """The parts of a uri-prefix match that the overlap check compares."""

    rule: str
    match: str
    prefix: str
    port: Any
    method: str
    authority: str
    headers: dict[str, str]
    query: dict[str, str]
    without_headers: dict[str, str]


def _exact_or_prefix(sm: Any) -> str:
    if not isinstance(sm, dict):
        return ""
    if sm.get("exact"):
        return f"exact:{sm['exact']}"
    if sm.get("prefix"):
        return f"prefix:{sm['prefix']}"
    return ""


def _string_map(raw: Any) -> dict[str, str]:
    return {str(k): _exact_or_prefix(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _prefix_match(rule: str, match: Any, match_index: int) -> _PrefixMatch | None:
    if not isinstance(match, dict) or not isinstance(match.get("uri"), dict):
        return None
    prefix = match["uri"].get("prefix")
    if not isinstance(prefix, str) or not prefix:
        return None
    return _PrefixMatch(
        rule=rule,
        match=_match_name(match, match_index, True),
        prefix=prefix,
        port=match.get("port") or 0,
        method=_exact_or_prefix(match.get("method")) or "exact:GET",  # no method behaves like GET here
        authority=_exact_or_prefix(match.get("authority")),
        headers=_string_map(match.get("headers")),
        query=_string_map(match.get("queryParams")),
        without_headers=_string_map(match.get("withoutHeaders")),
    )


def _value_covered(a: str, b: str) -> bool:
    return a == b or a.startswith(b)


def _map_covered(a: dict[str, str], b: dict[str, str]) -> bool:
    if len(a) != len(b):
        return False
    return all(k in b and _value_covered(v, b[k]) for k, v in a.items())


def _covers(a: _PrefixMatch, b: _PrefixMatch) -> bool:
    """Whether earlier match `a` catches every request later match `b` would (same comparison as Istio)."""
    return (b.prefix.startswith(a.prefix) and a.port == b.port
            and _value_covered(a.method, b.method) and _value_covered(a.authority, b.authority)
            and _map_covered(a.headers, b.headers) and _map_covered(a.query, b.query)
            and _map_covered(a.without_headers, b.without_headers))


def _analyze(routes: list[Any], http: bool) -> list[RuleFinding]:
    out: list[RuleFinding] = []
    seen: dict[str, int] = {}
    catch_all = -1
    prefixes: list[_PrefixMatch] = []
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        rule = _rule_name(route, i, http)
        raw = route.get("match")
        matches: list[Any] = raw if isinstance(raw, list) else []
        if not matches:
            if catch_all >= 0:
                out.append(RuleFinding(UNREACHABLE_RULE, (rule, "only the last rule can have no matches")))
            catch_all = i
            continue
        if catch_all >= 0:
            out.append(RuleFinding(UNREACHABLE_RULE, (rule, "route without matches defined before")))
            continue
        duplicates = 0
        for j, match in enumerate(matches):
            key = _match_key(match, http)
            if key in seen:
                dup = seen[key]
                dup_route = routes[dup] if isinstance(routes[dup], dict) else {}
                out.append(RuleFinding(INEFFECTIVE_MATCH,
                                       (rule, _match_name(match, j, http), _rule_name(dup_route, dup, http))))
                duplicates += 1
                continue
            seen[key] = i
            if http and (pm := _prefix_match(rule, match, j)) is not None:
                prefixes.append(pm)
        if duplicates == len(matches):
            out.append(RuleFinding(UNREACHABLE_RULE, (rule, "all matches used by prior rules")))
    out.extend(RuleFinding(INEFFECTIVE_MATCH, (later.rule, f"{later.match} of prefix {later.prefix}",
                                                f"{earlier.match} of prefix {earlier.prefix} on {earlier.rule}"))
               for earlier, later in _overlapping_prefixes(prefixes))
    return out


def _keys(pm: _PrefixMatch) -> tuple[tuple[str, ...], ...]:
    # Only matches with the same header/query keys can cover one another (`_covers`).
    return tuple(sorted(pm.headers)), tuple(sorted(pm.query)), tuple(sorted(pm.without_headers))


def _overlapping_prefixes(prefixes: list[_PrefixMatch]) -> list[tuple[_PrefixMatch, _PrefixMatch]]:
    """(earlier, later) pairs where the earlier match covers the later one with a shorter prefix, ordered by
    the earlier then the later match. Earlier matches are indexed by prefix, so a later match looks up only
    the proper prefixes of its own instead of comparing with every earlier match (a VirtualService with
    thousands of routes is validated in linear, not quadratic, time)."""
    by_prefix: dict[tuple[str, tuple[tuple[str, ...], ...]], list[int]] = {}
    pairs: list[tuple[int, int]] = []
    for y, later in enumerate(prefixes):
        keys = _keys(later)
        for n in range(1, len(later.prefix)):
            for x in by_prefix.get((later.prefix[:n], keys), ()):
                if _covers(prefixes[x], later):
                    pairs.append((x, y))
        by_prefix.setdefault((later.prefix, keys), []).append(y)
    return [(prefixes[x], prefixes[y]) for x, y in sorted(pairs)]


def find_unreachable_rules(spec: dict[str, Any]) -> list[RuleFinding]:
    """Unreachable rules and ineffective matches of a VirtualService spec, in http, tcp, tls order."""
    out: list[RuleFinding] = []
    for key, http in (("http", True), ("tcp", False), ("tls", False)):
        routes = spec.get(key)
        if isinstance(routes, list):
            out.extend(_analyze(routes, http))
    return out
