"""Receipts against moto: a carrier's own forwarding, links that never re-point, repeated
receipts that neither grow a message nor slow it down, and nothing a carrier says is dropped."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

from local.api import http_event
from smsbridge.repository import MAX_ORPHANS, MessageRepository
from smsbridge.transitions import HISTORY_HEAD, HISTORY_TAIL
from tests.handlers.conftest import Stack, dlr_event
from tests.handlers.test_dlr_webhook import SMARTSWITCH_AUTH
from tests.support import basic, bearer
from tests.unit.test_carrier_vibes import SEED_ALTERNATE, SEED_ORIGINAL

XML = {"Content-Type": "application/xml"}
TOKEN = "token=vibes-secret"
ALTERNATE_ID = "734cd3d1-bea6-4a6f-8bac-bae985345a27"
SEED_ORIGINAL_ID = "865cd3d1-bea6-4a6f-8bac-bae483248a27"


_webhooks: dict[int, ModuleType] = {}


def dlr_module(stack: Stack) -> ModuleType:
    """One dlr_webhook module per stack (a warm container)."""
    module = _webhooks.get(id(stack))
    if module is None:
        _webhooks.clear()
        module = _webhooks[id(stack)] = stack.handler("dlr_webhook")
    return module


def dlr(
    stack: Stack,
    carrier: str,
    *,
    query: str = "",
    body: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST /dlr/{carrier} to one dlr_webhook module per stack (a warm container)."""
    return stack.invoke(
        dlr_module(stack), dlr_event(carrier, query=query, body=body, headers=headers)
    )


def send(stack: Stack, to: str, message_id: str, **fields: Any) -> dict[str, Any]:
    """Accept and submit one message; its record (submitted)."""
    answer = stack.invoke(
        stack.handler("send_message"),
        http_event(
            "POST",
            "/v1/messages",
            body=json.dumps({"to": to, "text": "hello", "message_id": message_id, **fields}),
            headers=bearer(),
        ),
    )
    external_id = json.loads(answer["body"])["external_id"]
    stack.drain_dispatch(stack.handler("dispatch"))
    record = stack.item(external_id)
    assert record is not None and record["status"] == "submitted", record
    return record


def record_of(stack: Stack, message_id: str) -> dict[str, Any]:
    record = stack.item(message_id)
    assert record is not None
    return record


def vibes_xml(
    gateway_id: str,
    kind: str = "Handset",
    *,
    is_error: bool = False,
    attributes: str = "",
    codes: str = "",
    date: str = "2026-11-22T12:00:00.000Z",
) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><mtMessageResponse messageId="{gateway_id}" '
        f'submitterMessageId="x" receiptDate="{date}" {attributes}><type>{kind}</type>'
        f'<status isError="{str(is_error).lower()}"><description>d</description>{codes}'
        "</status></mtMessageResponse>"
    )


def forwarded(original: str, alternate: str = ALTERNATE_ID) -> str:
    codes = "<errorCode>100</errorCode><internalErrorCode>255</internalErrorCode>"
    return vibes_xml(
        original,
        "Carrier",
        is_error=True,
        attributes=f'fwdToMessageId="{alternate}"',
        codes=codes,
    )


def alternate(kind: str, original: str, *, is_error: bool = False, spelling: str = "") -> str:
    name = spelling or "fwdFromMessageId"
    codes = "<errorCode>100</errorCode>" if is_error else ""
    return vibes_xml(
        ALTERNATE_ID, kind, is_error=is_error, attributes=f'{name}="{original}"', codes=codes
    )


def vibes(stack: Stack, body: str, carrier: str = "vibes-longcode") -> None:
    answer = dlr(stack, carrier, query=TOKEN, body=body, headers=XML)
    assert (answer["statusCode"], answer["body"]) == (200, "")


def forward_entries(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in record["history"] if h.get("gateway_status") == "Forwarded"]


# --- Vibes forwarding by itself (issue: seed vibes-alternate-delivery.txt) ----------------------


