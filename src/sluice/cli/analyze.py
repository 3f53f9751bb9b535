"""`sluice analyze`: istioctl-analyze-style checks over the stored Istio config, workloads and given files."""

from __future__ import annotations

from typing import Any

import click

from sluice.cli import printing
from sluice.cli.context import Session, global_options, session
from sluice.cli.manifests import read_sources
from sluice.cli.proxy import rejected_config
from sluice.client.errors import ApiError, ClientError

__all__ = ["COMMANDS", "ANALYZED_TYPES"]

# Istio config plus what references resolve against (hosts → Services, subsets → Pods via Deployments,
# credentialName → Secrets).
ANALYZED_TYPES = (
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "gateways.networking.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "services",
    "pods",
    "deployments.apps",
    "namespaces",
    "configmaps",  # the mesh config (istio-system/istio)
    "secrets",  # a Gateway's credentialName (only names are read, never printed)
)


def _stored_objects(s: Session) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ANALYZED_TYPES:
        try:
            info = s.client.resolve(name)
            items = s.client.list(info, None).get("items") or []
        except (ClientError, ApiError) as e:
            if isinstance(e, ApiError) and not e.not_found:
                raise
            continue  # a type this server does not serve (yet)
        out.extend(printing.with_type(o, info) for o in items)
    return out


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or "")


@click.command("analyze")
@click.option("-f", "--filename", "filenames", multiple=True, help="Files to analyze along with the stored config.")
@click.option("-R", "--recursive", is_flag=True, help="Process the directory used in -f recursively.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Analyze every namespace.")
@click.option("--use-kube/--no-use-kube", default=True, show_default=True,
              help="Include the config stored in the API server (--no-use-kube: files only).")
@global_options
def analyze_cmd(filenames: tuple[str, ...], recursive: bool, all_namespaces: bool, use_kube: bool) -> int:
    """Analyze Istio configuration and print validation messages (exit status 79 when errors are found)."""
    from sluice.validation.analyze import (
        MORE_INFO,
        analyze,
        analyze_target,
        exit_code,
        format_message,
        summary_line,
    )

    s = session()
    namespace = s.namespace_flag or (s.namespace if use_kube else "default")
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    rejected: list[dict[str, Any]] = []
    if use_kube:
        for obj in _stored_objects(s):
            objects[_key(obj)] = obj
        rejected = rejected_config(s)
    origins: dict[tuple[str, str, str], str] = {}
    for m in read_sources(filenames, recursive=recursive):
        obj = dict(m.obj)
        meta = dict(obj.get("metadata") or {})
        if not meta.get("namespace") and str(obj.get("kind")) not in ("Namespace",):
            meta["namespace"] = namespace
        obj["metadata"] = meta
        objects[_key(obj)] = obj  # files override the stored version of the same object
        if m.line:
            origins[_key(obj)] = f"{m.source}:{m.line}"
    scope = None if all_namespaces else {namespace}
    messages = analyze(list(objects.values()), namespaces=scope, origins=origins, rejected=rejected)
    for msg in messages:
        click.echo(format_message(msg))
    target = analyze_target(None if all_namespaces else namespace)
    summary = summary_line(messages, target)
    if summary:
        click.echo(summary, err=True)
    code = int(exit_code(messages))
    if code:
        click.echo(MORE_INFO, err=True)
    return code


COMMANDS = [analyze_cmd]
