"""Sending a batch of notify jobs, with a fake back office: grouping, order, retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from smsbridge import ofsc
from smsbridge.config import Settings, parse_config
from smsbridge.models import Origin, iso
from smsbridge.notify import KIND_JSON, KIND_OFSC, Job, jobs_for_change
from smsbridge.notify_delivery import Action, Delivery, Notifier
from smsbridge.statuses import Status
from tests.doubles import RecordingMetrics
from tests.support import a_message, local_documents

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class FakeRepository:
    def __init__(self, told: dict[str, int] | None = None) -> None:
        self.told = dict(told or {})

    def notified_seqs(self, ids: Iterable[str]) -> dict[str, int]:
        return {i: self.told.get(i, 0) for i in ids}

    def mark_notified(self, message_id: str, seq: int) -> bool:
        if self.told.get(message_id, 0) >= seq:
            return False
        self.told[message_id] = seq
        return True


class FakeBackOffice:
    """Answers JSON callbacks with `status`, OFSC calls with `code` per message."""

    def __init__(self, status: int = 200, code: str = "OK") -> None:
        self.status = status
        self.code = code
        self.calls: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def post(self, url: str, *, data: bytes, **_: Any) -> requests.Response:
        with self._lock:
            self.calls.append((url, data))
        answer = requests.Response()
        answer.status_code = self.status
        if b"set_message_status" in data:
            ids = [m.message_id for m in _ofsc_ids(data)]
            answers = "".join(
                f"<message_response><message_id>{i}</message_id><result><code>{self.code}"
                "</code></result></message_response>"
                for i in ids
            )
            answer._content = (
                '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
                f"<set_message_status_response>{answers}</set_message_status_response>"
                "</e:Body></e:Envelope>"
            ).encode()
        else:
            answer._content = b"ok"
        return answer

    def json_statuses(self) -> list[str]:
        return [json.loads(body)["status"] for _, body in self.calls]


def _ofsc_ids(body: bytes) -> list[ofsc.OfscMessage]:
    from xml.etree import ElementTree as ET

    root = ET.fromstring(body)
    return [
        ofsc.OfscMessage(message_id=e.text or "")
        for e in root.iter()
        if e.tag.endswith("}message_id")
    ]


def notifier(back_office: FakeBackOffice, repository: FakeRepository, **settings: Any) -> Notifier:
    config, secrets = local_documents("http://127.0.0.1:3001")
    return Notifier(
        Settings(**settings),
        parse_config(config, secrets),
        repository,  # type: ignore[arg-type]
        back_office,
        RecordingMetrics(),
        clock=lambda: NOW,
        resolver=None,
    )


def job(kind: str, thread: str, seq: int, status: str = "delivered", **fields: Any) -> Job:
    values: dict[str, Any] = {
        "kind": kind,
        "client": "ofsc" if kind == KIND_OFSC else "demo",
        "thread": thread,
        "seq": seq,
        "after": 0,
        "message_id": f"m-{thread}",
        "status": status,
        "word": {"delivered": "delivered", "undeliverable": "failed"}.get(status, "sending"),
        "description": status,
        "gateway_status": "",
        "status_changed_at": iso(NOW),
        "delivered_at": iso(NOW) if status == "delivered" else "",
        "forwarded_to": "",
        "forwarded_from": "",
        "callback_url": "http://127.0.0.1:3001/_sim/callback/x" if kind == KIND_JSON else "",
        "queued_at": iso(NOW),
    }
    values.update(fields)
    return Job(**values)


def test_ofsc_jobs_go_out_in_calls_of_at_most_100_one_final_per_message() -> None:
    back_office, repository = FakeBackOffice(), FakeRepository()
    jobs = [job(KIND_OFSC, f"t{i}", 3) for i in range(230)]
    # A later final of the same message in the same batch replaces the earlier one.
    jobs.append(job(KIND_OFSC, "t0", 5, status="undeliverable"))
    deliveries = [Delivery(str(i), j) for i, j in enumerate(jobs)]
    outcomes = notifier(back_office, repository).deliver(deliveries)
    assert {o.action for o in outcomes.values()} == {Action.DONE}
    sizes = sorted(len(_ofsc_ids(body)) for _, body in back_office.calls)
    assert sizes == [30, 100, 100]
    assert outcomes["0"].reason == "superseded"
    assert repository.told["t0"] == 5


def test_not_found_is_done_and_a_fault_or_http_error_retries_with_back_off() -> None:
    deliveries = [Delivery("a", job(KIND_OFSC, "t1", 3), attempt=2)]
    outcomes = notifier(FakeBackOffice(code="NOT FOUND"), FakeRepository()).deliver(deliveries)
    assert outcomes["a"].action == Action.DONE and outcomes["a"].reason == "not_found"
    outcomes = notifier(FakeBackOffice(status=500), FakeRepository()).deliver(deliveries)
    assert outcomes["a"] == replace(outcomes["a"], action=Action.RETRY, delay=60)
    last = [replace(deliveries[0], attempt=8)]
    outcomes = notifier(FakeBackOffice(status=503), FakeRepository()).deliver(last)
    assert outcomes["a"].action == Action.DEAD_LETTER


def test_a_stale_status_is_dropped_and_statuses_of_one_message_go_in_order() -> None:
    back_office = FakeBackOffice()
    repository = FakeRepository({"t1": 2})
    deliveries = [
        Delivery("d", job(KIND_JSON, "t1", 5, after=4)),
        Delivery("a", job(KIND_JSON, "t1", 2, status="enroute", after=1)),
        Delivery("c", job(KIND_JSON, "t1", 4, status="forwarded", after=3)),
        Delivery("b", job(KIND_JSON, "t1", 3, status="submitted", after=2)),
    ]
    outcomes = notifier(back_office, repository).deliver(deliveries)
    assert outcomes["a"].reason == "stale"
    assert back_office.json_statuses() == ["submitted", "forwarded", "delivered"]
    assert repository.told["t1"] == 5


def test_a_status_waits_for_the_one_before_it_but_not_for_ever() -> None:
    waiting = job(KIND_JSON, "t1", 3, after=2)
    outcomes = notifier(FakeBackOffice(), FakeRepository()).deliver([Delivery("w", waiting)])
    assert outcomes["w"].action == Action.REQUEUE
    old = replace(waiting, queued_at=iso(NOW - timedelta(seconds=61)))
    back_office = FakeBackOffice()
    outcomes = notifier(back_office, FakeRepository()).deliver([Delivery("w", old)])
    assert outcomes["w"].action == Action.DONE
    assert back_office.json_statuses() == ["delivered"]


def test_when_a_status_fails_the_later_ones_of_that_message_wait_without_a_call() -> None:
    back_office = FakeBackOffice(status=502)
    deliveries = [
        Delivery("a", job(KIND_JSON, "t1", 1, status="submitted")),
        Delivery("b", job(KIND_JSON, "t1", 2, after=1)),
    ]
    outcomes = notifier(back_office, FakeRepository()).deliver(deliveries)
    assert outcomes["a"].action == Action.RETRY
    assert outcomes["b"].action == Action.REQUEUE
    assert len(back_office.calls) == 1


@pytest.mark.parametrize("url", ["https://10.0.0.7/x", "http://example.com/x"])
def test_a_url_refused_at_call_time_is_dropped_without_a_call(url: str) -> None:
    back_office = FakeBackOffice()
    repository = FakeRepository()
    deliveries = [Delivery("a", job(KIND_JSON, "t1", 3, callback_url=url))]
    outcomes = notifier(back_office, repository).deliver(deliveries)
    assert outcomes["a"].action == Action.DONE and outcomes["a"].reason == "refused_url"
    assert back_office.calls == []


SUBMITTED_AT = "2026-11-30T09:15:02.123Z"


@pytest.mark.parametrize(
    ("status", "word", "description"),
    [
        (Status.DELIVERED, "delivered", None),
        (Status.UNDELIVERABLE, "failed", "subscriber unreachable"),
        (Status.TERMINATED, "sent", "subscriber unreachable"),
    ],
)
def test_set_message_status_sent_is_the_submission_time_on_every_final(
    status: Status, word: str, description: str | None
) -> None:
    """OFSC's `sent` is "the actual time when the message was sent" (seed): the carrier's
    acceptance, on every final of a submitted message, `terminated` included; never the time
    of delivery. Only a final other than delivered carries its description."""
    final = a_message(
        id="t-sent",
        status=status,
        status_seq=3,
        origin=Origin(kind="ofsc", app_host="h", app_port="443", app_url="/soap/"),
        description="subscriber unreachable",
        submitted_at=SUBMITTED_AT,
        delivered_at="2026-11-30T09:20:00.000Z" if status == Status.DELIVERED else "",
    )
    (ofsc_job,) = jobs_for_change(Status.ENROUTE, final, NOW)
    back_office = FakeBackOffice()
    notifier(back_office, FakeRepository()).deliver([Delivery("0", ofsc_job)])

    [(_, body)] = back_office.calls
    [update] = _updates(body)
    assert update["status"] == word
    assert update.get("sent") == "2026-11-30T09:15:02+00:00"
    assert update.get("description") == description


def test_a_message_never_submitted_has_no_sent() -> None:
    failed = a_message(
        id="t-never",
        status=Status.FAILED,
        status_seq=1,
        origin=Origin(kind="ofsc", app_host="h", app_port="443", app_url="/soap/"),
        description="rejected by the carrier",
    )
    (ofsc_job,) = jobs_for_change(Status.QUEUED, failed, NOW)
    back_office = FakeBackOffice()
    notifier(back_office, FakeRepository()).deliver([Delivery("0", ofsc_job)])
    [(_, body)] = back_office.calls
    [update] = _updates(body)
    assert update["status"] == "failed" and "sent" not in update


def _updates(body: bytes) -> list[dict[str, str]]:
    """The `message` elements of a set_message_status call, as name -> text."""
    from xml.etree import ElementTree as ET

    return [
        {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        for element in ET.fromstring(body).iter()
        if element.tag.endswith("}message")
        and element.find("{urn:toatech:agent}message_id") is not None
    ]
