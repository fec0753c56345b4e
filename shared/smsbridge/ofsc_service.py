"""OFSC outbound calls to smsbridge: authenticate the client, then send, report or drop messages.

The protocol (SOAP shapes, hashes, faults) is `smsbridge.ofsc`; this module decides what to answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from smsbridge import auth, ofsc
from smsbridge.config import ClientConfig
from smsbridge.intake import Intake, MessageRequest, message_id_problem
from smsbridge.limits import LimitRefusal
from smsbridge.models import Message, Origin, parse_iso, utcnow
from smsbridge.originator import view_of
from smsbridge.web import HttpAnswer, HttpRequest

logger = logging.getLogger("smsbridge.ofsc")

SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
#: Compared against when the login is unknown, so that a failed check costs the same time.
_DUMMY = ClientConfig(name="-", kind="ofsc", login="\x00", password="\x00")  # noqa: S106  # nosec B106


def fault_answer(fault: ofsc.OfscFault) -> HttpAnswer:
    return HttpAnswer(fault.http_status, fault.envelope, SOAP_CONTENT_TYPE)


class OfscService:
    def __init__(self, intake: Intake, clock: Callable[[], datetime] = utcnow) -> None:
        self._intake = intake
        self._config = intake.config
        self._clock = clock

    def handle(self, request: HttpRequest) -> HttpAnswer:
        """Answer one call. The body is bounded by the caller; Basic credentials, when sent, are
        checked before the body is parsed (the `user` block can only be read from the body)."""
        client: ClientConfig | None = None
        basic = request.basic_auth()
        if basic is not None:
            client = self._basic_client(basic)
            if client is None:
                logger.warning("OFSC authentication failed")
                return fault_answer(ofsc.authentication_failed())
        try:
            call = ofsc.parse_request(request.body)
        except ofsc.OfscFault as fault:
            return fault_answer(fault)
        if client is None:
            client = self._user_client(call.user)
        if client is None:
            logger.warning("OFSC authentication failed")
            return fault_answer(ofsc.authentication_failed())
        most = ofsc.MAX_MESSAGES[call.operation]
        if len(call.messages) > most:
            return fault_answer(ofsc.too_many_messages(call.operation, most))
        if call.operation == "send_message":
            body = self._send(client, call.messages)
        elif call.operation == "get_message_status":
            body = ofsc.get_message_status_response(self._statuses(client, call.messages))
        else:
            body = ofsc.drop_message_response(self._drops(client, call.messages))
        return HttpAnswer(200, body, SOAP_CONTENT_TYPE)

    # --- authentication -------------------------------------------------------------------

    def _ofsc_clients(self) -> list[ClientConfig]:
        return [client for client in self._config.clients.values() if client.kind == "ofsc"]

    def _basic_client(self, basic: tuple[str, str]) -> ClientConfig | None:
        """The client of the Basic credentials; every client is compared (constant time)."""
        found: ClientConfig | None = None
        for client in self._ofsc_clients():
            if auth.credentials_match(basic[0], basic[1], client.login, client.password):
                found = client
        return found

    def _user_client(self, user: ofsc.OfscUser | None) -> ClientConfig | None:
        """The client of the `user` block (login, then the hash and the time of `now`)."""
        if user is None:
            return None
        now = self._clock()
        candidates = [c for c in self._ofsc_clients() if auth.equals(user.login, c.login)]
        client = candidates[0] if candidates else _DUMMY
        ok = ofsc.verify_user(
            user, login=client.login, secret=client.password, hash_kind=client.auth_hash, now=now
        )
        return client if ok and candidates else None

    # --- operations -----------------------------------------------------------------------

    def _send(self, client: ClientConfig, messages: list[ofsc.OfscMessage]) -> str:
        """Messages whose message_id breaks the rule are answered `failed` and never stored."""
        usable = [item for item in messages if not message_id_problem(item.message_id)]
        accepted = self._intake.accept(client, [self._request_of(item) for item in usable])
        stored = iter(self._intake.outcomes_of(accepted))
        responses: list[ofsc.MessageResponse] = []
        for item in messages:
            problem = message_id_problem(item.message_id)
            if problem:
                responses.append(
                    ofsc.MessageResponse(
                        message_id=item.message_id,
                        status="failed",
                        description=problem,
                        stop_further_attempts=True,
                    )
                )
            else:
                answer = next(stored)
                if isinstance(answer, LimitRefusal):
                    # No stop_further_attempts: OFSC may try again later (SPEC 3.5).
                    responses.append(
                        ofsc.MessageResponse(
                            message_id=item.message_id,
                            status="failed",
                            description=answer.description,
                        )
                    )
                else:
                    responses.append(self._response(client, answer))
        return ofsc.send_message_response(responses)

    @staticmethod
    def _request_of(item: ofsc.OfscMessage) -> MessageRequest:
        origin = Origin(
            kind="ofsc", app_host=item.app_host, app_port=item.app_port, app_url=item.app_url
        )
        problem = ""
        try:
            recipient = ofsc.recipient_of(item)
        except ValueError as exc:
            recipient = ofsc.Recipient(to=item.address, text=item.body)
            problem = f"unreadable message: {exc}"
        try:
            send_to = ofsc.parse_send_to(item.send_to)
        except ValueError as exc:
            send_to, problem = None, problem or str(exc)
        return MessageRequest(
            to=recipient.to,
            text=recipient.text,
            message_id=item.message_id,
            type=recipient.type or "text",
            sender=recipient.sender,
            alternate_delivery=bool(recipient.alternate_delivery),
            send_to=send_to,
            origin=origin,
            invalid_reason=problem,
        )

    def _response(self, client: ClientConfig, outcome: Message) -> ofsc.MessageResponse:
        view = view_of(outcome)
        status = view.word
        if status == "sending" and client.workflow == "simple":
            status = "sent"
        return ofsc.MessageResponse(
            message_id=view.message_id,
            status=status,
            description=view.description if view.shows_description else None,
            sent=ofsc.format_now(parse_iso(view.sent)) if view.sent else None,
            stop_further_attempts=view.stop_further_attempts,
        )

    def _statuses(
        self, client: ClientConfig, messages: list[ofsc.OfscMessage]
    ) -> list[ofsc.Result]:
        """Batch reads for the whole request (an id that breaks the rule is never stored)."""
        ids = [item.message_id for item in messages]
        usable = [mid for mid in ids if not message_id_problem(mid)]
        found = dict(zip(usable, self._intake.outcome_statuses(client, usable), strict=True))
        return [ofsc.status_result(mid, found.get(mid)) for mid in ids]

    def _drops(self, client: ClientConfig, messages: list[ofsc.OfscMessage]) -> list[ofsc.Result]:
        """One batch read, then the conditional writes of the queued messages, concurrently."""
        ids = [item.message_id for item in messages]
        usable = [mid for mid in ids if not message_id_problem(mid)]
        found = dict(zip(usable, self._intake.cancel_many(client, usable), strict=True))
        return [ofsc.drop_result(mid, found[mid][1] if mid in found else None) for mid in ids]
