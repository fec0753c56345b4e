"""Finding messages (SPEC 3.4) against moto: search, scoping, the support role, the cursor."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from local.api import http_event
from tests.handlers.conftest import Stack
from tests.support import bearer

NUMBER = "+380671234501"
#: `partner` may send to GB only (allowed_countries in the local configuration).
PARTNER_NUMBER = "+447400123401"


def post(stack: Stack, body: object, token: str = "demo-token") -> dict[str, Any]:
    handler = stack.handler_once("send_message")
    event = http_event("POST", "/v1/messages", body=json.dumps(body), headers=bearer(token))
    return stack.invoke(handler, event)


def send(stack: Stack, token: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 100):
        answer = post(stack, {"messages": messages[start : start + 100]}, token)
        assert answer["statusCode"] == 202, answer["body"]


def get(
    stack: Stack, path: str, token: str | None = "demo-token", **query: str
) -> tuple[int, dict[str, Any]]:
    """GET a route of the search function: (status, JSON body)."""
    route = path
    if path.startswith("/v1/messages/"):
        route = "/v1/messages/{client}/{message_id}"
    parts = path.strip("/").split("/")
    params = {"client": parts[2], "message_id": parts[3]} if len(parts) == 4 else None
    headers = bearer(token) if token else {}
    event = http_event(
        "GET", path, query=urlencode(query), headers=headers, route=route, path_parameters=params
    )
    answer = stack.invoke(stack.handler_once("search"), event)
    return answer["statusCode"], json.loads(answer["body"])


def search(
    stack: Stack, token: str | None = "demo-token", **query: str
) -> tuple[int, dict[str, Any]]:
    return get(stack, "/v1/messages", token, **query)


def every_page(stack: Stack, token: str, **query: str) -> list[list[dict[str, Any]]]:
    pages = []
    cursor = None
    while True:
        extra: dict[str, str] = {"cursor": cursor} if cursor else {}
        status, body = search(stack, token, **query, **extra)
        assert status == 200, body
        pages.append(body["messages"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_a_client_finds_its_messages_to_a_number_newest_first(stack: Stack) -> None:
    send(
        stack,
        "demo-token",
        [{"to": NUMBER, "message_id": f"a-{i}", "text": "hi"} for i in range(3)],
    )
    send(stack, "demo-token", [{"to": "+380671234502", "message_id": "other", "text": "hi"}])
    status, body = search(stack, to=NUMBER)
    assert status == 200, body
    found = body["messages"]
    assert sorted(m["message_id"] for m in found) == ["a-0", "a-1", "a-2"]
    assert [m["inserted_at"] for m in found] == sorted(
        (m["inserted_at"] for m in found), reverse=True
    )
    assert found[0]["phone_number"] == NUMBER and found[0]["body"] == "hi"
    assert "history" not in found[0]
    assert body["next_cursor"] is None
    # A national number with the client's default country finds the same messages.
    assert len(search(stack, to="0671234501")[1]["messages"]) == 3


def test_paging_over_250_messages_of_one_number_returns_each_once_in_order(stack: Stack) -> None:
    send(
        stack,
        "demo-token",
        [{"to": NUMBER, "message_id": f"p-{i:03d}", "text": "x"} for i in range(250)],
    )
    pages = every_page(stack, "demo-token", to=NUMBER, limit="40")
    seen = [m["message_id"] for page in pages for m in page]
    assert len(pages) == 7 and all(len(page) == 40 for page in pages[:6])
    assert sorted(seen) == [f"p-{i:03d}" for i in range(250)]
    times = [m["inserted_at"] for page in pages for m in page]
    assert times == sorted(times, reverse=True)


def test_search_by_time_without_a_number(stack: Stack) -> None:
    send(stack, "demo-token", [{"to": f"+3806712345{i:02d}", "text": "x"} for i in range(5)])
    send(stack, "partner-token", [{"to": "+447700900123", "text": "x"}])
    since = "2000-01-01T00:00:00Z"
    assert search(stack, since=since)[0] == 400  # over 31 days
    status, body = search(stack, since=_hours_ago(1))
    assert status == 200, body
    assert len(body["messages"]) == 5 and {m["client"] for m in body["messages"]} == {"demo"}


def _hours_ago(hours: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def test_filters_apply_to_status_carrier_and_type(stack: Stack) -> None:
    send(
        stack,
        "demo-token",
        [
            {"to": NUMBER, "message_id": "ok", "text": "x"},
            {"to": NUMBER, "message_id": "otp", "text": "1234", "type": "2FA"},
            {"to": NUMBER, "message_id": "bad", "text": "x", "sender": "NOPE"},
        ],
    )
    assert [m["message_id"] for m in search(stack, to=NUMBER, status="failed")[1]["messages"]] == [
        "bad"
    ]
    assert [m["message_id"] for m in search(stack, to=NUMBER, type="2FA")[1]["messages"]] == ["otp"]
    assert len(search(stack, to=NUMBER, carrier="ip2sms")[1]["messages"]) == 3
    assert search(stack, to=NUMBER, carrier="vibes")[1]["messages"] == []


# --- scoping ------------------------------------------------------------------------------------


def test_another_clients_message_is_404_in_search_get_and_delete(stack: Stack) -> None:
    send(stack, "partner-token", [{"to": PARTNER_NUMBER, "message_id": "theirs", "text": "secret"}])
    assert search(stack, to=PARTNER_NUMBER)[1]["messages"] == []
    assert search(stack, since=_hours_ago(1))[1]["messages"] == []
    handler = stack.handler_once("send_message")
    for method in ("GET", "DELETE"):
        event = http_event(
            method,
            "/v1/messages/theirs",
            headers=bearer(),
            route="/v1/messages/{message_id}",
            path_parameters={"message_id": "theirs"},
        )
        answer = stack.invoke(handler, event)
        assert answer["statusCode"] == 404, (method, answer["body"])
    # ...while its owner still sees it, and it was not cancelled.
    _, body = search(stack, "partner-token", to=PARTNER_NUMBER)
    assert [m["message_id"] for m in body["messages"]] == ["theirs"]
    assert body["messages"][0]["status"] == "queued"


# --- the support role ---------------------------------------------------------------------------


def test_support_searches_every_client_masked(stack: Stack) -> None:
    send(stack, "demo-token", [{"to": NUMBER, "message_id": "d-1", "text": "hello"}])
    send(stack, "partner-token", [{"to": NUMBER, "message_id": "p-1", "text": "hello"}])
    status, body = search(stack, "support-token", to=NUMBER)
    assert status == 200, body
    found = {m["client"]: m for m in body["messages"]}
    assert set(found) == {"demo", "partner"}
    for record in found.values():
        assert record["phone_number"] == "+380******01"
        assert "body" not in record
        assert NUMBER not in json.dumps(record)
    by_time = search(stack, "support-token", since=_hours_ago(1))[1]["messages"]
    assert {m["client"] for m in by_time} == {"demo", "partner"}


def test_support_reads_any_message_masked_with_its_history(stack: Stack) -> None:
    send(stack, "partner-token", [{"to": PARTNER_NUMBER, "message_id": "p/1 x", "text": "hello"}])
    status, record = get(stack, "/v1/messages/partner/" + quote("p/1 x", safe=""), "support-token")
    assert status == 200, record
    assert record["message_id"] == "p/1 x" and record["client"] == "partner"
    assert record["phone_number"] == "+44******01" and "body" not in record
    assert record["history"][0]["status"] == "queued"
    assert get(stack, "/v1/messages/demo/p%2F1%20x", "support-token")[0] == 404
    assert get(stack, "/v1/messages/nobody/x", "support-token")[0] == 404
    # Only support staff read by client and id.
    assert get(stack, "/v1/messages/partner/p%2F1%20x", "demo-token")[0] == 403


def test_support_is_read_only(stack: Stack) -> None:
    answer = post(stack, {"to": NUMBER, "text": "x", "message_id": "s-1"}, "support-token")
    assert answer["statusCode"] == 403
    assert json.loads(answer["body"])["message"] == "support clients are read-only"
    send(stack, "demo-token", [{"to": NUMBER, "message_id": "d-1", "text": "x"}])
    event = http_event(
        "DELETE",
        "/v1/messages/d-1",
        headers=bearer("support-token"),
        route="/v1/messages/{message_id}",
        path_parameters={"message_id": "d-1"},
    )
    assert stack.invoke(stack.handler_once("send_message"), event)["statusCode"] == 403
    assert stack.item(_sms_id("demo", "d-1"))["status"] == "queued"  # type: ignore[index]
    # Support has no OFSC credentials: neither its token nor its name is an OFSC login.
    from tests.handlers.test_ofsc import send_message as ofsc_send
    from tests.support import basic

    for authorization in ("Bearer support-token", basic("support", "support-token")):
        ofsc = http_event(
            "POST",
            "/ofsc",
            body=ofsc_send(["o-1"], [NUMBER]),
            headers={"Authorization": authorization, "Content-Type": "text/xml"},
        )
        answer = stack.invoke(stack.handler_once("send_message"), ofsc)
        assert answer["statusCode"] == 401, answer["body"]
    assert stack.receive(10) != []  # only demo's message was queued
    assert len(search(stack, "support-token", to=NUMBER)[1]["messages"]) == 1


def _sms_id(client: str, message_id: str) -> str:
    from smsbridge.models import sms_id_for

    return sms_id_for(client, message_id)


def test_carriers_are_for_support_only(stack: Stack) -> None:
    status, body = get(stack, "/v1/carriers", "support-token")
    assert status == 200, body
    assert body["carriers"]["smartswitch"] == {
        "circuit": "closed",
        "since": None,
        "failures": 0,
        "delivery_rate_24h": None,
        "outcomes_24h": 0,
    }
    assert get(stack, "/v1/carriers", "demo-token")[0] == 403
    assert get(stack, "/v1/carriers", None)[0] == 401
    assert get(stack, "/v1/me", "support-token") == (200, {"client": "support", "kind": "support"})
    assert get(stack, "/v1/me", "partner-token") == (200, {"client": "partner", "kind": "json"})
    assert get(stack, "/v1/me", "nope")[0] == 401


# --- bad parameters and the cursor ---------------------------------------------------------------


BAD_QUERIES = [
    {},
    {"to": "not a number"},
    {"to": "+999123"},
    {"to": NUMBER, "since": "yesterday"},
    {"to": NUMBER, "until": "2026-13-45"},
    {"to": NUMBER, "until": "0001-01-01"},
    {"to": NUMBER, "since": "9999-12-31T23:59:59-12:00"},
    {"to": NUMBER, "since": "2026-12-02T10:00:00Z", "until": "2026-12-01T10:00:00Z"},
    {"to": NUMBER, "since": "2026-10-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
    {"to": NUMBER, "limit": "0"},
    {"to": NUMBER, "limit": "101"},
    {"to": NUMBER, "limit": "ten"},
    {"to": NUMBER, "limit": "-1"},
    {"to": NUMBER, "status": "lost"},
    {"to": NUMBER, "carrier": "nope"},
    {"to": NUMBER, "type": "spam"},
    {"to": NUMBER, "cursor": "garbage"},
    {"to": NUMBER, "cursor": "a.b.c"},
    {"to": NUMBER, "colour": "red"},
]


def test_every_bad_parameter_is_400_json(stack: Stack) -> None:
    for query in BAD_QUERIES:
        status, body = search(stack, **query)
        assert status == 400, (query, body)
        assert body["message"] and body["parameter"], query


def test_repeated_or_badly_encoded_parameters_are_400(stack: Stack) -> None:
    for raw in ("to=%2B380671234501&to=%2B380671234502", "to=%FF"):
        event = http_event("GET", "/v1/messages", query=raw, headers=bearer())
        answer = stack.invoke(stack.handler_once("search"), event)
        assert answer["statusCode"] == 400, answer["body"]


def test_without_credentials_search_is_401(stack: Stack) -> None:
    assert search(stack, None, to=NUMBER)[0] == 401
    assert search(stack, "wrong", to=NUMBER)[0] == 401


def test_a_cursor_works_only_for_its_own_query_and_client(stack: Stack) -> None:
    send(
        stack, "demo-token", [{"to": NUMBER, "message_id": f"c-{i}", "text": "x"} for i in range(4)]
    )
    send(
        stack,
        "partner-token",
        [{"to": NUMBER, "message_id": f"c-{i}", "text": "x"} for i in range(4)],
    )
    cursor = search(stack, to=NUMBER, limit="2")[1]["next_cursor"]
    assert cursor
    assert search(stack, to=NUMBER, limit="2", cursor=cursor)[0] == 200
    # Another query, another client, or one changed character: refused.
    assert search(stack, to=NUMBER, limit="3", cursor=cursor)[0] == 400
    assert search(stack, to="+380671234502", limit="2", cursor=cursor)[0] == 400
    assert search(stack, "partner-token", to=NUMBER, limit="2", cursor=cursor)[0] == 400
    body, mac = cursor.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    status, answer = search(stack, to=NUMBER, limit="2", cursor=tampered)
    assert status == 400 and answer["parameter"] == "cursor"


def test_search_keeps_no_number_in_clear_in_its_indexes(stack: Stack) -> None:
    send(stack, "demo-token", [{"to": NUMBER, "message_id": "k-1", "text": "x"}])
    item = stack.dynamodb.get_item(
        TableName=stack.table, Key={"id": {"S": _sms_id("demo", "k-1")}}
    )["Item"]
    digits = NUMBER.lstrip("+")
    assert digits not in item["search_number"]["S"] and digits not in item["search_time"]["S"]
    assert item["search_time"]["S"].startswith("demo#")


# --- the backfill --------------------------------------------------------------------------------


def test_the_backfill_indexes_messages_stored_before_the_indexes(stack: Stack) -> None:
    from tools import backfill

    send(
        stack,
        "demo-token",
        [{"to": NUMBER, "message_id": f"old-{i}", "text": "x"} for i in range(3)],
    )
    for i in range(3):  # as stored before the indexes existed
        stack.dynamodb.update_item(
            TableName=stack.table,
            Key={"id": {"S": _sms_id("demo", f"old-{i}")}},
            UpdateExpression="REMOVE search_number, search_time",
        )
    assert search(stack, to=NUMBER)[1]["messages"] == []
    secrets_id = stack.resources.secrets_id
    assert backfill.main(["--table", stack.table, "--secrets-id", secrets_id]) == 0
    found = search(stack, to=NUMBER)[1]["messages"]
    assert sorted(m["message_id"] for m in found) == ["old-0", "old-1", "old-2"]
    assert backfill.backfill(stack.dynamodb, stack.table, "s") == 0  # nothing left to do


# --- the console's carrier numbers and the report's -----------------------------------------------


def test_carrier_delivery_rates_agree_with_the_report(stack: Stack) -> None:
    from datetime import UTC, datetime, timedelta

    from smsbridge.models import iso
    from smsbridge.repository import MessageRepository
    from smsbridge.statuses import Status
    from tests.support import a_message
    from tools import channel_report as report

    now = datetime.now(UTC)
    repository = MessageRepository(stack.dynamodb, stack.table)
    mix = {
        "smartswitch": ["delivered", "delivered", "undeliverable", "cancelled", "queued"],
        "vibes": ["forwarded", "delivered", "expired"],
        "ip2sms": ["delivered", "submitted"],
        "conceptomovil": ["cancelled"],
    }
    for carrier, statuses in mix.items():
        for n, status in enumerate(statuses):
            at = iso(now - timedelta(minutes=10 + n))
            repository.create(
                a_message(
                    id=f"{carrier}-{n}",
                    carrier=carrier,
                    status=Status(status),
                    inserted_at=at,
                    delivered_at=at if status == "delivered" else "",
                ),
                next_check_at=None,
            )
    old = iso(now - timedelta(hours=30))  # outside the last 24 h
    repository.create(
        a_message(id="old", status=Status.FAILED, inserted_at=old), next_check_at=None
    )
    answer, body = get(stack, "/v1/carriers", "support-token")
    assert answer == 200, body
    console = {name: c["delivery_rate_24h"] for name, c in body["carriers"].items()}
    since, until = now - timedelta(hours=24), datetime.now(UTC)
    expected = report.aggregate(
        report.read_log(stack.dynamodb, stack.table, since=since, until=until),
        since=since,
        until=until,
    )
    assert {name: s.rate for name, s in expected.by_carrier.items()} == {
        name: rate
        for name, rate in console.items()
        if rate is not None or name in expected.by_carrier
    }
    assert console["smartswitch"] == 2 / 3 and console["vibes"] == 1 / 3
    assert console["ip2sms"] == 1.0 and console["conceptomovil"] is None
    assert body["carriers"]["smartswitch"]["outcomes_24h"] == 3
