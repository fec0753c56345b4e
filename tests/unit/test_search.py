"""The search's keys, its merge of index partitions, its cursor and its masking (no AWS)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from smsbridge import search_keys
from smsbridge.config import AppConfig, ClientConfig, parse_config
from smsbridge.models import Message, iso
from smsbridge.repository import IndexPage, MessageRepository
from smsbridge.search import BadQuery, Search, record_view
from tests.support import a_message, local_documents

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NUMBER = "+380671234501"


def config() -> AppConfig:
    document, secrets = local_documents("http://127.0.0.1:9")
    return parse_config(document, secrets)


class FakeRepository:
    """The repository's search reads over an in-memory list of messages."""

    def __init__(self, messages: Iterable[Message], secret: str) -> None:
        self.messages = {m.id: m for m in messages}
        self.keys = {
            m.id: search_keys.index_keys(secret, m.client, m.phone_number, m.id)
            for m in self.messages.values()
        }
        self.queries = 0

    def search_index(
        self,
        index: str,
        key_name: str,
        partition: str,
        *,
        since: str,
        until: str,
        after: tuple[str, str] | None,
        limit: int,
    ) -> IndexPage:
        self.queries += 1
        entries = sorted(
            (
                (m.inserted_at, m.id)
                for m in self.messages.values()
                if self.keys[m.id].get(key_name) == partition and since <= m.inserted_at <= until
            ),
            reverse=True,
        )
        if after is not None:
            entries = [e for e in entries if e < after]
        return IndexPage(entries[:limit], len(entries) > limit, 0.0)

    def read_messages(self, sms_ids: Iterable[str]) -> tuple[dict[str, Message], float]:
        return {i: self.messages[i] for i in sms_ids if i in self.messages}, 0.0

    def get(self, sms_id: str) -> Message | None:
        return self.messages.get(sms_id)


def searcher(messages: list[Message]) -> tuple[Search, FakeRepository]:
    cfg = config()
    fake = FakeRepository(messages, cfg.search_index_secret)
    return Search(cast(MessageRepository, fake), cfg, lambda: NOW), fake


def pages(search: Search, viewer: ClientConfig, **query: str) -> list[list[dict[str, Any]]]:
    found, cursor = [], None
    while True:
        params = list(query.items()) + ([("cursor", cursor)] if cursor else [])
        page = search.find(viewer, params)
        found.append(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return found


def test_the_number_key_is_a_keyed_hash_of_client_and_number() -> None:
    keys = search_keys.index_keys("secret", "demo", NUMBER, "abc")
    assert NUMBER.lstrip("+") not in keys["search_number"]
    assert keys["search_number"] in search_keys.number_partitions("secret", "demo", NUMBER)
    assert keys["search_number"] not in search_keys.number_partitions("other", "demo", NUMBER)
    assert keys["search_number"] not in search_keys.number_partitions("secret", "partner", NUMBER)
    assert keys["search_time"] in search_keys.time_partitions("demo")
    assert "search_number" not in search_keys.index_keys("", "demo", NUMBER, "abc")


def test_pages_merge_the_shards_newest_first_each_message_once_with_ties() -> None:
    rng = random.Random(7)
    messages = []
    for n in range(137):
        # Many share a millisecond, as a batch does.
        at = iso(NOW - timedelta(seconds=rng.randrange(40)))
        client = ("demo", "partner")[n % 2]
        messages.append(
            a_message(id=f"m{n:03d}", client=client, phone_number=NUMBER, inserted_at=at)
        )
    search, _ = searcher(messages)
    support = config().clients["support"]
    found = pages(search, support, to=NUMBER, limit="10")
    flat = [record["inserted_at"] for page in found for record in page]
    assert len(flat) == 137 and flat == sorted(flat, reverse=True)
    ids = [record["id"] for page in found for record in page]
    assert len(set(ids)) == 137
    assert all(len(page) == 10 for page in found[:-1])


def test_a_page_reads_one_query_per_partition_whatever_the_table_holds() -> None:
    many = [
        a_message(id=f"x{n}", phone_number=f"+3806712{n:05d}", inserted_at=iso(NOW))
        for n in range(3000)
    ]
    search, fake = searcher([*many, a_message(id="hit", phone_number=NUMBER, inserted_at=iso(NOW))])
    demo = config().clients["demo"]
    page = search.find(demo, [("to", NUMBER)])
    assert [r["id"] for r in page.records] == ["hit"]
    assert fake.queries == search_keys.NUMBER_INDEX_SHARDS


def test_support_sees_the_country_code_and_two_digits_and_no_body() -> None:
    message = a_message(phone_number=NUMBER, body="secret text")
    support, demo = config().clients["support"], config().clients["demo"]
    masked = record_view(message, support, history=True)
    assert masked["phone_number"] == "+380******01" and "body" not in masked
    assert NUMBER not in json.dumps(masked)
    own = record_view(message, demo, history=False)
    assert own["phone_number"] == NUMBER and own["body"] == "secret text"
    assert "history" not in own


def test_a_cursor_is_bound_to_its_viewer_and_query() -> None:
    messages = [a_message(id=f"m{n}", phone_number=NUMBER, inserted_at=iso(NOW)) for n in range(5)]
    search, _ = searcher(messages)
    cfg = config()
    demo = cfg.clients["demo"]
    cursor = search.find(demo, [("to", NUMBER), ("limit", "2")]).next_cursor
    assert cursor is not None
    search.find(demo, [("to", NUMBER), ("limit", "2"), ("cursor", cursor)])
    for viewer, params in [
        (cfg.clients["partner"], [("to", NUMBER), ("limit", "2")]),
        (demo, [("to", NUMBER), ("limit", "2"), ("status", "queued")]),
        (demo, [("to", NUMBER), ("limit", "3")]),
    ]:
        with pytest.raises(BadQuery) as refused:
            search.find(viewer, [*params, ("cursor", cursor)])
        assert refused.value.parameter == "cursor"
    other_secret, _ = searcher(messages)
    other_secret._config = AppConfig(  # the same query under another deployment's secret
        clients=cfg.clients,
        carriers=cfg.carriers,
        routes=cfg.routes,
        search_index_secret="another",
    )
    with pytest.raises(BadQuery):
        other_secret.find(demo, [("to", NUMBER), ("limit", "2"), ("cursor", cursor)])


def test_without_a_search_secret_search_is_unavailable() -> None:
    from smsbridge.search import SearchUnavailable

    cfg = config()
    bare = AppConfig(clients=cfg.clients, carriers=cfg.carriers, routes=cfg.routes)
    search = Search(cast(MessageRepository, FakeRepository([], "")), bare, lambda: NOW)
    with pytest.raises(SearchUnavailable, match="search_index_secret"):
        search.find(cfg.clients["demo"], [("to", NUMBER)])
