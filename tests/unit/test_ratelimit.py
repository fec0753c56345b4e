"""Per-carrier submissions per second, counted in the table (moto)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from local.cloudformation import deploy
from smsbridge.ratelimit import RateLimiter
from smsbridge.repository import MessageRepository


@pytest.fixture
def repository(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessageRepository]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        resources = deploy(session)
        yield MessageRepository(session.client("dynamodb"), resources.table_name("MessagesTable"))


def test_a_full_second_makes_the_next_submission_wait(repository: MessageRepository) -> None:
    now = [1_000.2]
    limiter = RateLimiter(repository, clock=lambda: now[0])
    assert [limiter.acquire("smartswitch", 2) for _ in range(3)] == [None, None, 1]
    # Another carrier has its own window.
    assert limiter.acquire("vibes", 2) is None
    now[0] = 1_001.1
    assert limiter.acquire("smartswitch", 2) is None


def test_rates_below_one_per_second_use_a_longer_window(repository: MessageRepository) -> None:
    now = [2_000.0]
    limiter = RateLimiter(repository, clock=lambda: now[0])
    assert limiter.acquire("ip2sms", 0.25) is None
    now[0] = 2_002.0
    assert limiter.acquire("ip2sms", 0.25) == 4
    now[0] = 2_004.0
    assert limiter.acquire("ip2sms", 0.25) is None
