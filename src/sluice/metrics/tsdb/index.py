"""Series index: interned label sets, series ids, and postings (label name → value → series ids).

Owned by `sluice.metrics.tsdb.db.TSDB`. Series ids are small integers handed out in increasing order and never
reused, so every postings list is an `array('I')` that stays sorted by construction. Strings and (name, value)
pairs are interned: the thousand series of one Istio metric share one copy of `reporter="destination"`.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence

from sluice.metrics.series import Labels, Matcher

__all__ = ["SeriesIndex"]

_MATCHED_MAX = 1024  # matcher sets remembered (a few dashboards' worth)


def label_value(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


class SeriesIndex:
    def __init__(self) -> None:
        self.labels: list[Labels | None] = []  # by series id; None once retention dropped the series
        self._ids: dict[Labels, int] = {}
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._postings: dict[str, dict[str, array[int]]] = {}
        # Matcher set → its series ids, until a series comes or goes: dashboards send the same selectors on
        # every refresh, and intersecting postings (or running a regex over every value) is most of a small
        # query's selection cost.
        self._matched: dict[tuple[Matcher, ...], list[int]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, labels: Labels) -> int | None:
        return self._ids.get(labels)

    def add(self, labels: Labels, sid: int | None = None) -> int:
        """Register a new label set (the caller checked `get` first); `sid` is given when replaying disk."""
        pairs = self._pairs
        interned = []
        for pair in labels:
            p = pairs.get(pair)
            if p is None:
                p = pairs[pair] = (sys.intern(pair[0]), sys.intern(pair[1]))
            interned.append(p)
        key: Labels = tuple(interned)
        self._matched.clear()
        if sid is None:
            sid = len(self.labels)
        while len(self.labels) <= sid:
            self.labels.append(None)
        self.labels[sid] = key
        self._ids[key] = sid
        for name, value in key:
            by_value = self._postings.get(name)
            if by_value is None:
                by_value = self._postings[name] = {}
            plist = by_value.get(value)
            if plist is None:
                by_value[value] = array("I", (sid,))
            elif plist[-1] < sid:
                plist.append(sid)
            else:  # replaying a snapshot whose ids are not in order: keep the list sorted
                plist.append(sid)
                by_value[value] = array("I", sorted(plist))
        return sid

    def remove(self, sids: Iterable[int]) -> None:
        """Forget series (retention); postings lists touched are rebuilt once each."""
        dead = set(sids)
        self._matched.clear()
        touched: set[tuple[str, str]] = set()
        for sid in dead:
            labels = self.labels[sid]
            if labels is None:
                continue
            self.labels[sid] = None
            del self._ids[labels]
            touched.update(labels)
        for name, value in touched:
            by_value = self._postings[name]
            kept = array("I", (s for s in by_value[value] if s not in dead))
            if kept:
                by_value[value] = kept
            else:
                del by_value[value]
                self._pairs.pop((name, value), None)
                if not by_value:
                    del self._postings[name]

    def names(self) -> list[str]:
        return sorted(self._postings)

    def values(self, name: str) -> dict[str, array[int]]:
        return self._postings.get(name, {})

    def live(self) -> Iterator[int]:
        return (sid for sid, labels in enumerate(self.labels) if labels is not None)

    def matching(self, matchers: Sequence[Matcher]) -> Iterator[int]:
        """Ids of live series whose labels satisfy every matcher, in increasing id order."""
        key = tuple(matchers)
        found = self._matched.get(key)
        if found is None:
            found = list(self._matching(matchers))
            if len(self._matched) >= _MATCHED_MAX:
                self._matched.clear()
            self._matched[key] = found
        return iter(found)

    def remembered(self, matchers: Sequence[Matcher]) -> list[int] | None:
        """The ids `matching` would return, if it has them remembered (None: it would have to work them out)."""
        return self._matched.get(tuple(matchers))

    def _matching(self, matchers: Sequence[Matcher]) -> Iterator[int]:
        """`matching`, computed.

        Matchers that reject the empty string (`a="x"`, `a=~"x.+"`, `a!=""`) can only hold for series that
        carry the label, so they are answered from postings and intersected, smallest list first; the others
        (`a!="x"`, `a=~"x|"`) are checked on each remaining candidate.
        """
        lists: list[Sequence[int]] = []
        rest: list[Matcher] = []
        for m in matchers:
            if m.matches(""):
                rest.append(m)
                continue
            by_value = self._postings.get(m.name)
            if not by_value:
                return iter(())
            if m.type == "=":
                plist = by_value.get(m.value)
                if plist is None:
                    return iter(())
                lists.append(plist)
            else:
                hit = [p for v, p in by_value.items() if m.matches(v)]
                if not hit:
                    return iter(())
                lists.append(hit[0] if len(hit) == 1 else sorted({s for p in hit for s in p}))
        if lists:
            lists.sort(key=len)
            first = lists[0]
            if len(lists) == 1:
                candidates: Iterable[int] = first
            else:
                others = [set(p) for p in lists[1:]]
                candidates = (s for s in first if all(s in o for o in others))
        else:
            candidates = self.live()
        if not rest:
            return iter(list(candidates))
        labels = self.labels
        return (s for s in candidates
                if all(m.matches(label_value(labels[s] or (), m.name)) for m in rest))
