"""Objects encoded elsewhere are stored as they are, with the revision put in (`Store.create/update(encoded=)`),
and read back as text (`Store.get_json`): what the API server's body worker path relies on."""

from __future__ import annotations

import json
from pathlib import Path

from sluice.api.body_worker import template
from sluice.store.sqlite import Store


def test_encoded_objects_are_stored_with_their_revision(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "ü"},
               "metadata": {"name": "x", "namespace": "ns", "resourceVersion": "999"}}
        created = store.create("configmaps", json.loads(template(obj)), template(obj).decode())
        rv = int(created["metadata"]["resourceVersion"])
        got = store.get_json("configmaps", "ns", "x")
        assert got is not None and got[0] == rv
        assert json.loads(got[1]) == store.get("configmaps", "ns", "x") == {
            **obj, "metadata": {"name": "x", "namespace": "ns", "resourceVersion": str(rv)}}
        obj["data"] = {"b": "2"}
        updated = store.update("configmaps", json.loads(template(obj)), rv, template(obj).decode())
        assert store.get("configmaps", "ns", "x") == updated and updated["data"] == {"b": "2"}
        assert store.get_json("configmaps", "ns", "y") is None
        events = store.watch("configmaps", None, rv - 1)[1]
        assert [e.object["data"] for e in events] == [{"a": "ü"}, {"b": "2"}]
    finally:
        store.close()
