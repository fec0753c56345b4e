"""`make soak` in small: 300 messages through the local stack under injected faults.

One run serves every test here: the audit (nothing lost, nothing sent twice, no wrong final) and
the log-hygiene check over every line the handlers and the local stack wrote meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.chaos import FaultRates
from tools.soak import Audit, format_report, hygiene_findings, run, secret_values

MESSAGES = 300


@pytest.fixture(scope="module")
def soak() -> Iterator[tuple[Audit, str]]:
    rates = FaultRates()
    # Five a second and no bound on open messages: above what a small machine's local stack
    # dispatches, so a backlog forms and the poller's re-queue and time-out paths run too.
    result = run(MESSAGES, seed=11, rates=rates, rate=5.0, max_open=0)
    yield result, "\n".join(format_report(result, rates))


def test_every_accepted_message_ends_final_once_sent_with_the_decided_status(
    soak: tuple[Audit, str],
) -> None:
    result, report = soak
    # A request the intake answers 5xx six times running (throttled) is refused, not accepted:
    # the client knows, so it is not a loss; it must stay rare.
    assert result.accepted + result.refused == MESSAGES, report
    assert result.refused <= MESSAGES // 50, report
    assert result.lost == [], report
    assert result.double_sends == [], report
    assert result.wrong_finals == [], report
    assert sum(result.finals.values()) == result.accepted, report


def test_the_faults_were_injected(soak: tuple[Audit, str]) -> None:
    result, report = soak
    for fault in ("carrier_5xx", "dynamodb_throttle", "sqs_duplicate", "receipt_reorder"):
        assert result.faults[fault] > 0, report


def test_the_carrier_outage_cost_few_submissions(soak: tuple[Audit, str]) -> None:
    result, report = soak
    assert result.outage == "smartswitch down 60 s", report
    # The circuit's five failures, a probe per 30 s open, and the few submissions under way when
    # it opened; without the breaker each message of the minute would be tried again and again.
    assert 0 < result.outage_refused <= 15, report


def test_no_secret_or_full_phone_number_in_any_log_line(soak: tuple[Audit, str]) -> None:
    result, report = soak
    assert result.log_lines > MESSAGES, report
    assert result.hygiene == [], report


SECRETS = {"clients": {"demo": {"token": "demo-token-123"}}, "carriers": {"x": {"username": "u"}}}


@pytest.mark.parametrize(
    "line",
    [
        '{"level":"INFO","message":"auth","token":"demo-token-123"}',
        "POST /dlr/smartswitch?message_id=1&_password=x",
        '{"headers": {"Authorization": "Basic b2ZzYzpvZnNjLXNlY3JldA=="}}',
        "<urn:auth_string>0123456789abcdef0123</urn:auth_string>",
        '{"message":"submission refused","to":"+380671234501"}',
        '{"message":"submission refused","to":"0671234501"}',
    ],
)
def test_the_hygiene_check_finds_a_secret_or_a_number(line: str) -> None:
    findings = hygiene_findings([line], secret_values(SECRETS), ["+380671234501"])
    assert len(findings) == 1


def test_the_hygiene_check_passes_masked_numbers_and_plain_lines() -> None:
    lines = [
        '{"message":"submission refused","to":"+380*******01","carrier":"ip2sms"}',
        '{"_aws":{"CloudWatchMetrics":[]},"Submitted":[1,1]}',
        "POST /dlr/smartswitch 200 12ms",
    ]
    assert hygiene_findings(lines, secret_values(SECRETS), ["+380671234501"]) == []
