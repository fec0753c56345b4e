"""Sending limits, checked at intake before anything is stored (SPEC 3.5).

Two kinds:
- where a message may go (`allowed_countries`, `blocked_prefixes`, global and per client): a
  message to anywhere else is stored `failed` (a resend cannot help);
- how many may be sent (`verification_per_number_per_hour` for `verification` and `2FA`,
  `daily_message_limit` per client and UTC day): a message over the limit is refused and
  nothing is stored (the originator may try again later, `retry_after`).

Counters are items of the Messages table, incremented by one conditional `ADD` each, with a
TTL, so concurrent intakes share them exactly (`repository.take_count`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from smsbridge.config import AppConfig, ClientConfig
from smsbridge.repository import MessageRepository

OTP_TYPES = ("verification", "2FA")
VERIFICATION_PER_NUMBER_PER_HOUR = "verification_per_number_per_hour"
DAILY_MESSAGE_LIMIT = "daily_message_limit"
ALLOWED_COUNTRIES = "allowed_countries"
BLOCKED_PREFIXES = "blocked_prefixes"
#: Counter items outlive their window by this much (TTL deletion is lazy anyway).
COUNTER_GRACE_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class LimitRefusal:
    """A message refused by a counting limit: nothing was stored for it."""

    message_id: str
    limit: str
    #: Seconds until the limit's window ends (the JSON API's `Retry-After`).
    retry_after: int

    @property
    def description(self) -> str:
        return f"limit exceeded: {self.limit}"


@dataclass(frozen=True, slots=True)
class DestinationRefusal:
    """A destination the client may not send to: the message is stored `failed`."""

    limit: str
    description: str


def destination_refusal(
    config: AppConfig, client: ClientConfig, number: str, region: str
) -> DestinationRefusal | None:
    """Why `number` (E.164, in `region`) may not be sent to by `client`; None when it may."""
    for prefix in (*config.blocked_prefixes, *client.blocked_prefixes):
        if number.startswith(prefix):
            return DestinationRefusal(BLOCKED_PREFIXES, "destination blocked")
    if client.allowed_countries and region not in client.allowed_countries:
        return DestinationRefusal(ALLOWED_COUNTRIES, f"country not allowed: {region or '??'}")
    return None


def counted(client: ClientConfig, message_type: str) -> bool:
    """Whether a message of this type counts against any of the client's counting limits."""
    return bool(
        client.daily_message_limit
        or (message_type in OTP_TYPES and client.verification_per_number_per_hour)
    )


class SendingLimits:
    def __init__(self, repository: MessageRepository) -> None:
        self._repository = repository

    def take(
        self, client: ClientConfig, message_id: str, number: str, message_type: str, now: datetime
    ) -> LimitRefusal | list[str]:
        """Count one message against every limit it falls under: the counters taken (give them
        back with `give_back` if the message is not stored after all), or the refusal (then
        nothing stays counted)."""
        epoch = int(now.timestamp())
        taken: list[str] = []
        per_number = client.verification_per_number_per_hour
        if message_type in OTP_TYPES and per_number:
            hour = epoch - epoch % 3600
            # The number is hashed: the key says nothing readable about whom a client texts.
            digest = hashlib.sha256(f"{client.name}\n{number}".encode()).hexdigest()[:32]
            key = f"otp#{digest}#{hour}"
            end = hour + 3600
            if not self._repository.take_count(
                key, per_number, expires_at=end + COUNTER_GRACE_SECONDS
            ):
                return LimitRefusal(message_id, VERIFICATION_PER_NUMBER_PER_HOUR, end - epoch)
            taken.append(key)
        daily = client.daily_message_limit
        if daily:
            day = now.astimezone(UTC).date()
            key = f"day#{client.name}#{day.isoformat()}"
            end = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) + 86_400
            if not self._repository.take_count(key, daily, expires_at=end + COUNTER_GRACE_SECONDS):
                self.give_back(taken)
                return LimitRefusal(message_id, DAILY_MESSAGE_LIMIT, max(1, end - epoch))
            taken.append(key)
        return taken

    def give_back(self, keys: list[str]) -> None:
        for key in keys:
            self._repository.give_back_count(key)
