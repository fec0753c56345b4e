"""Telling the originator, stage one: a status change becomes notification jobs (pure, no I/O).

The Messages table's stream, filtered to status changes, feeds `jobs_for_change`; the jobs go on
the notify queue, and `smsbridge.notify_delivery` sends them. Nothing here calls a back office,
so a slow endpoint never holds the stream.

What the originator hears (SPEC 3.1, 3.2, 4.1), read through `smsbridge.originator`:
- OFSC (advanced workflow): one final status per `message_id`; a forwarded message's is its
  alternate's, under the original `message_id`. A `cancelled` message is not reported: OFSC
  dropped it itself and heard `OK`. A carrier final after `terminated` is not reported either:
  `terminated` (OFSC `sent`) was the final already told.
- JSON `final`: the final outcome, likewise (one per message). JSON `all`: every status change,
  `forwarded` (with `forwarded_to`) and then the alternate's statuses (with `forwarded_from`).

Every status change of a client message has a number (`status_seq`, continued by the alternate),
so jobs carry their order: `seq`, and for `all` the number they must wait for (`after`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from smsbridge.models import Message, iso
from smsbridge.originator import view_of
from smsbridge.repository import message_from_image
from smsbridge.statuses import Status, heard
from smsbridge.webhook_signature import new_event_id

KIND_OFSC = "ofsc"
KIND_JSON = "json"


@dataclass(frozen=True, slots=True)
class Job:
    """One status to tell one originator."""

    kind: str
    client: str
    #: smsbridge id of the client message's first hop: where `notified_seq` is kept.
    thread: str
    #: Number of this status change in the client message's life (see module docstring).
    seq: int
    #: `all`: the status number that must be told first (0: none).
    after: int
    message_id: str
    status: str
    word: str
    description: str
    gateway_status: str
    status_changed_at: str
    delivered_at: str
    forwarded_to: str
    forwarded_from: str
    callback_url: str = ""
    app_host: str = ""
    app_port: str = ""
    app_url: str = ""
    #: When the job was first queued (ISO): bounds how long it waits for the one before it.
    queued_at: str = ""
    #: Random, made when the job is made and carried in the queue record, so every retry (and a
    #: redrive from the dead-letter queue) sends the same one: receivers drop repeats by it.
    event_id: str = ""
    #: OFSC's `sent` (ISO): the submission time of a final outcome ("" when not submitted).
    sent: str = ""
    #: OFSC hears the description (a final other than delivered).
    shows_description: bool = True

    def __post_init__(self) -> None:
        if not self.event_id:
            # A job queued before event ids were random: its status change's old number.
            object.__setattr__(self, "event_id", f"{self.thread}:{self.seq}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Job:
        """A job from a queue record (ValueError when it is not one)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a notify job is a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            job = cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as exc:
            raise ValueError(f"not a notify job: {exc}") from None
        if job.kind not in (KIND_OFSC, KIND_JSON) or not job.thread or job.seq < 1:
            raise ValueError("not a notify job")
        return job

    def callback_payload(self) -> dict[str, str]:
        """The JSON callback body (SPEC 3.2)."""
        return {
            "message_id": self.message_id,
            "status": self.status,
            "description": self.description,
            "gateway_status": self.gateway_status,
            "status_changed_at": self.status_changed_at,
            "forwarded_to": self.forwarded_to,
            "forwarded_from": self.forwarded_from,
        }


def jobs_for_change(old_status: Status | None, new: Message, now: datetime) -> list[Job]:
    """The notifications one status change of `new` (from `old_status`) calls for."""
    if old_status == new.status or new.status_seq < 1:
        return []
    view = view_of(new)
    base: dict[str, Any] = {
        "client": new.client,
        "thread": new.forwarded_from or new.id,
        "seq": new.status_seq,
        "message_id": view.message_id,
        "status": str(view.status),
        "word": view.word,
        "description": view.description,
        "gateway_status": view.gateway_status,
        "status_changed_at": view.status_changed_at,
        "delivered_at": view.delivered_at,
        "sent": view.sent,
        "shows_description": view.shows_description,
        "forwarded_to": view.forwarded_to,
        "forwarded_from": view.forwarded_from,
        "queued_at": iso(now),
        "event_id": new_event_id(),
    }
    # `terminated` was already told as the final outcome: one final per message, so a real
    # final that replaces it later goes only to `all` listeners.
    retold = old_status == Status.TERMINATED
    rule = heard(view.status)
    if new.origin.kind == KIND_OFSC:
        if not rule.notifies_ofsc or retold:
            return []
        origin = new.origin
        return [
            Job(
                kind=KIND_OFSC,
                after=0,
                app_host=origin.app_host,
                app_port=origin.app_port,
                app_url=origin.app_url,
                **base,
            )
        ]
    if not new.callback_url:
        return []
    url = new.callback_url
    if new.callback_events == "all":
        return [Job(kind=KIND_JSON, after=new.status_seq - 1, callback_url=url, **base)]
    if not rule.notifies_final_listeners or retold:
        return []
    return [Job(kind=KIND_JSON, after=0, callback_url=url, **base)]


def jobs_for_images(
    old_image: dict[str, Any] | None, new_image: dict[str, Any] | None, now: datetime
) -> list[Job]:
    """The jobs for one stream record (its old and new images, as DynamoDB writes them)."""
    new = message_from_image(new_image)
    if new is None:
        return []
    old = message_from_image(old_image)
    return jobs_for_change(old.status if old else None, new, now)
