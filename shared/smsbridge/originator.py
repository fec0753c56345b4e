"""What the originator of a message sees: one view for every answer and every callback.

The JSON answers of `POST /v1/messages`, OFSC's `send_message` and `get_message_status` answers
and the notify callbacks all read a message through `view_of`, so they cannot disagree. A message
that was `forwarded` (SPEC 4.1) is seen through its alternate: pass the alternate as `message`
(the caller looks it up, see `Intake.outcome`); the forwarded hop itself reads as still sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsbridge.models import Message
from smsbridge.statuses import Status, heard


@dataclass(frozen=True, slots=True)
class OriginatorView:
    #: The client's own message id (the same on an alternate hop).
    message_id: str
    #: smsbridge's id of the client's message (its first hop, also when read from the alternate).
    external_id: str
    #: The canonical status of that hop.
    status: Status
    #: OFSC's word for it (SPEC 2): sending | delivered | failed | sent.
    word: str
    description: str
    gateway_status: str
    status_changed_at: str
    delivered_at: str
    forwarded_to: str
    forwarded_from: str
    #: When the carrier accepted this hop ("" if it never did).
    submitted_at: str = ""

    @property
    def final(self) -> bool:
        """The originator's final outcome (a forwarded hop is not: its alternate's is)."""
        return heard(self.status).outcome

    @property
    def shows_description(self) -> bool:
        return heard(self.status).shows_description

    @property
    def stop_further_attempts(self) -> bool:
        return heard(self.status).stop_further_attempts

    @property
    def sent(self) -> str:
        """OFSC's `sent`, "the actual time when the message was sent": the submission time, on
        every final outcome of a submitted message (`terminated` included); "" otherwise."""
        return self.submitted_at if self.final else ""


def view_of(message: Message) -> OriginatorView:
    """The originator's view of one hop of a message."""
    return OriginatorView(
        message_id=message.submitter_message_id or message.message_id,
        external_id=message.forwarded_from or message.id,
        status=message.status,
        word=heard(message.status).ofsc_status,
        description=message.description or str(message.status),
        gateway_status=message.gateway_status,
        status_changed_at=message.status_changed_at,
        delivered_at=message.delivered_at,
        forwarded_to=message.forwarded_to,
        forwarded_from=message.forwarded_from,
        submitted_at=message.submitted_at,
    )
