"""Run the write-time validator offline: IST0106 (errors), IST0133 (other warnings), IST0130/IST0131 (rules).

Run by `analyze` for `sluice analyze`.
"""

from __future__ import annotations

from sluice.validation.analyze.index import Obj
from sluice.validation.analyze.message import Message
from sluice.validation.istio import IstioOptions, find_unreachable_rules, validate
from sluice.validation.istio.unreachable import UNREACHABLE_RULE

__all__ = ["schema_messages"]


def schema_messages(obj: Obj, options: IstioOptions) -> list[Message]:
    result = validate(obj.kind, obj.raw, options)
    out = [Message("IST0106", "Error", obj.kind, obj.namespace, obj.name, f"Schema validation error: {e}")
           for e in result.errors]
    rule_warnings: set[str] = set()
    if obj.kind == "VirtualService":
        for f in find_unreachable_rules(obj.spec):
            rule_warnings.add(f.message)
            if f.type == UNREACHABLE_RULE:
                out.append(Message("IST0130", "Warning", obj.kind, obj.namespace, obj.name,
                                   f"VirtualService rule {f.params[0]} not used ({f.params[1]})."))
            else:
                rule, match, dup = f.params
                out.append(Message("IST0131", "Info", obj.kind, obj.namespace, obj.name,
                                   f"VirtualService rule {rule} match {match} is not used "
                                   f"(duplicate/overlapping match in rule {dup})."))
    out.extend(Message("IST0133", "Warning", obj.kind, obj.namespace, obj.name, f"Schema validation warning: {w}")
               for w in result.warnings if w not in rule_warnings)
    return out
