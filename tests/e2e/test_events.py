"""Every sample event in events/ (what `sam local invoke -e` sends) replayed through its handler
against the running local stack, in order, with the answer each one must get."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from local.cloudformation import REPO_ROOT
from local.stack import LocalStack
from tests.e2e.conftest import Client

EVENTS = REPO_ROOT / "events"
#: The smsbridge id of message `demo-0001` of client `demo` (dispatch_sqs.json names it).
DEMO_ID = "7ea4f29e30202426f642a1c20603cae1"
SUBMITTED = ("submitted", "enroute", "delivered")


def body(answer: dict[str, Any]) -> Any:
    return json.loads(answer["body"])


def accepted(answer: dict[str, Any]) -> None:
    assert answer["statusCode"] == 202, answer
    message = body(answer)
    assert (message["message_id"], message["external_id"]) == ("demo-0001", DEMO_ID)
    assert message["status"] == "sending"


def found(answer: dict[str, Any]) -> None:
    assert answer["statusCode"] == 200, answer
    assert body(answer)["message_id"] == "demo-0001"


def searched(answer: dict[str, Any]) -> None:
    assert answer["statusCode"] == 200, answer
    records = body(answer)["messages"]
    demo = [r for r in records if (r["client"], r["message_id"]) == ("demo", "demo-0001")]
    assert len(demo) == 1 and demo[0]["phone_number"] == "+380******01", records
    assert "body" not in demo[0]


def ofsc_accepted(answer: dict[str, Any]) -> None:
    assert answer["statusCode"] == 200, answer
    root = ET.fromstring(answer["body"])
    texts = [(e.tag.rsplit("}", 1)[-1], e.text) for e in root.iter()]
    ids = [text for tag, text in texts if tag == "message_id"]
    assert ids == ["1288429050", "1288429051"]
    assert [text for tag, text in texts if tag == "status"] == ["sending", "sending"]


def smartswitch_taken(answer: dict[str, Any]) -> None:
    # Receipts for ids the stack never sent are kept as orphans and answered as a success.
    assert answer["statusCode"] == 200, answer
    items = body(answer)["data"]
    assert [(i["attributes"]["status"], i["meta"]["request_id"]) for i in items] == [
        ("ok", "1"),
        ("ok", "2"),
    ]


def receipt_taken(text: str) -> Callable[[dict[str, Any]], None]:
    def check(answer: dict[str, Any]) -> None:
        assert answer["statusCode"] == 200, answer
        assert answer["body"].strip() == text

    return check


def dispatched(answer: dict[str, Any]) -> None:
    assert answer == {"batchItemFailures": []}


def jobs_queued(answer: dict[str, Any]) -> None:
    assert answer == {"batchItemFailures": []}


def job_taken(answer: dict[str, Any]) -> None:
    # The sample's callback URL is make run's simulator (port 3001), which this stack's is not:
    # the job is told (200) or kept for a retry, never an error.
    assert set(answer) == {"batchItemFailures"}, answer
    assert len(answer["batchItemFailures"]) <= 1


def polled(answer: dict[str, Any]) -> None:
    assert answer["poll_errors"] == 0, answer
    assert {"due", "polled", "terminated", "requeued"} <= set(answer)


#: file → (function, check), in replay order: dispatch_sqs.json names the message
#: send_message_json.json creates, get_message.json reads it.
REPLAY: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "send_message_json.json": ("SendMessageFunction", accepted),
    "get_message.json": ("SendMessageFunction", found),
    "search_messages.json": ("SearchFunction", searched),
    "send_message_ofsc.json": ("SendMessageFunction", ofsc_accepted),
    "dispatch_sqs.json": ("DispatchFunction", dispatched),
    "dlr_smartswitch.json": ("DlrWebhookFunction", smartswitch_taken),
    "dlr_conceptomovil.json": ("DlrWebhookFunction", receipt_taken("OK")),
    "dlr_vibes.json": ("DlrWebhookFunction", receipt_taken("")),
    "status_poller_schedule.json": ("StatusPollerFunction", polled),
    "notify_stream.json": ("NotifyFunction", jobs_queued),
    "notify_sqs.json": ("NotifyFunction", job_taken),
}


def test_every_event_file_is_replayed() -> None:
    files = {path.name for path in EVENTS.glob("*.json")}
    assert not files - set(REPLAY), f"add {sorted(files - set(REPLAY))} to REPLAY with a check"
    assert not set(REPLAY) - files, f"REPLAY names missing files: {sorted(set(REPLAY) - files)}"


def test_every_event_gets_its_answer(local_stack: LocalStack, client: Client) -> None:
    for name, (function, check) in REPLAY.items():
        event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
        if name == "dispatch_sqs.json":
            # The stack's own SQS driver may be submitting the message right now: replay the
            # record once it is done (a second delivery of a record is the case it covers).
            client.wait_status("demo-0001", *SUBMITTED)
        answer = local_stack.functions[function].invoke(event)
        try:
            check(answer)
        except AssertionError as exc:
            raise AssertionError(f"events/{name} through {function}: {exc}") from exc
    assert client.get("demo-0001")["status"] in SUBMITTED  # a second delivery changed nothing
