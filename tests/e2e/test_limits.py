"""Sending limits through the local stack (SPEC 3.5): counters shared by concurrent intakes,
and the demo `partner` client's allowed countries."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.conftest import Client


def test_twenty_parallel_verifications_to_one_number_accept_exactly_five(client: Client) -> None:
    number = f"+491511{time.time_ns() % 10**5:05d}01"
    prefix = f"otp-{time.time_ns()}"

    def send(n: int) -> requests.Response:
        return requests.post(
            f"{client.api}/v1/messages",
            json={
                "to": number,
                "text": f"Your code is {n:06d}",
                "type": "verification",
                "message_id": f"{prefix}-{n}",
            },
            headers={"Authorization": "Bearer demo-token"},
            timeout=30,
        )

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [202] * 5 + [429] * 15
    assert {a.json()["status"] for a in answers if a.status_code == 202} == {"sending"}
    for answer in answers:
        if answer.status_code == 429:
            body = answer.json()
            assert body["error"] == "limit_exceeded"
            assert body["limit"] == "verification_per_number_per_hour"
            assert answer.headers["Retry-After"] == str(body["retry_after"])
    # Nothing was stored for the refused ones; a repeat of an accepted one answers as before.
    accepted = [a.json()["message_id"] for a in answers if a.status_code == 202]
    refused_ids = {f"{prefix}-{n}" for n in range(20)} - set(accepted)
    for message_id in refused_ids:
        assert (
            client.http.get(
                f"{client.api}/v1/messages/{message_id}",
                headers={"Authorization": "Bearer demo-token"},
                timeout=10,
            ).status_code
            == 404
        )
    again = send(int(accepted[0].rsplit("-", 1)[1]))
    assert again.status_code == 202
    assert again.json()["message_id"] == accepted[0]


def test_the_partner_client_may_send_to_gb_only(client: Client) -> None:
    headers = {"Authorization": "Bearer partner-token"}
    stamp = time.time_ns()
    outside = client.http.post(
        f"{client.api}/v1/messages",
        json={"to": "+4915112345601", "text": "hi", "message_id": f"p-de-{stamp}"},
        headers=headers,
        timeout=10,
    )
    assert outside.status_code == 202
    body = outside.json()
    assert (body["status"], body["description"]) == ("failed", "country not allowed: DE")
    assert body["stop_further_attempts"] == 1
    record = client.http.get(
        f"{client.api}/v1/messages/p-de-{stamp}", headers=headers, timeout=10
    ).json()
    assert record["status"] == "failed"
    assert not client.submissions(record["id"])
