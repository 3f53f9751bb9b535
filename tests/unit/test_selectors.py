"""Label and field selectors: kube-apiserver's grammar, matching and error wording."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.kube.selectors import (
    LabelSelector,
    SelectorError,
    format_labels,
    from_label_selector_dict,
    parse_field_selector,
    parse_label_selector,
)

# apimachinery's TestSelectorParse: these round-trip (spaces removed) through String().
GOOD = [
    "x=a,y=b,z=c",
    "",
    "x!=a,y=b",
    "x=",
    "x= ",
    "x=,z= ",
    "x= ,z= ",
    "!x",
    "x>1",
    "x>1,z<5",
]
BAD = ["x=a||y=b", "x==a==b", "!x=a", "x<a"]


@pytest.mark.parametrize("text", GOOD)
def test_parse_round_trips(text: str) -> None:
    assert str(parse_label_selector(text)) == text.replace(" ", "")


@pytest.mark.parametrize("text", BAD)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("app in (x,reviews),version!=v2", "app in (reviews,x),version!=v2"),
        ("version!=v2, app in (x, reviews)", "app in (reviews,x),version!=v2"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("app==reviews", "app==reviews"),
        ("notin=in", "notin=in"),
        ("example.com/tier=front", "example.com/tier=front"),
        ("x=a,a=x", "a=x,x=a"),
    ],
)
def test_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


LABELS = {"app": "reviews", "version": "v2", "tier": "3"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=reviews", True),
        ("app==reviews", True),
        ("app=ratings", False),
        ("app!=ratings", True),
        ("missing!=x", True),
        ("app in (x,reviews)", True),
        ("app in (x,y)", False),
        ("app notin (x,y)", True),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("app=reviews,version!=v2", False),
        ("app=reviews,version in (v2,v3)", True),
        ("tier>2", True),
        ("tier<3", False),
        ("app>1", False),
        ("missing=", False),
    ],
)
def test_matches(text: str, matches: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a=b,", "found '', expected: identifier after ','"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
        ("a==>b", "unable to parse requirement: found '>', expected: identifier"),
        (
            "-a=b",
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric "
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
            "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "app=-x",
            "unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be an empty "
            "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        ("a<b", "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"),
        ("Example.com/a=b", "prefix part a lowercase RFC 1123 subdomain"),
        ("a/b/c", "a valid label key must consist of"),
        ("a" * 64, "name part must be no more than 63 bytes"),
    ],
)
def test_errors_use_kube_apiserver_wording(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector(text)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_selector_is_frozen_and_hashable() -> None:
    sel = parse_label_selector("app=reviews")
    with pytest.raises(AttributeError):
        sel.requirements = ()  # type: ignore[misc]
    assert hash(sel) == hash(parse_label_selector("app = reviews"))


def test_from_label_selector_dict() -> None:
    sel = from_label_selector_dict(
        {
            "matchLabels": {"version": "v1", "app": "reviews"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
            ],
        }
    )
    assert str(sel) == "app=reviews,!canary,env notin (prod),tier in (a,b),version=v1,zone"
    assert sel.matches({"app": "reviews", "version": "v1", "tier": "a", "zone": "z"})
    assert not sel.matches({"app": "reviews", "version": "v1", "tier": "a", "zone": "z", "canary": "1"})
    assert not sel.matches({"app": "reviews", "version": "v1", "tier": "c", "zone": "z"})


def test_nil_selector_matches_nothing_and_empty_matches_everything() -> None:
    assert not from_label_selector_dict(None).matches({"a": "b"})
    assert from_label_selector_dict({}).matches({"a": "b"})
    assert from_label_selector_dict({"matchLabels": {}}).empty
    assert LabelSelector.everything().matches(None)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, '"Foo" is not a valid label selector operator'),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
         "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
         'values: Invalid value: ["x"]: values set must be empty for exists and does not exist'),
        ({"matchLabels": {"bad key": "v"}}, 'key: Invalid value: "bad key"'),
    ],
)
def test_from_label_selector_dict_errors(selector: dict[str, object], message: str) -> None:
    with pytest.raises(SelectorError) as err:
        from_label_selector_dict(selector)
    assert message in str(err.value)


def test_format_labels() -> None:
    assert format_labels({"version": "v1", "app": "reviews"}) == "app=reviews,version=v1"
    assert format_labels({}) == "<none>"


label_text = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?", fullmatch=True)


@given(st.dictionaries(label_text, label_text, min_size=1, max_size=4))
def test_selector_from_labels_matches_them_and_round_trips(labels: dict[str, str]) -> None:
    text = ",".join(f"{k}={v}" for k, v in labels.items())
    sel = parse_label_selector(text)
    assert sel.matches(labels)
    assert parse_label_selector(str(sel)) == sel
    assert from_label_selector_dict({"matchLabels": labels}) == sel


# ---------------------------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------------------------

POD = {"metadata": {"name": "reviews-v2-abc", "namespace": "default"}, "status": {"phase": "Running"}, "spec": {}}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("metadata.name=reviews-v2-abc", True),
        ("metadata.name==reviews-v2-abc", True),
        ("metadata.name!=reviews-v2-abc", False),
        ("metadata.name=other", False),
        ("metadata.name=reviews-v2-abc,metadata.namespace=default", True),
        ("metadata.namespace!=kube-system", True),
    ],
)
def test_field_selector_matches(text: str, matches: bool) -> None:
    assert parse_field_selector(text).matches(POD) is matches


def test_field_selector_allow_list_and_missing_fields() -> None:
    allowed = {"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"}
    assert parse_field_selector("status.phase=Running", allowed).matches(POD)
    assert parse_field_selector("spec.nodeName=", allowed).matches(POD)  # unset reads as ""
    assert not parse_field_selector("spec.nodeName!=", allowed).matches(POD)
    with pytest.raises(SelectorError, match="^field label not supported: spec.foo$"):
        parse_field_selector("spec.foo=1")
    with pytest.raises(SelectorError, match="field label not supported: status.phase"):
        parse_field_selector("status.phase=Running")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
        ("metadata.name=a\\x", "invalid field selector: invalid escape sequence: \\x"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_field_selector(text)
    assert str(err.value) == message


def test_field_selector_escapes_and_string_form() -> None:
    sel = parse_field_selector("metadata.namespace==default,metadata.name=a\\,b")
    assert sel.requirements[0].value == "a,b"
    assert str(sel) == "metadata.name=a\\,b,metadata.namespace=default"
    assert sel.requires_exact_match("metadata.namespace") == "default"
    assert sel.requires_exact_match("metadata.uid") is None
