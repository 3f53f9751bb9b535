"""API errors printed exactly as kubectl prints them."""

from __future__ import annotations

from sluice.cli.errors import format_api_error
from sluice.client.errors import ApiError, status_from_response


def _invalid(*causes: tuple[str, str]) -> ApiError:
    return ApiError(422, {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
        "message": "ignored by kubectl",
        "details": {"name": "reviews", "group": "networking.istio.io", "kind": "VirtualService",
                    "causes": [{"reason": "FieldValueInvalid", "field": f, "message": m} for f, m in causes]},
    })


def test_one_cause_on_one_line() -> None:
    err = _invalid(("spec.http[0].route", "Invalid value: 90: total destination weight 90 != 100"))
    assert format_api_error(err) == (
        'The VirtualService "reviews" is invalid: spec.http[0].route: Invalid value: 90: '
        "total destination weight 90 != 100"
    )


def test_several_causes_as_a_list_with_the_trailing_space() -> None:
    err = _invalid(("spec.http[0].route", "a"), ("spec.http[1].route", "b"), ("spec.http[0].route", "a"))
    assert format_api_error(err) == (
        'The VirtualService "reviews" is invalid: \n* spec.http[0].route: a\n* spec.http[1].route: b'
    )


def test_invalid_without_details() -> None:
    err = ApiError(422, {"kind": "Status", "reason": "Invalid", "message": "bad", "code": 422})
    assert format_api_error(err) == "The request is invalid: bad"


def test_other_errors_with_reason_and_source() -> None:
    err = ApiError(404, {"kind": "Status", "reason": "NotFound", "code": 404,
                         "message": 'namespaces "tutorial" not found'})
    assert format_api_error(err) == 'Error from server (NotFound): namespaces "tutorial" not found'
    assert format_api_error(err, source="STDIN", action="creating") == (
        'Error from server (NotFound): error when creating "STDIN": namespaces "tutorial" not found'
    )


def test_non_status_bodies_become_statuses() -> None:
    st = status_from_response(404, b"404 page not found")
    assert st["reason"] == "NotFound"
    assert st["message"] == "the server could not find the requested resource"
    st = status_from_response(500, b"boom")
    assert format_api_error(ApiError(500, st)) == (
        'Error from server (InternalError): an error on the server ("boom") has prevented the request from succeeding'
    )
    assert status_from_response(409, b'{"kind":"Status","reason":"AlreadyExists","message":"x"}')["code"] == 409
