"""The Messages table item of a message, derived from the model's fields."""

from __future__ import annotations

from dataclasses import fields

from smsbridge.models import INTERNAL_FIELDS, HistoryEntry, Message, Origin
from smsbridge.repository import message_from_image, message_from_item, message_to_item
from smsbridge.statuses import Status
from tests.support import a_message


def full_message() -> Message:
    return a_message(
        id="sms-1",
        type="verification",
        body="code ****",
        segments=2,
        encoding="UCS-2",
        status=Status.ENROUTE,
        updated_at="2026-11-22T11:00:01.000Z",
        status_changed_at="2026-11-22T11:00:02.000Z",
        description="on its way",
        gateway_id="g-1",
        gateway_status="enroute",
        gateway_error="E1",
        submitted_at="2026-11-22T11:00:03.000Z",
        delivered_at="2026-11-22T11:00:04.000Z",
        attempts=3,
        history=[HistoryEntry(at="2026-11-22T11:00:00.000Z", status="queued", source="api")],
        history_dropped=4,
        forwarded_to="sms-2",
        forwarded_from="sms-0",
        submitter_message_id="c-0",
        callback_url="https://example.org/cb",
        callback_events="all",
        origin=Origin(kind="ofsc", app_host="h", app_port="8443", app_url="/x"),
        alternate_delivery=True,
        validity_minutes=15,
        send_to="2026-11-22T13:00:00.000Z",
        expires_at=1_800_000_000,
        text="code 123456",
        country="DE",
        operator="TELCEL",
        history_rev=5,
        status_seq=6,
    )


def test_every_field_round_trips_under_its_own_name() -> None:
    message = full_message()
    item = message_to_item(message)
    stored = {f.name for f in fields(Message)} - {"next_check_at", "poll_count", "requeue_count"}
    assert set(item) == stored | {"item_type"}
    assert item["id"] == {"S": "sms-1"}
    assert item["status"] == {"S": "enroute"}
    assert item["origin"]["M"]["kind"] == {"S": "ofsc"}
    assert message_from_item(item) == message
    assert message_from_image(item) == message


def test_empty_fields_are_left_out_and_read_back_as_their_defaults() -> None:
    message = a_message(id="sms-1", sender="", status=Status.QUEUED)
    item = message_to_item(message)
    for absent in ("sender", "gateway_id", "validity_minutes", "status_seq", "text"):
        assert absent not in item
    assert message_from_item(item) == message
    bare = message_from_item({"id": {"S": "x"}, "status": {"S": "queued"}})
    assert (bare.type, bare.callback_events, bare.history, bare.origin) == (
        "text",
        "final",
        [],
        Origin(),
    )


def test_poller_bookkeeping_is_read_but_written_only_with_the_open_index() -> None:
    item = message_to_item(full_message())
    item |= {
        "next_check_at": {"N": "1800000100"},
        "poll_count": {"N": "2"},
        "requeue_count": {"N": "1"},
    }
    read = message_from_item(item)
    assert (read.next_check_at, read.poll_count, read.requeue_count) == (1_800_000_100, 2, 1)
    assert "next_check_at" not in message_to_item(read)


def test_other_item_kinds_are_not_messages() -> None:
    assert message_from_image({"id": {"S": "gw#x#1"}, "item_type": {"S": "gateway"}}) is None
    assert message_from_image(None) is None


def test_the_json_view_shows_every_field_but_the_internal_ones() -> None:
    message = full_message()
    view = message.public_view()
    assert list(view) == [f.name for f in fields(Message) if f.name not in INTERNAL_FIELDS]
    assert "text" not in view and "history_rev" not in view
    assert view["status"] == "enroute"
    assert view["origin"] == {"kind": "ofsc", "app_host": "h", "app_port": "8443", "app_url": "/x"}
    message.history_dropped = 0
    assert "history_dropped" not in message.public_view()