def test_carrier_forward_then_alternate_handset_ends_delivered_on_one_record(stack: Stack) -> None:
    record = send(stack, "+18445551201", "fw-1", alternate_delivery=True)
    vibes(stack, forwarded(record["gateway_id"]))
    after_forward = record_of(stack, record["id"])
    assert after_forward["status"] == "enroute"
    [entry] = forward_entries(after_forward)
    assert entry["gateway_forwarded_to"] == ALTERNATE_ID
    assert entry["gateway_error"] == "100/255"

    vibes(stack, alternate("System", record["gateway_id"]))
    vibes(stack, alternate("Handset", record["gateway_id"]))

    final = record_of(stack, record["id"])
    assert final["status"] == "delivered"
    assert final["gateway_id"] == record["gateway_id"]
    assert [h["gateway_id"] for h in final["history"] if h.get("gateway_id")] == [
        ALTERNATE_ID,
        ALTERNATE_ID,
    ]
    # One record: no second message appeared for the alternate.
    assert not final.get("forwarded_to")


def test_the_seeds_alternate_callback_ends_the_message_delivered(stack: Stack) -> None:
    """The seed's own callback for the alternate message (`Carrier` / `Success`, with
    `fwdFromMessageId`), word for word but for the original's id, after the original's forward."""
    record = send(stack, "+18445551206", "fw-seed", alternate_delivery=True)
    original = record["gateway_id"]
    vibes(stack, SEED_ORIGINAL.replace(SEED_ORIGINAL_ID, original))
    assert record_of(stack, record["id"])["status"] == "enroute"

    vibes(stack, SEED_ALTERNATE.replace(SEED_ORIGINAL_ID, original))

    final = record_of(stack, record["id"])
    assert (final["status"], final["gateway_status"]) == ("delivered", "Carrier")
    assert final["description"] == "Success"
    # The seed's 2011 receiptDate is kept in the history as given; the message's own times use
    # the arrival, since a carrier time years from the submission is not believed.
    assert final["history"][-1]["gateway_id"] == ALTERNATE_ID
    assert final["history"][-1]["at"] == "2011-04-19T20:10:08.320Z"
    assert final["delivered_at"] > record["submitted_at"]


def test_alternate_handset_before_the_forward_ends_delivered(stack: Stack) -> None:
    record = send(stack, "+18445551202", "fw-2", alternate_delivery=True)
    vibes(stack, alternate("Handset", record["gateway_id"]))
    assert record_of(stack, record["id"])["status"] == "delivered"
    vibes(stack, forwarded(record["gateway_id"]))
    final = record_of(stack, record["id"])
    assert final["status"] == "delivered"
    assert len(forward_entries(final)) == 1


@pytest.mark.parametrize("spelling", ["fwdFromMessageId", "originalMessageId"])
def test_receipt_option_final_only_the_alternates_final_arrives(
    stack: Stack, spelling: str
) -> None:
    record = send(stack, "+18445551203", f"fw-3-{spelling}", alternate_delivery=True)
    vibes(stack, alternate("Handset", record["gateway_id"], spelling=spelling))
    assert record_of(stack, record["id"])["status"] == "delivered"


def test_a_failing_alternate_ends_the_message_with_its_failure(stack: Stack) -> None:
    record = send(stack, "+18445551204", "fw-4", alternate_delivery=True)
    vibes(stack, forwarded(record["gateway_id"]))
    vibes(stack, alternate("Carrier", record["gateway_id"], is_error=True))
    final = record_of(stack, record["id"])
    assert final["status"] == "undeliverable"
    assert len(forward_entries(final)) == 1


def test_orphans_waiting_for_the_forwarded_id_are_applied_when_it_is_linked(
    stack: Stack,
) -> None:
    record = send(stack, "+18445551205", "fw-5", alternate_delivery=True)
    # The alternate's receipt names nothing we know yet: kept as an orphan of its own id.
    vibes(stack, vibes_xml(ALTERNATE_ID, "Handset"))
    assert record_of(stack, record["id"])["status"] == "submitted"
    # The original's Forwarded receipt links the new id: the waiting receipt is applied.
    vibes(stack, forwarded(record["gateway_id"]))
    assert record_of(stack, record["id"])["status"] == "delivered"


