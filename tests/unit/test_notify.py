"""The pure parts of notify: which callback URLs may be called, which status changes the
template's stream filter lets through, which jobs a change makes, and the back-off."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from local.drivers import passes
from smsbridge import callback_urls
from smsbridge.config import Settings
from smsbridge.models import Message, Origin
from smsbridge.notify import KIND_JSON, KIND_OFSC, Job, jobs_for_change
from smsbridge.notify_delivery import backoff
from smsbridge.originator import view_of
from smsbridge.repository import message_to_item
from smsbridge.statuses import Status
from tests.support import ROOT, a_message

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def resolver(*addresses: str) -> callback_urls.Resolver:
    def resolve(host: str, port: int) -> Iterable[str]:
        return addresses

    return resolve


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("http://169.254.169.254/latest/meta-data/", ()),
        ("https://169.254.169.254/latest/meta-data/", ()),
        ("https://10.0.0.7/hook", ()),
        ("https://192.168.1.20/hook", ()),
        ("https://100.64.0.1/hook", ()),
        ("http://[::1]:22/", ()),
        ("https://[::1]/", ()),
        ("https://[::ffff:127.0.0.1]/", ()),
        ("https://[fd00:ec2::254]/", ()),
        ("https://0.0.0.0/", ()),
        ("https://localhost/hook", ()),
        ("https://metadata.google.internal/", ()),
        ("file:///etc/passwd", ()),
        ("ftp://example.com/hook", ()),
        ("not a url", ()),
        ("https://user:pass@example.com/hook", ("93.184.216.34",)),
        ("http://example.com/hook", ("93.184.216.34",)),
        ("https://hooks.example.com/x", ("93.184.216.34", "10.1.2.3")),
        ("https://rebound.example.com/x", ("127.0.0.1",)),
        ("https://example.com:99999/x", ("93.184.216.34",)),
    ],
)
def test_urls_that_reach_inside_are_refused(url: str, addresses: tuple[str, ...]) -> None:
    with pytest.raises(callback_urls.RefusedUrl):
        callback_urls.check(url, resolver=resolver(*addresses))


def test_public_https_urls_and_allowed_hosts_pass() -> None:
    public = resolver("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    assert callback_urls.check("https://hooks.example.com/sms?x=1", resolver=public)
    assert callback_urls.check("https://93.184.216.34/hook", resolver=None)
    # A host the client's configuration allows: loopback, and plain http, are fine for it only.
    allowed = ["127.0.0.1"]
    assert callback_urls.check("http://127.0.0.1:3001/_sim/callback/x", allowed)
    with pytest.raises(callback_urls.RefusedUrl):
        callback_urls.check("http://127.0.0.2:3001/x", allowed)


def test_an_unresolvable_name_is_not_refused_but_reported() -> None:
    def fails(host: str, port: int) -> Iterable[str]:
        raise callback_urls.UnresolvedHost(host)

    with pytest.raises(callback_urls.UnresolvedHost):
        callback_urls.check("https://nowhere.example/x", resolver=fails)


# ------------------------------------------------------------------ the template's stream filter


def stream_record(event: str, old: str | None, new: str | None, kind: str = "message") -> Any:
    def image(status: str | None) -> dict[str, Any] | None:
        if status is None:
            return None
        item: dict[str, Any] = {"id": {"S": "x"}, "item_type": {"S": kind}}
        if kind == "message":
            item["status"] = {"S": status}
        return item

    change: dict[str, Any] = {"Keys": {"id": {"S": "x"}}}
    for key, status in (("OldImage", old), ("NewImage", new)):
        if (img := image(status)) is not None:
            change[key] = img
    return {"eventName": event, "dynamodb": change}


@pytest.fixture(scope="module")
def stream_filters() -> tuple[dict[str, Any], ...]:
    """The FilterCriteria patterns of NotifyFunction's stream trigger, as template.yaml has them."""

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)  # noqa: S506
    (trigger,) = [
        event["Properties"]
        for event in template["Resources"]["NotifyFunction"]["Properties"]["Events"].values()
        if event["Type"] == "DynamoDB"
    ]
    assert trigger["Stream"] == "!GetAtt"
    return tuple(json.loads(f["Pattern"]) for f in trigger["FilterCriteria"]["Filters"])


def test_the_stream_filter_fits_lambdas_pattern_limit(
    stream_filters: tuple[dict[str, Any], ...],
) -> None:
    """Lambda takes at most 5 filters per event source mapping, each pattern under 4,096
    characters."""
    assert 1 <= len(stream_filters) <= 5
    for pattern in stream_filters:
        assert len(json.dumps(pattern)) < 4096


@pytest.mark.parametrize(
    ("record", "passed"),
    [
        (stream_record("MODIFY", "queued", "submitted"), True),
        (stream_record("MODIFY", "submitted", "enroute"), True),
        (stream_record("MODIFY", "unknown", "enroute"), True),
        (stream_record("MODIFY", "enroute", "delivered"), True),
        (stream_record("MODIFY", "terminated", "delivered"), True),
        (stream_record("MODIFY", "enroute", "forwarded"), True),
        (stream_record("MODIFY", "queued", "cancelled"), True),
        # A write that leaves the status as it was (history, claim, poll, notified_seq).
        (stream_record("MODIFY", "enroute", "enroute"), False),
        (stream_record("MODIFY", "delivered", "delivered"), False),
        (stream_record("MODIFY", "queued", "queued"), False),
        # A new message: its status was in the answer to the request that made it.
        (stream_record("INSERT", None, "queued"), False),
        (stream_record("REMOVE", "delivered", None), False),
        (stream_record("MODIFY", "x", "x", kind="gateway"), False),
    ],
)
def test_the_stream_filter_lets_status_changes_through_only(
    stream_filters: tuple[dict[str, Any], ...], record: Any, passed: bool
) -> None:
    assert passes(stream_filters, record) is passed


