"""Signed callbacks: a captured callback cannot be replayed under a new event id or later."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from smsbridge import webhook_signature
from smsbridge.config import Settings, parse_config
from smsbridge.models import iso
from smsbridge.notify import KIND_JSON, Job, jobs_for_change
from smsbridge.notify_delivery import Action, Delivery, Notifier
from smsbridge.statuses import Status
from tests.doubles import RecordingMetrics
from tests.support import ROOT, a_message, local_documents

SECRET = "demo-callback-secret"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass
class Captured:
    body: bytes
    headers: dict[str, str]

    @property
    def signature(self) -> str:
        return self.headers[webhook_signature.SIGNATURE_HEADER]

    @property
    def event_id(self) -> str:
        return self.headers[webhook_signature.EVENT_ID_HEADER]


class Receiver:
    """A back office that records what it gets and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[Captured] = []
        self._lock = threading.Lock()

    def post(self, url: str, *, data: bytes, headers: dict[str, str], **_: Any) -> Any:
        with self._lock:
            self.calls.append(Captured(data, dict(headers)))
        answer = requests.Response()
        answer.status_code = self.status
        return answer


class Told:
    def notified_seqs(self, ids: Any) -> dict[str, int]:
        return {}

    def mark_notified(self, message_id: str, seq: int) -> bool:
        return True


def capture(job: Job, *, at: datetime = NOW, status: int = 200) -> tuple[Captured, Action]:
    config, secrets = local_documents("http://127.0.0.1:3001")
    receiver = Receiver(status)
    notifier = Notifier(
        Settings(),
        parse_config(config, secrets),
        Told(),  # type: ignore[arg-type]
        receiver,
        RecordingMetrics(),
        clock=lambda: at,
        resolver=None,
    )
    outcomes = notifier.deliver([Delivery("k", job)])
    (call,) = receiver.calls
    return call, outcomes["k"].action


def a_job() -> Job:
    message = a_message(
        client="demo",
        status=Status.DELIVERED,
        status_seq=3,
        callback_url="http://127.0.0.1:3001/_sim/callback/x",
        status_changed_at=iso(NOW),
        delivered_at=iso(NOW),
    )
    (job,) = jobs_for_change(Status.ENROUTE, message, NOW)
    assert job.kind == KIND_JSON
    return job


def verify(call: Captured, *, event_id: str | None = None, at: datetime = NOW) -> bool:
    return webhook_signature.verify(
        SECRET,
        call.signature,
        call.event_id if event_id is None else event_id,
        call.body,
        now=at.timestamp(),
    )


def test_a_callback_verifies_with_the_secret_its_event_id_and_a_time_in_the_window() -> None:
    call, _ = capture(a_job())
    assert call.signature.startswith(f"t={int(NOW.timestamp())},v1=")
    assert verify(call)
    assert verify(call, at=NOW + timedelta(seconds=299))
    assert not webhook_signature.verify("other", call.signature, call.event_id, call.body, now=0)


def test_a_replay_under_a_new_event_id_fails_verification() -> None:
    call, _ = capture(a_job())
    assert not verify(call, event_id=webhook_signature.new_event_id())
    assert not verify(call, event_id=call.event_id + "x")


def test_a_replay_later_fails_verification_and_so_does_a_forged_time() -> None:
    call, _ = capture(a_job())
    assert not verify(call, at=NOW + timedelta(seconds=webhook_signature.TOLERANCE_SECONDS + 1))
    assert not verify(call, at=NOW - timedelta(seconds=webhook_signature.TOLERANCE_SECONDS + 1))
    # Moving `t` to now breaks the signature, which covers it.
    later = NOW + timedelta(hours=1)
    forged = call.signature.replace(f"t={int(NOW.timestamp())}", f"t={int(later.timestamp())}")
    assert not verify(replace(call, headers={**call.headers, "X-Smsbridge-Signature": forged}))


def test_a_changed_body_or_the_body_only_signature_fails() -> None:
    call, _ = capture(a_job())
    assert not verify(replace(call, body=call.body.replace(b"delivered", b"failed")))
    body_only = hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    for header in (f"sha256={body_only}", f"t={int(NOW.timestamp())},v1={body_only}", ""):
        assert not verify(replace(call, headers={**call.headers, "X-Smsbridge-Signature": header}))


def test_retries_of_one_event_keep_its_random_id_and_are_signed_afresh() -> None:
    job = a_job()
    other = a_job()
    assert job.event_id.startswith("evt_") and len(job.event_id) == 36
    assert job.event_id != other.event_id  # random, not the status change's number
    first, action = capture(job, status=503)
    assert action == Action.RETRY
    # The retry reads the job back from its queue record.
    again = Job.from_json(job.to_json())
    retry, _ = capture(again, at=NOW + timedelta(minutes=5))
    assert retry.event_id == first.event_id == job.event_id
    assert retry.body == first.body
    assert retry.signature != first.signature
    assert verify(retry, at=NOW + timedelta(minutes=5))


def test_a_job_queued_without_an_event_id_keeps_a_stable_one() -> None:
    job = a_job()
    record = json.loads(job.to_json())
    del record["event_id"]
    old = Job.from_json(json.dumps(record))
    assert old.event_id == f"{job.thread}:{job.seq}"
    assert Job.from_json(old.to_json()).event_id == old.event_id


def test_the_readme_verification_accepts_a_callback_and_refuses_its_replays() -> None:
    """The ten lines the README shows a receiver do what `verify` does."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Check a callback on the receiving side", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  # nosec B102 - our own README
    readme_verify = namespace["verify"]
    job = a_job()
    now = datetime.now(UTC)
    call, _ = capture(job, at=now)
    assert readme_verify(SECRET, call.headers, call.body)
    renamed = {**call.headers, "X-Smsbridge-Event-Id": webhook_signature.new_event_id()}
    assert not readme_verify(SECRET, renamed, call.body)
    old, _ = capture(job, at=now - timedelta(minutes=10))
    assert not readme_verify(SECRET, old.headers, old.body)
