"""Which due messages one poller run takes: in turn from every shard, up to the batch limit."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from smsbridge.config import Settings
from smsbridge.polling import Poller
from smsbridge.repository import OPEN_INDEX_SHARDS


class ShardedIndex:
    """The open index with `counts[shard]` due messages in each shard."""

    def __init__(self, counts: dict[int, int]) -> None:
        self.counts = counts

    def due_sms_ids(self, shard: str, *, now_epoch: int, limit: int) -> list[str]:
        return [f"{shard}-{n}" for n in range(min(limit, self.counts.get(int(shard), 0)))]


def due_ids(counts: dict[int, int], limit: int) -> list[str]:
    tracker = SimpleNamespace(
        repository=ShardedIndex(counts),
        settings=Settings(poller_batch_limit=limit),
        config=None,
        lifecycle=None,
    )
    poller = Poller(tracker)  # type: ignore[arg-type]
    return poller._due_ids(datetime(2026, 1, 1, tzinfo=UTC))


def test_a_busy_shard_does_not_crowd_out_the_others() -> None:
    ids = due_ids({0: 1000, 5: 2, 9: 1}, limit=10)
    assert len(ids) == 10
    assert {"05-0", "05-1", "09-0"} <= set(ids)


def test_room_left_by_quiet_shards_is_filled_from_the_busy_ones() -> None:
    # Uneven shards: a fixed share per shard (limit / 16) would leave room unused.
    counts = {shard: (200 if shard < 2 else 1) for shard in range(OPEN_INDEX_SHARDS)}
    ids = due_ids(counts, limit=100)
    assert len(ids) == 100
    assert len(set(ids)) == 100


def test_fewer_due_than_the_limit_takes_them_all() -> None:
    assert sorted(due_ids({3: 2, 4: 1}, limit=500)) == ["03-0", "03-1", "04-0"]
