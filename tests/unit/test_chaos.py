"""The soak's fault injection: decisions by rate, and the requests each fault may touch."""

from __future__ import annotations

from tools.chaos import EXEMPT_USER_AGENT, FaultRates, Faults

ALWAYS = FaultRates(**dict.fromkeys(FaultRates.__dataclass_fields__, 1.0))
NEVER = FaultRates(**dict.fromkeys(FaultRates.__dataclass_fields__, 0.0))


def _environ(operation: str, agent: str = "Boto3/1.35 md/Botocore") -> dict[str, str]:
    return {"HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{operation}", "HTTP_USER_AGENT": agent}


def test_throttling_touches_reads_and_writes_of_the_handlers_only() -> None:
    faults = Faults(ALWAYS)
    assert faults.throttles(_environ("UpdateItem"))
    assert faults.throttles(_environ("BatchGetItem"))
    assert not faults.throttles(_environ("DescribeTable"))
    assert not faults.throttles(_environ("GetItem", f"Boto3/1.35 {EXEMPT_USER_AGENT}"))
    assert faults.counts["dynamodb_throttle"] == 2


def test_nothing_is_injected_while_disabled_or_at_rate_zero() -> None:
    assert not Faults(ALWAYS, enabled=False).throttles(_environ("PutItem"))
    faults = Faults(NEVER)
    assert faults.receipts(("enroute", "delivered")) == (("enroute", "delivered"), False)
    assert not faults.roll("carrier_5xx", 0.0)
    assert not faults.counts


def test_receipts_reordered_repeated_and_early_at_rate_one() -> None:
    states, early = Faults(ALWAYS).receipts(("enroute", "delivered"))
    assert early
    assert states[0] == "delivered"
    assert sorted(set(states)) == ["delivered", "enroute"]
    assert len(states) == 3


def test_once_decides_a_key_a_single_time() -> None:
    faults = Faults(ALWAYS)
    assert faults.once("crash_before_dispatch_write", "m1", 1.0)
    assert not faults.once("crash_before_dispatch_write", "m1", 1.0)
    assert faults.once("crash_before_dispatch_write", "m2", 1.0)


def test_the_same_seed_makes_the_same_decisions() -> None:
    first, second = Faults(FaultRates(), seed=7), Faults(FaultRates(), seed=7)
    rolls = [first.roll("x", 0.3) for _ in range(50)]
    assert rolls == [second.roll("x", 0.3) for _ in range(50)]
