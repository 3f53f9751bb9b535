"""Reading manifests for `apply`/`delete`/`create -f`: files, directories, URLs and stdin, multi-document YAML or JSON."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sluice.cli.errors import CliError
from sluice.kube import decoding

__all__ = ["Manifest", "parse_documents", "read_sources"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_BYTES = 16 * 1024 * 1024

# The C loader is much faster on large manifests; fall back when PyYAML lacks libyaml.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Manifest:
    source: str  # the file name kubectl shows in messages ("STDIN" for -)
    obj: dict[str, Any]
    line: int | None = None  # 1-based line where the document starts (for `analyze` origins)


def parse_documents(text: str, source: str) -> list[Manifest]:
    """Split a YAML stream (`---` separated) or a JSON document into objects; `List` kinds are flattened."""
    stripped = text.lstrip()
    docs: Iterable[Any]
    try:  # the API server's bounded decoders: an alias bomb or a recursive anchor is refused, as kubectl does
        if stripped.startswith(("{", "[")):
            try:
                docs = [decoding.decode_json(stripped, MAX_BYTES)]
            except decoding.Malformed:
                docs = decoding.decode_yaml_documents(text, MAX_BYTES, keep_empty=True)
        else:
            docs = decoding.decode_yaml_documents(text, MAX_BYTES, keep_empty=True)
    except decoding.DecodeError as e:
        where = f"{e.field}: " if e.field else ""
        raise CliError(f"error parsing {source}: error converting YAML to JSON: {where}{e.message}") from e
    lines = _document_lines(text) if not stripped.startswith(("{", "[")) else []
    out: list[Manifest] = []
    for i, doc in enumerate(docs):
        line = lines[i] if i < len(lines) else None
        out.extend(Manifest(m.source, m.obj, line) if line and m.line is None else m for m in _flatten(doc, source))
    return out


def _document_lines(text: str) -> list[int]:
    """The first line of each YAML document (content, not the `---`), in load_all order."""
    try:
        return [node.start_mark.line + 1 if node is not None else 0
                for node in yaml.compose_all(text, Loader=_Loader)]
    except yaml.YAMLError:
        return []


def _flatten(doc: Any, source: str) -> list[Manifest]:
    if doc is None:
        return []
    if isinstance(doc, list):
        return [m for d in doc for m in _flatten(d, source)]
    if not isinstance(doc, dict):
        raise CliError(f'error validating "{source}": error validating data: invalid object: expected a mapping')
    if not doc:
        return []
    kind = str(doc.get("kind") or "")
    if kind.endswith("List") and isinstance(doc.get("items"), list):
        return [m for d in doc["items"] for m in _flatten(d, source)]
    missing = [f for f in ("apiVersion", "kind") if not doc.get(f)]
    if missing:
        listed = ", ".join(f"{f} not set" for f in missing)
        raise CliError(
            f'error validating "{source}": error validating data: [{listed}]; '
            "if you choose to ignore these errors, turn validation off with --validate=false"
        )
    return [Manifest(source, doc)]


def _read_url(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            data: bytes = resp.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise CliError(f"unable to read URL \"{url}\", server reported {e.code} {e.reason}, status code={e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise CliError(f'unable to read URL "{url}": {e}') from e
    return data.decode("utf-8", "replace")


def _files_in(directory: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in directory.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES)


def read_sources(filenames: Iterable[str], *, recursive: bool = False) -> list[Manifest]:
    """Load every `-f` argument in order (kubectl visits files of a directory in lexical order)."""
    out: list[Manifest] = []
    for name in filenames:
        if name == "-":
            out.extend(parse_documents(sys.stdin.read(), "STDIN"))
        elif name.startswith(("http://", "https://")):
            out.extend(parse_documents(_read_url(name), name))
        else:
            path = Path(name)
            if path.is_dir():
                for f in _files_in(path, recursive):
                    out.extend(parse_documents(_read_file(f), str(f)))
            else:
                out.extend(parse_documents(_read_file(path), name))
    return out


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f'the path "{path}" does not exist') from None
    except OSError as e:
        raise CliError(f'unable to read "{path}": {e.strerror}') from e
    except UnicodeDecodeError as e:
        raise CliError(f'unable to read "{path}": not UTF-8 text') from e
