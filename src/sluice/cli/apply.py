"""`sluice apply -f`: kubectl's client-side apply (last-applied annotation, create or 3-way merge patch)."""

from __future__ import annotations

import copy
import json
import sys
import time
from typing import Any

import click

from sluice.cli.context import Session, global_options, session
from sluice.cli.errors import CliError, format_api_error
from sluice.cli.manifests import Manifest, read_sources
from sluice.cli.targets import manifest_namespace
from sluice.client.api import MERGE_PATCH
from sluice.client.errors import ApiError, ClientError

__all__ = ["COMMANDS", "LAST_APPLIED", "FIELD_MANAGER", "annotated", "last_applied_json", "validation_mode"]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
FIELD_MANAGER = "kubectl-client-side-apply"
CONFLICT_RETRIES = 5


def last_applied_json(obj: dict[str, Any]) -> str:
    """The annotation value: the object without the annotation, compact sorted JSON + "\\n" (Go's json.Encoder)."""
    clean = copy.deepcopy(obj)
    meta = clean.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    # kubectl sets the (possibly empty) annotations map before encoding, so `"annotations":{}` appears.
    meta["annotations"] = annotations
    return json.dumps(_prune_nulls(clean), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _prune_nulls(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _prune_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_prune_nulls(x) for x in v]
    return v


def annotated(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as it will be sent: with the fresh last-applied annotation."""
    out = copy.deepcopy(obj)
    value = last_applied_json(out)
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), LAST_APPLIED: value}
    return out


def validation_mode(value: str) -> str:
    """kubectl's --validate values → the fieldValidation query parameter."""
    mode = {"true": "Strict", "strict": "Strict", "warn": "Warn", "false": "Ignore", "ignore": "Ignore"}.get(value.lower())
    if mode is None:
        raise CliError(f'invalid - validate option "{value}"; must be one of: strict (or true), warn, ignore (or false)')
    return mode


def _three_way(original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    from sluice.api.patch import PatchError, three_way_merge_patch

    try:
        patch: Any = three_way_merge_patch(original, modified, current)
    except PatchError as e:
        raise CliError(str(e)) from None
    return patch if isinstance(patch, dict) else {}


def _changes_nothing(patch: dict[str, Any], current: dict[str, Any], group: str, kind: str) -> bool:
    """Whether the server would store exactly `current` after this patch.

    A JSON merge patch replaces lists whole, so a list the server filled with defaults (container
    `protocol: TCP`, `imagePullPolicy`, …) always differs from the file; kubectl avoids that with a
    strategic merge patch. Applying the server's own defaulting to the patched object tells the
    two cases apart, so re-applying an unchanged Deployment prints `unchanged` as kubectl does."""
    from sluice.api.patch import json_merge_patch
    from sluice.resources.defaults import apply_defaults

    merged = json_merge_patch(current, patch)
    if isinstance(merged, dict):
        apply_defaults(group, kind, merged)
    return bool(merged == current)


def apply_one(s: Session, m: Manifest, validation: str) -> str:
    """Apply one object; returns `created`, `configured` or `unchanged`. Raises ApiError/CliError."""
    obj = copy.deepcopy(m.obj)
    api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
    name = str((obj.get("metadata") or {}).get("name") or "")
    try:
        info = s.client.discovery.for_kind(api_version, kind)
    except ClientError as e:
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        raise CliError(f'resource mapping not found for name: "{name}" namespace: "{ns}" from "{m.source}": {e}\n'
                       "ensure CRDs are installed first") from None
    if not name:
        raise CliError(f'error when retrieving current configuration of:\nResource: "{info.qualified}", '
                       f'GroupVersionKind: "{api_version}, Kind={kind}"\nName: "", Namespace: "{s.namespace}"\n'
                       f'from server for: "{m.source}": resource name may not be empty')
    ns = manifest_namespace(s, info, obj)
    modified = annotated(obj)
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            current = s.client.get(info, name, ns)
        except ApiError as e:
            if not e.not_found:
                raise _with_source(e, m.source, "retrieving current configuration of") from None
            modified.get("metadata", {}).pop("resourceVersion", None)
            try:
                s.client.create(info, ns, modified, field_manager=FIELD_MANAGER, field_validation=validation)
            except ApiError as e2:
                raise _with_source(e2, m.source, "creating") from None
            return "created"
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        raw_original = annotations.get(LAST_APPLIED)
        if raw_original is None:
            sys.stderr.write(
                f"Warning: resource {info.plural}/{name} is missing the {LAST_APPLIED} annotation which is required "
                f"by sluice apply. sluice apply should only be used on resources created declaratively by either "
                f"sluice create --save-config or sluice apply. The missing annotation will be patched automatically.\n"
            )
        original: dict[str, Any] | None
        try:
            parsed = json.loads(raw_original) if raw_original else None
            original = parsed if isinstance(parsed, dict) else None
        except ValueError:
            original = None
        patch = _three_way(original, modified, current)
        if not patch or _changes_nothing(patch, current, info.group, info.kind):
            return "unchanged"
        try:
            s.client.patch(info, name, ns, patch, content_type=MERGE_PATCH, field_manager=FIELD_MANAGER,
                           field_validation=validation)
        except ApiError as e:
            if e.code == 409 and attempt < CONFLICT_RETRIES:
                # kubectl re-reads and recomputes on conflict, sleeping 1 s from the second retry on.
                if attempt:
                    time.sleep(1)
                continue
            raise _with_source(e, m.source, "patching") from None
        return "configured"
    return "configured"  # pragma: no cover - the loop always returns or raises


def _with_source(e: ApiError, source: str, action: str) -> CliError:
    return CliError(format_api_error(e, source=source, action=action), raw=True)


@click.command("apply")
@click.option("-f", "--filename", "filenames", multiple=True, required=True,
              help="The files that contain the configurations to apply (file, directory, URL or - for stdin).")
@click.option("-R", "--recursive", is_flag=True, help="Process the directory used in -f recursively.")
@click.option("--validate", default="strict", show_default=True,
              help="strict (or true), warn, or ignore (or false): how the server treats unknown fields.")
@click.option("-o", "--output", type=click.Choice(["name"]), help="Output format: name.")
@global_options
def apply_cmd(filenames: tuple[str, ...], recursive: bool, validate: str, output: str | None) -> None:
    """Apply a configuration to a resource by file name or stdin (client-side apply, like kubectl)."""
    s = session()
    mode = validation_mode(validate)
    manifests = read_sources(filenames, recursive=recursive)
    if not manifests:
        raise CliError("no objects passed to apply")
    errors: list[str] = []
    for m in manifests:
        try:
            result = apply_one(s, m, mode)
        except CliError as e:
            errors.append(e.message if e.raw else f"error: {e.message}")
            continue
        info = s.client.discovery.for_kind(str(m.obj["apiVersion"]), str(m.obj["kind"]))
        name = m.obj["metadata"]["name"]
        if output == "name":
            click.echo(f"{info.kind_qualified}/{name}")
        else:
            click.echo(f"{info.kind_qualified}/{name} {result}")
    if errors:
        # kubectl keeps going and reports every failure at the end.
        raise CliError("\n".join(errors), raw=True)


COMMANDS = [apply_cmd]