def test_an_alternates_final_before_the_original_is_linked_waits_for_that_link(
    stack: Stack,
) -> None:
    # Receipt option FINAL, and the alternate's final comes before dispatch records the
    # original's id: it waits under the original's id and is applied by that link.
    vibes(stack, alternate("Handset", "865cd3d1-0000-0000-0000-000000000001"))
    record = send(stack, "+18445551206", "fw-6", alternate_delivery=True)
    tracker = dlr_module(stack).runtime.tracker()
    holder, waiting = tracker.link(
        "vibes-longcode",
        "865cd3d1-0000-0000-0000-000000000001",
        record["id"],
        expires_at=int(time.time()) + 60,
    )
    assert holder == record["id"]
    assert [r.gateway_id for r in waiting] == [ALTERNATE_ID]
    tracker.report_many(record["id"], waiting)
    assert record_of(stack, record["id"])["status"] == "delivered"
    repository = MessageRepository(stack.dynamodb, stack.table)
    # The alternate's own id now belongs to the message too.
    assert repository.sms_id_for_gateway_id("vibes-longcode", ALTERNATE_ID) == record["id"]


def test_a_two_segment_message_is_submitted_without_carrier_alternate_delivery(
    stack: Stack,
) -> None:
    long_text = "x" * 200  # GSM-7, two segments
    one = send(stack, "+18445551207", "seg-1", alternate_delivery=True)
    two = send(stack, "+18445551208", "seg-2", alternate_delivery=True, text=long_text)
    assert two["segments"] == 2
    asked = {s["reference"]: s["alternate_delivery"] for s in stack.simulator.submissions()}
    assert asked[one["id"]] is True
    assert asked[two["id"]] is False


# --- links never re-point (issue 10, item 4) ---------------------------------------------------


