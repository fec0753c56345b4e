"""The search indexes' keys (SPEC 3.4), written on every message when it is created.

Two global secondary indexes of the Messages table, both KEYS_ONLY and sorted by `inserted_at`:

- `SearchByNumber`, partition `search_number` = hex HMAC-SHA256(secret, client + "\\n" + E.164)
  + `#` + shard: a number's messages of one client, never the number in clear. The secret is the
  secrets document's `search_index_secret`.
- `SearchByTime`, partition `search_time` = client + `#` + shard: a client's messages by time
  (search without a number; support staff merge every client's shards).

Both keys are written once, when the item is created, and never change, and the indexes project
keys only: an index takes exactly one write per message, however often its status changes. The
shard (a hash of the smsbridge id) spreads even one number or one client over `*_SHARDS`
partitions. At a million messages an hour (~280 a second) sent by one client to one number, a
partition takes 280 / 2 = 140 writes a second on `SearchByNumber` and 280 / 4 = 70 on
`SearchByTime`, far below DynamoDB's 1,000 a second per partition.

This module is imported on the intake path: the standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

NUMBER_INDEX = "SearchByNumber"
NUMBER_KEY = "search_number"
NUMBER_INDEX_SHARDS = 2
TIME_INDEX = "SearchByTime"
TIME_KEY = "search_time"
TIME_INDEX_SHARDS = 4


def _shard(sms_id: str, shards: int) -> int:
    return zlib.crc32(sms_id.encode()) % shards


def number_hash(secret: str, client: str, e164: str) -> str:
    """The keyed hash of (client, number): who holds the table but not the secret learns
    nothing of the number, and two clients' messages to one number share no key."""
    payload = f"{client}\n{e164}".encode()
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def number_partitions(secret: str, client: str, e164: str) -> list[str]:
    """Every `search_number` partition of one client's number."""
    digest = number_hash(secret, client, e164)
    return [f"{digest}#{shard}" for shard in range(NUMBER_INDEX_SHARDS)]


def time_partitions(client: str) -> list[str]:
    """Every `search_time` partition of one client."""
    return [f"{client}#{shard}" for shard in range(TIME_INDEX_SHARDS)]


def index_keys(secret: str, client: str, e164: str, sms_id: str) -> dict[str, str]:
    """The search attributes of a new message (no number key without a secret or an E.164
    number: a message refused for its number is found by time only)."""
    keys = {TIME_KEY: f"{client}#{_shard(sms_id, TIME_INDEX_SHARDS)}"}
    if secret and e164.startswith("+"):
        digest = number_hash(secret, client, e164)
        keys[NUMBER_KEY] = f"{digest}#{_shard(sms_id, NUMBER_INDEX_SHARDS)}"
    return keys