# ------------------------------------------------------------------------ jobs from a change


def message(status: Status, seq: int, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": "a" * 32,
        "message_id": "m-1",
        "status": status,
        "inserted_at": "2026-11-30T11:59:00.000Z",
        "updated_at": "2026-11-30T11:59:30.000Z",
        "status_changed_at": "2026-11-30T11:59:30.000Z",
        "status_seq": seq,
    }
    return a_message(**(values | fields))


OFSC = {"origin": Origin(kind="ofsc", app_host="h.example.com", app_port="443", app_url="/s")}
HOOK = {"callback_url": "https://hooks.example.com/x"}


@pytest.mark.parametrize(
    ("old", "new", "fields", "expected"),
    [
        # OFSC: one final status, the alternate's for a forwarded message, none for cancelled.
        (Status.SUBMITTED, message(Status.ENROUTE, 2), OFSC, []),
        (Status.ENROUTE, message(Status.DELIVERED, 3), OFSC, [(KIND_OFSC, "delivered", 0)]),
        (Status.ENROUTE, message(Status.UNDELIVERABLE, 3), OFSC, [(KIND_OFSC, "failed", 0)]),
        (Status.ENROUTE, message(Status.TERMINATED, 3), OFSC, [(KIND_OFSC, "sent", 0)]),
        (Status.ENROUTE, message(Status.FORWARDED, 3), OFSC, []),
        (Status.QUEUED, message(Status.CANCELLED, 1), OFSC, []),
        # `terminated` was the final told; a carrier final after it goes to `all` only.
        (Status.TERMINATED, message(Status.DELIVERED, 4), OFSC, []),
        (Status.TERMINATED, message(Status.DELIVERED, 4), HOOK, []),
        (
            Status.TERMINATED,
            message(Status.DELIVERED, 4, callback_events="all"),
            HOOK,
            [(KIND_JSON, "delivered", 3)],
        ),
        # JSON final: the final outcome only.
        (Status.SUBMITTED, message(Status.ENROUTE, 2), HOOK, []),
        (Status.ENROUTE, message(Status.FORWARDED, 3), HOOK, []),
        (Status.ENROUTE, message(Status.DELIVERED, 3), HOOK, [(KIND_JSON, "delivered", 0)]),
        # JSON all: every change, each waiting for the one before.
        (
            Status.QUEUED,
            message(Status.SUBMITTED, 1, callback_events="all"),
            HOOK,
            [(KIND_JSON, "submitted", 0)],
        ),
        (
            Status.ENROUTE,
            message(Status.FORWARDED, 3, callback_events="all"),
            HOOK,
            [(KIND_JSON, "forwarded", 2)],
        ),
        # No callback URL, no change: nothing.
        (Status.ENROUTE, message(Status.DELIVERED, 3), {}, []),
        (Status.DELIVERED, message(Status.DELIVERED, 3), HOOK, []),
    ],
)
def test_jobs_for_a_change(
    old: Status, new: Message, fields: dict[str, Any], expected: list[tuple[str, str, int]]
) -> None:
    for key, value in fields.items():
        setattr(new, key, value)
    jobs = jobs_for_change(old, new, NOW)
    word_or_status = [(j.kind, j.word if j.kind == KIND_OFSC else j.status, j.after) for j in jobs]
    assert word_or_status == expected
    for job in jobs:
        assert Job.from_json(job.to_json()) == job
        assert job.thread == new.id and job.seq == new.status_seq


def test_the_alternates_jobs_speak_of_the_clients_message() -> None:
    alternate = message(
        Status.DELIVERED,
        5,
        id="b" * 32,
        forwarded_from="a" * 32,
        submitter_message_id="m-1",
        callback_events="all",
        delivered_at="2026-11-30T11:59:30.000Z",
        **HOOK,
    )
    (job,) = jobs_for_change(Status.ENROUTE, alternate, NOW)
    assert job.thread == "a" * 32  # ordered with the original's statuses
    assert job.after == 4
    payload = job.callback_payload()
    assert payload["message_id"] == "m-1"
    assert payload["forwarded_from"] == "a" * 32
    assert payload["status"] == "delivered"
    assert set(payload) == {
        "message_id",
        "status",
        "description",
        "gateway_status",
        "status_changed_at",
        "forwarded_to",
        "forwarded_from",
    }


def test_a_forwarded_hop_is_not_the_originators_final() -> None:
    view = view_of(message(Status.FORWARDED, 3, forwarded_to="b" * 32))
    assert view.word == "sending"
    assert not view.final and not view.stop_further_attempts
    failed = view_of(message(Status.UNDELIVERABLE, 3))
    assert failed.word == "failed" and failed.final and failed.stop_further_attempts


def test_status_seq_round_trips_through_the_item() -> None:
    item = message_to_item(message(Status.ENROUTE, 7))
    assert item["status_seq"] == {"N": "7"}


@pytest.mark.parametrize(
    ("base", "attempt", "seconds"),
    [(30, 1, 30), (30, 2, 60), (30, 3, 120), (30, 7, 1920), (30, 8, 3600), (30, 50, 3600)],
)
def test_backoff_doubles_and_is_capped_at_an_hour(base: int, attempt: int, seconds: int) -> None:
    assert backoff(Settings(notify_backoff_seconds=base), attempt) == seconds