def test_a_forward_naming_another_messages_id_does_not_re_point_it(
    stack: Stack, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    a = send(stack, "+18475551201", "rp-a")
    b = send(stack, "+18475551202", "rp-b")
    capsys.readouterr()
    vibes(stack, forwarded(a["gateway_id"], alternate=b["gateway_id"]), carrier="vibes")
    repository = MessageRepository(stack.dynamodb, stack.table)
    assert repository.sms_id_for_gateway_id("vibes", b["gateway_id"]) == b["id"]
    assert '"LinkConflict"' in capsys.readouterr().out
    assert "link refused" in caplog.text
    # B's own receipt still moves B, and only B.
    vibes(stack, vibes_xml(b["gateway_id"], "Handset"), carrier="vibes")
    assert record_of(stack, b["id"])["status"] == "delivered"
    assert record_of(stack, a["id"])["status"] == "enroute"


# --- repeated receipts: bounded history, bounded writes (issue 10, item 3) ---------------------


def smartswitch_query(*groups: tuple[str, str]) -> str:
    params: list[tuple[str, str]] = []
    for gateway_id, state in groups:
        params += [("message_id", gateway_id), ("message_state", state)]
    return urlencode(params + list(SMARTSWITCH_AUTH.items()))


def test_300_repeats_of_one_receipt_add_one_entry_and_the_real_final_still_applies(
    stack: Stack,
) -> None:
    record = send(stack, "+4915112345601", "rep-1")
    query = smartswitch_query(*[(record["gateway_id"], "enroute")] * 300)
    module = dlr_module(stack)
    calls: list[str] = []
    module.runtime.dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    answer = dlr(stack, "smartswitch", query=query)
    assert answer["statusCode"] == 200
    assert len(json.loads(answer["body"])["data"]) == 300
    # 300 receipts for one message: one read and one write, not 300 of each.
    writes = [name for name in calls if name in ("UpdateItem", "PutItem", "BatchWriteItem")]
    assert len(writes) == 1, calls
    after = record_of(stack, record["id"])
    assert after["status"] == "enroute"
    receipts = [h for h in after["history"] if h.get("source") == "receipt:smartswitch"]
    assert len(receipts) == 1
    # The same again in a second request adds nothing either.
    dlr(stack, "smartswitch", query=query)
    assert len(record_of(stack, record["id"])["history"]) == len(after["history"])
    dlr(stack, "smartswitch", query=smartswitch_query((record["gateway_id"], "delivered")))
    assert record_of(stack, record["id"])["status"] == "delivered"


def test_many_receipts_for_one_message_are_one_write(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = send(stack, "+4915112345601", "rep-2")
    client = dlr_module(stack).runtime.dynamodb
    calls: list[str] = []
    original = client.update_item

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["Key"]["id"]["S"])
        return original(**kwargs)

    monkeypatch.setattr(client, "update_item", counting)
    states = ["enroute", "unknown", "enroute", "delivered", "enroute", "expired"] * 50
    dlr(stack, "smartswitch", query=smartswitch_query(*[(record["gateway_id"], s) for s in states]))
    assert calls == [record["id"]]
    final = record_of(stack, record["id"])
    assert final["status"] == "delivered"
    receipts = [h["status"] for h in final["history"] if h.get("source") == "receipt:smartswitch"]
    # The repeated `enroute` after `unknown` moves nothing and is already recorded.
    assert receipts == ["enroute", "unknown", "delivered", "expired"]


def test_the_history_keeps_its_first_and_latest_entries_and_counts_the_rest(
    stack: Stack,
) -> None:
    record = send(stack, "+525512345603", "rep-3")
    first = record_of(stack, record["id"])["history"]
    # 70 distinct receipts (each its own carrier time) in one request, then one more.
    body = [
        seed_body(record["gateway_id"], statusDelivery="UNKNOWN", doneDate=1588694204000 + n)
        for n in range(70)
    ]
    assert conceptomovil(stack, body)["body"] == "OK"
    assert conceptomovil(stack, body[:1])["body"] == "OK"
    record_now = record_of(stack, record["id"])
    history = record_now["history"]
    total = len(first) + 70
    assert len(history) == HISTORY_HEAD + HISTORY_TAIL
    assert record_now["history_dropped"] == total - len(history)
    assert history[: len(first)] == first
    assert history[-1]["at"] == "2020-05-05T15:56:44.069Z"
    assert record_now["status"] == "rejected"


# --- Concepto Móvil (seed bulk-api-dlr-webhook-es.txt) -----------------------------------------


def conceptomovil(stack: Stack, body: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    headers = {
        "Content-Type": "application/json",
        "Authorization": basic("conceptomovil", "conceptomovil-secret"),
    }
    return dlr(stack, "conceptomovil", body=json.dumps(body), headers=headers)


def seed_body(gateway_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "messageId": int(gateway_id),
        "statusDelivery": "DELIVERED",
        "sendDate": 1588694204000,
        "doneDate": 1588694204000,
        "carrier": "CLARO",
        **fields,
    }


def test_conceptomovil_unknown_ends_rejected_at_once_with_the_operator(stack: Stack) -> None:
    record = send(stack, "+525512345601", "cm-1")
    body = seed_body(record["gateway_id"], statusDelivery="UNKNOWN", carrier="TELCEL")
    assert conceptomovil(stack, body)["body"] == "OK"
    final = record_of(stack, record["id"])
    assert final["status"] == "rejected"
    assert final["gateway_status"] == "UNKNOWN"
    assert "no error code" in final["description"]
    assert final["operator"] == "TELCEL"
    entry = final["history"][-1]
    assert (entry["status"], entry["operator"]) == ("rejected", "TELCEL")
    assert entry["sent_at"] == "2020-05-05T15:56:44+00:00"


def test_conceptomovil_receipt_without_carrier_is_applied_and_counted(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    record = send(stack, "+525512345602", "cm-2")
    body = seed_body(record["gateway_id"])
    del body["carrier"]
    capsys.readouterr()
    assert conceptomovil(stack, body)["body"] == "OK"
    assert '"ReceiptFieldMissing"' in capsys.readouterr().out
    final = record_of(stack, record["id"])
    assert final["status"] == "delivered"
    assert "operator" not in final


def test_orphans_of_one_carrier_id_are_kept_once_and_bounded(stack: Stack) -> None:
    repeats = [seed_body("424242", doneDate=1588694204000)] * 100
    distinct = [seed_body("424242", doneDate=1588694204000 + n) for n in range(MAX_ORPHANS + 5)]
    assert conceptomovil(stack, repeats)["body"] == "OK"
    assert conceptomovil(stack, distinct)["body"] == "OK"
    record = send(stack, "+525512345604", "orph-1")
    link = MessageRepository(stack.dynamodb, stack.table).link_gateway_id(
        "conceptomovil", "424242", record["id"], expires_at=int(time.time()) + 60
    )
    assert link.linked
    # The 100 repeats were kept once; the distinct ones only up to the limit.
    assert len(link.orphans) == MAX_ORPHANS


def test_an_unreadable_vibes_receipt_date_is_kept_as_text(stack: Stack) -> None:
    record = send(stack, "+18475551204", "vd-1")
    vibes(stack, vibes_xml(record["gateway_id"], "Handset", date="last tuesday"), carrier="vibes")
    entry = record_of(stack, record["id"])["history"][-1]
    assert entry["carrier_time_text"] == "last tuesday"
