"""dlr_webhook against moto: receipts move messages, orphans, bad input in each format's shape."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from local.api import http_event
from smsbridge.models import StatusReport, sms_id_for
from smsbridge.repository import MessageRepository
from smsbridge.statuses import Status
from tests.handlers.conftest import Stack, dlr_event
from tests.support import basic, bearer

SMARTSWITCH_AUTH = {"_login": "smartswitch", "_password": "smartswitch-secret"}


def submitted(stack: Stack, to: str, message_id: str) -> dict[str, Any]:
    stack.invoke(
        stack.handler_once("send_message"),
        http_event(
            "POST",
            "/v1/messages",
            body=json.dumps({"to": to, "text": "hello", "message_id": message_id}),
            headers=bearer(),
        ),
    )
    stack.drain_dispatch(stack.handler_once("dispatch"))
    record = stack.item(sms_id_for("demo", message_id))
    assert record is not None and record["status"] == "submitted"
    return record


def dlr(
    stack: Stack,
    carrier: str,
    *,
    query: str = "",
    body: str | bytes = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    return stack.invoke(
        stack.handler("dlr_webhook"), dlr_event(carrier, query=query, body=body, headers=headers)
    )


def smartswitch(stack: Stack, *groups: tuple[str, str]) -> dict[str, Any]:
    params: list[tuple[str, str]] = []
    for gateway_id, state in groups:
        params += [("message_id", gateway_id), ("message_state", state)]
    return dlr(stack, "smartswitch", query=urlencode(params + list(SMARTSWITCH_AUTH.items())))


def test_smartswitch_receipts_move_a_message_to_delivered(stack: Stack) -> None:
    record = submitted(stack, "+4915112345601", "r-1")
    answer = smartswitch(stack, (record["gateway_id"], "enroute"))
    assert answer["statusCode"] == 200
    assert stack.item(record["id"])["status"] == "enroute"  # type: ignore[index]
    smartswitch(stack, (record["gateway_id"], "delivered"))
    final = stack.item(record["id"])
    assert final is not None
    assert final["status"] == "delivered"
    assert final["delivered_at"]
    assert [h["status"] for h in final["history"]][-2:] == ["enroute", "delivered"]


def test_late_and_repeated_receipts_never_move_a_message_backwards(stack: Stack) -> None:
    record = submitted(stack, "+4915112345601", "r-2")
    gid = record["gateway_id"]
    for state in ("delivered", "enroute", "delivered", "undeliverable"):
        assert smartswitch(stack, (gid, state))["statusCode"] == 200
    final = stack.item(record["id"])
    assert final is not None
    assert final["status"] == "delivered"
    # Each distinct receipt once: the repeated `delivered` adds no entry.
    states = [h["status"] for h in final["history"] if h.get("source") == "receipt:smartswitch"]
    assert states == ["delivered", "enroute", "undeliverable"]


def test_a_receipt_with_leading_zeros_matches_the_carrier_id(stack: Stack) -> None:
    record = submitted(stack, "+4915112345601", "r-3")
    smartswitch(stack, ("00" + record["gateway_id"], "delivered"))
    assert stack.item(record["id"])["status"] == "delivered"  # type: ignore[index]


def test_a_receipt_before_the_submission_is_kept_and_applied_at_link(stack: Stack) -> None:
    answer = smartswitch(stack, ("987654321", "delivered"))
    assert answer["statusCode"] == 200
    record = submitted(stack, "+4915112345601", "r-4")
    repository = MessageRepository(stack.dynamodb, stack.table)
    link = repository.link_gateway_id(
        "smartswitch", "987654321", record["id"], expires_at=int(time.time()) + 60
    )
    assert link.linked and link.holder == record["id"]
    assert [o.status for o in link.orphans] == [Status.DELIVERED]
    # A link repeated (its answer lost, or the write applying them failed) hands them over again.
    again = repository.link_gateway_id(
        "smartswitch", "987654321", record["id"], expires_at=int(time.time()) + 60
    )
    assert [o.status for o in again.orphans] == [Status.DELIVERED]
    # Both orders end the same: a receipt after the link applies directly.
    assert (
        repository.store_orphan(
            "smartswitch", "987654321", StatusReport(Status.DELIVERED, source="t"), expires_at=0
        )
        == record["id"]
    )


def test_conceptomovil_receipt_applies_and_answers_ok(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    record = submitted(stack, "+525512345601", "r-5")
    body = json.dumps(
        {
            "messageId": int(record["gateway_id"]),
            "statusDelivery": "DELIVERED",
            "sendDate": 1588694204000,
            "doneDate": 1588694204000,
            "carrier": "CLARO",
        }
    )
    headers = {
        "Content-Type": "application/json",
        "Authorization": basic("conceptomovil", "conceptomovil-secret"),
    }
    with caplog.at_level(logging.DEBUG, logger="smsbridge.receipts"):
        answer = dlr(stack, "conceptomovil", body=body, headers=headers)
    assert (answer["statusCode"], answer["body"]) == (200, "OK")
    applied = [r for r in caplog.records if r.getMessage() == "receipts applied"]
    assert [(getattr(r, "id", ""), getattr(r, "after", "")) for r in applied] == [
        (record["id"], "delivered")
    ]
    final = stack.item(record["id"])
    assert final is not None
    assert final["status"] == "delivered"
    # A doneDate years before the submission is kept in the history as given, but the status
    # changed when the receipt arrived.
    assert final["history"][-1]["at"].startswith("2020-05-05")
    assert final["status_changed_at"] == final["delivered_at"] >= final["submitted_at"]
    headers["Authorization"] = basic("conceptomovil", "wrong")
    with caplog.at_level(logging.WARNING, logger="smsbridge.receipts"):
        assert dlr(stack, "conceptomovil", body=body, headers=headers)["statusCode"] == 401
    refused = [r for r in caplog.records if r.getMessage() == "receipt refused"]
    # The log says the credentials were configured (so the carrier's were wrong), never them.
    assert [getattr(r, "dlr_credentials_configured", None) for r in refused] == [True]
    assert "wrong" not in caplog.text and "conceptomovil-secret" not in caplog.text


def vibes_receipt(gateway_id: str, kind: str, is_error: bool, extra: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><mtMessageResponse messageId="{gateway_id}" '
        f'submitterMessageId="x" receiptDate="2011-04-19T15:10:08.320-05:00"><type>{kind}</type>'
        f'<status isError="{str(is_error).lower()}"><description>d</description>{extra}</status>'
        f"</mtMessageResponse>"
    )


def test_vibes_system_then_handset_is_enroute_then_delivered(stack: Stack) -> None:
    record = submitted(stack, "+18475551201", "r-6")
    token = "token=vibes-secret"
    xml = {"Content-Type": "application/xml"}
    answer = dlr(
        stack,
        "vibes",
        query=token,
        body=vibes_receipt(record["gateway_id"], "System", False),
        headers=xml,
    )
    assert (answer["statusCode"], answer["body"]) == (200, "")
    assert stack.item(record["id"])["status"] == "enroute"  # type: ignore[index]
    dlr(
        stack,
        "vibes",
        query=token,
        body=vibes_receipt(record["gateway_id"], "Handset", False),
        headers=xml,
    )
    assert stack.item(record["id"])["status"] == "delivered"  # type: ignore[index]


def test_vibes_carrier_success_is_delivered(stack: Stack) -> None:
    """Final-only receipts: Vibes calls back once, `Carrier` / `Success` (seed, SPEC 2.2); the
    message must end delivered, not stay open until its time-out."""
    record = submitted(stack, "+18475551203", "r-6b")
    dlr(
        stack,
        "vibes",
        query="token=vibes-secret",
        body=vibes_receipt(record["gateway_id"], "Carrier", False),
        headers={"Content-Type": "application/xml"},
    )
    final = stack.item(record["id"])
    assert final is not None
    assert (final["status"], final["gateway_status"]) == ("delivered", "Carrier")
    assert final["delivered_at"]


def test_vibes_error_is_undeliverable_with_the_codes(stack: Stack) -> None:
    record = submitted(stack, "+18475551202", "r-7")
    codes = "<errorCode>100</errorCode><internalErrorCode>255</internalErrorCode>"
    dlr(
        stack,
        "vibes",
        query="token=vibes-secret",
        body=vibes_receipt(record["gateway_id"], "Carrier", True, codes),
        headers={"Content-Type": "application/xml"},
    )
    final = stack.item(record["id"])
    assert final is not None
    assert final["status"] == "undeliverable"
    assert "100" in final["gateway_error"] and "255" in final["gateway_error"]


def test_bad_input_is_answered_in_each_formats_shape(stack: Stack) -> None:
    assert dlr(stack, "nobody", query="x=1")["statusCode"] == 404
    wrong = dlr(
        stack, "smartswitch", query="message_id=1&message_state=delivered&_login=a&_password=b"
    )
    assert wrong["statusCode"] == 401
    assert json.loads(wrong["body"])["errors"][0]["code"] == "authentication"
    bad = smartswitch(stack, ("1", "delivered"), ("2", "bogus"))
    assert bad["statusCode"] == 400
    assert "data" not in json.loads(bad["body"])
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaa">]><mtMessageResponse messageId="&a;"/>'
    hostile = dlr(
        stack,
        "vibes",
        query="token=vibes-secret",
        body=bomb,
        headers={"Content-Type": "application/xml"},
    )
    assert hostile["statusCode"] == 400
    huge = dlr(
        stack,
        "conceptomovil",
        body="[" + ",".join(["{}"] * 100_000) + "]",
        headers={
            "Content-Type": "application/json",
            "Authorization": basic("conceptomovil", "conceptomovil-secret"),
        },
    )
    assert huge["statusCode"] == 413
    wrong_type = dlr(
        stack,
        "conceptomovil",
        body="<x/>",
        headers={
            "Content-Type": "text/xml",
            "Authorization": basic("conceptomovil", "conceptomovil-secret"),
        },
    )
    assert wrong_type["statusCode"] == 415


def test_one_request_of_100_receipts_is_applied_in_one_invocation(stack: Stack) -> None:
    batch = [
        {"to": f"+49151123456{i % 10:02d}", "text": "hello", "message_id": f"bulk-{i}"}
        for i in range(100)
    ]
    stack.invoke(
        stack.handler_once("send_message"),
        http_event("POST", "/v1/messages", body=json.dumps({"messages": batch}), headers=bearer()),
    )
    for _ in range(10):  # ten records a receive
        stack.drain_dispatch(stack.handler_once("dispatch"))
    records = [stack.item(sms_id_for("demo", m["message_id"])) or {} for m in batch]
    assert [r.get("status") for r in records] == ["submitted"] * 100
    answer = smartswitch(stack, *[(r["gateway_id"], "delivered") for r in records])
    assert answer["statusCode"] == 200
    assert len(json.loads(answer["body"])["data"]) == 100
    assert all(stack.item(r["id"])["status"] == "delivered" for r in records)  # type: ignore[index]
