"""Hostile input over HTTP through the local stack: odd ids read back, undecodable bodies refused
in the route's own format."""

from __future__ import annotations

from urllib.parse import quote
from xml.etree import ElementTree as ET

from tests.e2e.conftest import Client

OFSC_AUTH = ("ofsc", "ofsc-secret")


def test_odd_ids_are_read_back_through_percent_encoded_paths(client: Client) -> None:
    for message_id in ("sp ace", "a/b", "caf\xe9?#%"):
        client.send(message_id=message_id, to="+4915112345601")
        answer = client.http.get(
            f"{client.api}/v1/messages/{quote(message_id, safe='')}",
            headers={"Authorization": "Bearer demo-token"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["message_id"] == message_id


def test_undecodable_bodies_are_refused_in_each_routes_format(client: Client) -> None:
    answer = client.http.post(
        f"{client.api}/v1/messages",
        data=b'{"to": "+4915112345601", "text": "caf\xe9"}',
        headers={"Authorization": "Bearer demo-token", "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body"]
    answer = client.http.post(
        f"{client.api}/ofsc",
        data=b"\xb2",
        auth=OFSC_AUTH,
        headers={"Content-Type": "text/xml"},
        timeout=10,
    )
    assert answer.status_code == 500
    root = ET.fromstring(answer.content)
    assert [e.text for e in root.iter("faultcode")] == ["soapenv:Client"]
