"""`make soak N=10000`: N messages through the local stack under injected faults, then an audit.

The messages mix the routes (+380 IP2SMS polled, +52 Concepto Móvil, +1 Vibes, others
Smartswitch), the types, the simulator's outcomes (the last two digits), single and batch JSON
intake and OFSC batches. The faults of `tools.chaos` are injected at the printed rates. When every
accepted message is final (or the settle time is over) the table, the simulator's submissions and
the callbacks received are audited:

- lost: accepted, but not final at the end;
- double sends: more than one submission taken by a carrier for one message;
- wrong finals: a final other than the one the simulator's outcome for the number decides, unless
  the faults explain it (a submission refused more often than SUBMIT_MAX_ATTEMPTS allows);
- callbacks missing or duplicated (when the stack has a notify function).

Besides the random faults, one carrier is down for a while (`--outage-carrier`, default
`smartswitch`, for `--outage-seconds`, default 60, from `--outage-after` seconds into the run):
its submit endpoint answers 503, so its circuit opens and its messages go to its failover or wait
(SPEC 4.3). A message's expected final is judged on the carrier that carried it.

Every log line written meanwhile (the handlers' Powertools logs and metrics, the local stack's
own logs) is kept, and `hygiene_findings` looks for secrets and full phone numbers in them.
Exit status 1 on any lost message, double send, wrong final or log-hygiene finding.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import requests

from local.stack import SECRETS_EXAMPLE_FILE, LocalStack
from smsbridge import statuses
from tools.chaos import FaultRates, Faults

log = logging.getLogger("tools.soak")

#: Settings that make every path end in seconds (each can be overridden from the environment).
FAST_SETTINGS = {
    "SIM_DELAY_MS": "100",
    "SIM_LATE_MS": "1800",
    "SCHEDULE_SECONDS": "1",
    "POLL_FIRST_SECONDS": "1",
    "POLL_MAX_INTERVAL_SECONDS": "2",
    "REQUEUE_AFTER_SECONDS": "60",
    "SUBMIT_LEASE_SECONDS": "10",
    "SUBMIT_BACKOFF_SECONDS": "1",
    "NOTIFY_BACKOFF_SECONDS": "1",
    "STATUS_TIMEOUT_SECONDS": "60",
    "LOCAL_CONCURRENCY": "4",
}
#: How long the audit waits without any message becoming final before it calls the rest lost
#: (more than the status time-out, so that a message left to the poller's time-out ends).
SETTLE_SECONDS = 120.0
#: Messages per second offered to the intake by default: the local backend takes a few per
#: second on a small shared machine; more only waits behind the `max_open` bound.
DEFAULT_RATE = 3.0
#: The intake waits while more messages than this are open (accepted, not final): a run of any
#: N then keeps to what the local backend takes instead of building a backlog it never drains
#: (a few messages a second stay open for seconds each; a backlog of hundreds only slows every
#: local queue read and the open count itself).
DEFAULT_MAX_OPEN = 100
JSON_TOKEN = "demo-token"
OFSC_LOGIN, OFSC_SECRET = "ofsc", "ofsc-secret"
FINAL = frozenset(status.value for status in statuses.FINAL)
#: The simulator's outcome for a number's last two digits -> the final it decides.
ENDINGS: list[tuple[str, float, str]] = [
    ("default", 0.66, "delivered"),
    ("11", 0.05, "undeliverable"),
    ("12", 0.04, "rejected"),
    ("13", 0.04, "delivered"),
    ("14", 0.03, "terminated"),
    ("15", 0.05, "delivered"),
    ("16", 0.04, "expired"),
    ("17", 0.03, "delivered"),
    ("19", 0.06, "delivered"),
]
#: Where a carrier words the outcome its own way: a 4xx refusal is `failed` at submission except
#: on IP2SMS (an id whose status reads Rejected); Concepto Móvil and Vibes
#: report expiry as an undeliverable error.
CARRIER_FINALS = {
    ("12", "smartswitch"): "failed",
    ("12", "conceptomovil"): "failed",
    ("12", "vibes"): "failed",
    ("16", "conceptomovil"): "undeliverable",
    ("16", "vibes"): "undeliverable",
}
#: (prefix, random digits, carrier, share)
ROUTES: list[tuple[str, int, str, float]] = [
    ("+38067", 5, "ip2sms", 0.25),
    ("+5255", 6, "conceptomovil", 0.20),
    ("+1847555", 2, "vibes", 0.20),
    ("+49151", 6, "smartswitch", 0.35),
]
TYPES = [("text", 0.55), ("verification", 0.2), ("medication_request", 0.15), ("2FA", 0.1)]
#: Types whose status time-out the configuration sets to 30 min: never given a number ending 14.
LONG_TIMEOUT_TYPES = frozenset({"verification", "2FA"})
#: Verification and 2FA messages planned per number at most (the intake's hourly limit, SPEC 3.5).
OTP_PER_NUMBER = 5
#: The carrier outage of a run (see the module's doc).
OUTAGE_CARRIER = "smartswitch"
OUTAGE_SECONDS = 60.0
OUTAGE_AFTER_SECONDS = 20.0
_BY_ENDING = {ending: final for ending, _, final in ENDINGS}


def expected_final(to: str, carrier: str) -> str:
    """The final the simulator decides for `to` when `carrier` carries it."""
    ending = to[-2:]
    return CARRIER_FINALS.get((ending, carrier), _BY_ENDING.get(ending, _BY_ENDING["default"]))


# --------------------------------------------------------------------------------------------
# The plan


@dataclass(slots=True)
class Planned:
    client: str
    message_id: str
    to: str
    type: str
    carrier: str
    expected: str
    sent_as: str
    callback: str = ""
    callback_failures: int = 0


@dataclass(slots=True)
class Request:
    kind: str  # json1, json-batch, ofsc
    messages: list[Planned]


def _pick(rng: random.Random, weighted: list[tuple[Any, float]]) -> Any:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def _number(rng: random.Random, prefix: str, digits: int, ending: str) -> str:
    import phonenumbers

    while True:
        middle = "".join(rng.choice("0123456789") for _ in range(digits))
        tail = ending if ending != "default" else f"0{rng.randrange(10)}"
        number = prefix + middle + tail
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def plan(count: int, seed: int, *, callbacks: bool, rates: FaultRates) -> list[Request]:
    """`count` messages in requests: ~20 % single JSON, ~50 % JSON batches, ~30 % OFSC batches."""
    rng = random.Random(seed)
    requests_: list[Request] = []
    made = 0
    otp_per_number: Counter[str] = Counter()
    while made < count:
        roll = rng.random()
        kind, size = (
            ("json1", 1)
            if roll < 0.2
            else ("json-batch", rng.randint(2, 100))
            if roll < 0.7
            else ("ofsc", rng.randint(1, 50))
        )
        size = min(size, count - made)
        messages: list[Planned] = []
        for _ in range(size):
            made += 1
            type_ = _pick(rng, TYPES)
            ending, _, expected = rng.choices(ENDINGS, [e[1] for e in ENDINGS])[0]
            if ending == "14" and type_ in LONG_TIMEOUT_TYPES:
                type_ = "text"
            prefix, digits, carrier, _ = rng.choices(ROUTES, [r[3] for r in ROUTES])[0]
            to = _number(rng, prefix, digits, ending)
            if type_ in LONG_TIMEOUT_TYPES:
                otp_per_number[to] += 1
                if otp_per_number[to] > OTP_PER_NUMBER:
                    type_ = "text"
            sent_as = to
            if carrier == "ip2sms" and rng.random() < 0.2:
                sent_as = "0" + to[4:]  # national form: the client's default country is UA
            client = "ofsc" if kind == "ofsc" else "demo"
            message_id = str(7_000_000_000 + made) if client == "ofsc" else f"soak-{made:06d}"
            expected = CARRIER_FINALS.get((ending, carrier), expected)
            planned = Planned(client, message_id, to, type_, carrier, expected, sent_as)
            if callbacks and client == "demo" and rng.random() < 0.3:
                planned.callback = f"/_sim/callback/{message_id}"
                if rng.random() < rates.callback_failing:
                    planned.callback_failures = rng.randint(1, 3)
                    planned.callback += f"?fail={planned.callback_failures}"
            messages.append(planned)
        requests_.append(Request(kind, messages))
    return requests_


# --------------------------------------------------------------------------------------------
# Sending


def _json_body(message: Planned, sim_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message.message_id,
        "to": message.sent_as,
        "text": f"Your code is {message.message_id[-6:]}",
        "type": message.type,
    }
    if message.callback:
        body["callback_url"] = sim_url + message.callback
    return body


def _auth_block(rng: random.Random) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    inner = hashlib.sha256(
        (OFSC_SECRET + hashlib.sha256(OFSC_LOGIN.encode()).hexdigest()).encode()
    ).hexdigest()
    auth_string = hashlib.sha256((now + inner).encode()).hexdigest()
    return (
        f"<urn:user><urn:now>{now}</urn:now><urn:company>soak</urn:company>"
        f"<urn:login>{OFSC_LOGIN}</urn:login><urn:auth_string>{auth_string}</urn:auth_string>"
        "</urn:user>"
    )


def ofsc_envelope(messages: list[Planned], user_block: str = "") -> str:
    items = "".join(
        "<urn:message><urn:app_host>soak.example</urn:app_host><urn:app_port>443</urn:app_port>"
        "<urn:app_url>/soap/outbound/</urn:app_url>"
        f"<urn:message_id>{m.message_id}</urn:message_id>"
        f"<urn:address>{escape(m.sent_as)}</urn:address>"
        f"<urn:body>{escape('Your technician arrives at 10:00. Ref ' + m.message_id)}</urn:body>"
        "</urn:message>"
        for m in messages
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:toatech:agent"><soapenv:Body><urn:send_message>'
        f"{user_block}<urn:messages>{items}</urn:messages>"
        "</urn:send_message></soapenv:Body></soapenv:Envelope>"
    )


_OFSC_ANSWER = re.compile(
    r"<(?:\w+:)?message_id>([^<]*)</(?:\w+:)?message_id>\s*<(?:\w+:)?status>([^<]*)<"
)


class Sender:
    """Posts the planned requests, retrying a whole request on 5xx or a dropped connection (the
    intake is idempotent by message_id), and records which messages were accepted."""

    def __init__(
        self,
        api: str,
        sim: str,
        attempts: int = 6,
        rate: float = 0.0,
        *,
        open_messages: Callable[[], int] | None = None,
        max_open: int = 0,
    ) -> None:
        self.api = api
        self.rate = rate
        self._next_slot = 0.0
        #: Holds the intake while more than `max_open` messages are open (0: never).
        self._open_messages = open_messages
        self.max_open = max_open
        self._open_seen = (0.0, 0)
        self.recheck_seconds = 5.0
        #: Seconds the intake was held back by `max_open`, summed over the senders.
        self.held_seconds = 0.0
        self.sim = sim
        self.attempts = attempts
        self.accepted: set[tuple[str, str]] = set()
        self.refused: list[str] = []
        self.retried = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._rng = random.Random(5)

    def _pace(self, count: int) -> None:
        """Hold a request until the intake stays within `rate` messages per second."""
        if self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next_slot, now)
            self._next_slot = start + count / self.rate
        if start > now:
            time.sleep(start - now)

    def _hold_while_backlogged(self) -> None:
        """Wait while more than `max_open` messages are open: offered faster than the local
        backend takes them, a backlog grows without end and every queue and index read with it.
        The open count is read at most once per `recheck_seconds` for all senders."""
        if self._open_messages is None or self.max_open <= 0:
            return
        began = time.monotonic()
        while True:
            with self._lock:
                read_at, count = self._open_seen
                if time.monotonic() - read_at >= self.recheck_seconds:
                    count = self._open_messages()
                    self._open_seen = (time.monotonic(), count)
            if count <= self.max_open:
                break
            time.sleep(self.recheck_seconds)
        with self._lock:
            self.held_seconds += time.monotonic() - began

    def _http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def send(self, request: Request) -> None:
        self._pace(len(request.messages))
        self._hold_while_backlogged()
        for attempt in range(self.attempts):
            try:
                answer = self._post(request)
            except requests.RequestException:
                answer = None
            if answer is not None and answer.status_code < 500:
                self._record(request, answer)
                return
            with self._lock:
                self.retried += 1
            time.sleep(0.2 * (attempt + 1))
        with self._lock:
            self.refused.extend(m.message_id for m in request.messages)

    def _post(self, request: Request) -> requests.Response:
        http = self._http()
        if request.kind == "ofsc":
            with self._lock:
                use_block = self._rng.random() < 0.5
            block = _auth_block(self._rng) if use_block else ""
            return http.post(
                f"{self.api}/ofsc",
                data=ofsc_envelope(request.messages, block).encode(),
                headers={"Content-Type": "text/xml; charset=utf-8"},
                auth=None if use_block else (OFSC_LOGIN, OFSC_SECRET),
                timeout=60,
            )
        bodies = [_json_body(m, self.sim) for m in request.messages]
        document: Any = bodies[0] if request.kind == "json1" else {"messages": bodies}
        return http.post(
            f"{self.api}/v1/messages",
            json=document,
            headers={"Authorization": f"Bearer {JSON_TOKEN}"},
            timeout=60,
        )

    def _record(self, request: Request, answer: requests.Response) -> None:
        client = request.messages[0].client
        statuses: dict[str, str] = {}
        if request.kind == "ofsc":
            statuses = dict(_OFSC_ANSWER.findall(answer.text))
        elif answer.status_code == 202:
            document = answer.json()
            items = document["messages"] if request.kind == "json-batch" else [document]
            statuses = {str(i["message_id"]): str(i["status"]) for i in items}
        with self._lock:
            for message in request.messages:
                status = statuses.get(message.message_id)
                if status is not None and status != "failed":
                    self.accepted.add((client, message.message_id))
                else:
                    self.refused.append(message.message_id)


# --------------------------------------------------------------------------------------------
# Logs


class LogCapture:
    """Every log line written while active: the execution environments' output (their
    Powertools lines and EMF documents, forwarded line by line to this process's stdout, as
    CloudWatch would get them) and the local stack's logging."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._handlers: list[tuple[logging.Logger, logging.Handler]] = []
        self._stdout: contextlib.AbstractContextManager[Any] | None = None
        self._root_level = logging.WARNING
        self._writer: _LineWriter | None = None

    def write(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def __enter__(self) -> LogCapture:
        self._writer = _LineWriter(self)
        self._stdout = contextlib.redirect_stdout(self._writer)
        self._stdout.__enter__()
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(min(root.level or logging.INFO, logging.INFO))
        handler = _ListHandler(self, logging.Formatter("%(name)s %(levelname)s %(message)s"))
        # The handlers' lines are taken on their own logger, in their own format.
        handler.addFilter(lambda record: not record.name.startswith("smsbridge"))
        root.addHandler(handler)
        self._handlers.append((root, handler))
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, handler in self._handlers:
            logger.removeHandler(handler)
        self._handlers.clear()
        logging.getLogger().setLevel(self._root_level)
        if self._stdout is not None:
            self._stdout.__exit__(None, None, None)
            self._stdout = None


class _LineWriter(io.TextIOBase):
    def __init__(self, capture: LogCapture) -> None:
        self._capture = capture
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line:
                self._capture.write(line)
        return len(text)


class _ListHandler(logging.Handler):
    def __init__(self, capture: LogCapture, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self._capture = capture
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._capture.write(self.format(record))
        except Exception:
            self.handleError(record)


SECRET_KEYS = frozenset(
    {"password", "dlr_password", "token", "callback_secret", "api_key", "secret"}
)
_FORBIDDEN = [
    (re.compile(r"_password="), "a _password query string"),
    (re.compile(r"authorization['\"]?\s*[:=]", re.IGNORECASE), "an Authorization header"),
    (
        re.compile(r"auth_string['\"]?\s*[:=>]\s*['\"]?[0-9a-f]{16}", re.IGNORECASE),
        "an auth_string",
    ),
    (re.compile(r"\bBearer\s+\S", re.IGNORECASE), "a bearer token"),
    (re.compile(r"\bBasic\s+[A-Za-z0-9+/=]{8,}"), "Basic credentials"),
]
_DIGIT_RUNS = re.compile(r"\d{8,}")


def secret_values(document: Any) -> set[str]:
    """Every value under a secret-looking key of the secrets document."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, str) and key in SECRET_KEYS and len(value) >= 6:
                found.add(value)
            else:
                found |= secret_values(value)
    elif isinstance(document, list):
        for value in document:
            found |= secret_values(value)
    return found


def hygiene_findings(
    lines: Iterable[str], secrets: set[str], numbers: Iterable[str], *, limit: int = 20
) -> list[str]:
    """Lines holding a secret, a credential or a full phone number (digits only or E.164)."""
    digits: set[str] = set()
    for number in numbers:
        only = re.sub(r"\D", "", number)
        digits.add(only)
        if only.startswith("380"):
            digits.add("0" + only[3:])
    findings: list[str] = []
    for line in lines:
        reason = next((f"secret {s[:3]}…" for s in secrets if s in line), None)
        reason = reason or next((why for rx, why in _FORBIDDEN if rx.search(line)), None)
        if reason is None:
            run = next((r for r in _DIGIT_RUNS.findall(line) if r in digits), None)
            reason = f"phone number {run[:4]}…" if run else None
        if reason is not None:
            findings.append(f"{reason}: {line[:300]}")
            if len(findings) >= limit:
                break
    return findings


# --------------------------------------------------------------------------------------------
# Audit


@dataclass(slots=True)
class Audit:
    messages: int = 0
    accepted: int = 0
    refused: int = 0
    finals: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    double_sends: list[str] = field(default_factory=list)
    wrong_finals: list[str] = field(default_factory=list)
    explained: int = 0
    callbacks_expected: int = 0
    callbacks_missing: list[str] = field(default_factory=list)
    callbacks_duplicated: list[str] = field(default_factory=list)
    submissions: int = 0
    wall_seconds: float = 0.0
    intake_seconds: float = 0.0
    #: Of the intake time, how long the senders waited on the open-message bound (mean).
    held_seconds: float = 0.0
    #: From the first request sent until every message was final (or the wait gave up).
    flow_seconds: float = 0.0
    #: DynamoDB calls per second the local backend answered (when measured).
    backend_calls_per_second: float = 0.0
    hygiene: list[str] = field(default_factory=list)
    log_lines: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    #: The carrier outage: "<carrier> down <seconds> s" ('' when none), and the submissions
    #: the carrier refused meanwhile (the breaker keeps them to its threshold and probes).
    outage: str = ""
    outage_refused: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.double_sends or self.wrong_finals or self.hygiene)


def scan_messages(stack: LocalStack) -> dict[tuple[str, str], dict[str, str]]:
    """(client, message_id) -> the first hop's id, status and carrier (the stack's own client)."""
    dynamodb = stack.clients.dynamodb
    table = stack.table_name("MessagesTable")
    found: dict[tuple[str, str], dict[str, str]] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "id, item_type, client, message_id, #s, carrier, forwarded_from",
        "ExpressionAttributeNames": {"#s": "status"},
    }
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            if item.get("item_type", {}).get("S") != "message" or "forwarded_from" in item:
                continue
            key = (item["client"]["S"], item["message_id"]["S"])
            found[key] = {
                "id": item["id"]["S"],
                "status": item["status"]["S"],
                "carrier": item.get("carrier", {}).get("S", ""),
            }
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def wait_settled(
    stack: LocalStack, accepted: set[tuple[str, str]], settle_seconds: float, progress: bool
) -> dict[tuple[str, str], dict[str, str]]:
    """Wait until the sparse index of open messages is empty (a cheap count), then read all.

    Gives up after `settle_seconds` without a message becoming final: whatever is still open
    then is lost.
    """
    pause = min(10.0, 1.0 + len(accepted) / 1000)
    best = None
    last_progress = time.monotonic()
    while time.monotonic() - last_progress < settle_seconds:
        open_count = _open_messages(stack)
        if progress:
            print(f"  {open_count} messages open", file=sys.stderr)
        if open_count == 0:
            break
        if best is None or open_count < best:
            best, last_progress = open_count, time.monotonic()
        time.sleep(pause)
    return scan_messages(stack)


def backend_calls_per_second(stack: LocalStack, seconds: float = 3.0, threads: int = 4) -> float:
    """DynamoDB calls per second the local backend answers: reads and conditional updates of
    1 KB message-like items from `threads` clients at once (its share of a message's work)."""
    from local import aws

    table = stack.table_name("MessagesTable")
    filler = "x" * 900
    setup = stack.clients.dynamodb
    for n in range(20):
        setup.put_item(
            TableName=table,
            Item={"id": {"S": f"bench#{n}"}, "item_type": {"S": "bench"}, "text": {"S": filler}},
        )
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def work(index: int) -> None:
        client = aws.clients(stack.aws_endpoint, stack.region).dynamodb
        n = 0
        while time.monotonic() < deadline:
            key = {"id": {"S": f"bench#{(index * 5 + n) % 20}"}}
            if n % 2:
                client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET seen = :n",
                    ConditionExpression="attribute_exists(id)",
                    ExpressionAttributeValues={":n": {"N": str(n)}},
                )
            else:
                client.get_item(TableName=table, Key=key)
            n += 1
        counts[index] = n

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    for n in range(20):
        setup.delete_item(TableName=table, Key={"id": {"S": f"bench#{n}"}})
    return sum(counts) / elapsed


def _open_messages(stack: LocalStack) -> int:
    dynamodb = stack.clients.dynamodb
    kwargs: dict[str, Any] = {
        "TableName": stack.table_name("MessagesTable"),
        "IndexName": "OpenByNextCheck",
        "Select": "COUNT",
    }
    total = 0
    while True:
        page = dynamodb.scan(**kwargs)
        total += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def audit(
    stack: LocalStack,
    planned: list[Planned],
    sender: Sender,
    items: dict[tuple[str, str], dict[str, str]],
    max_attempts: int,
    callbacks: bool,
) -> Audit:
    result = Audit(
        messages=len(planned), accepted=len(sender.accepted), refused=len(sender.refused)
    )
    taken: Counter[tuple[str, str]] = Counter()
    refused_5xx: Counter[str] = Counter()
    for row in stack.simulator.submissions():
        result.submissions += 1
        if row["taken"]:
            taken[(row["carrier"], row["reference"])] += 1
        if row["answer"] == "unavailable":
            refused_5xx[row["reference"]] += 1
        if row["answer"] == "outage":
            result.outage_refused += 1
    result.double_sends = [f"{c}/{r} x{n}" for (c, r), n in taken.items() if n > 1]
    submissions = stack.simulator.submissions()
    receipts = stack.simulator.receipts()
    received = _callbacks_by_message(stack) if callbacks else {}
    for message in planned:
        key = (message.client, message.message_id)
        if key not in sender.accepted:
            continue
        item = items.get(key)
        status = item["status"] if item else "(missing)"
        if status not in FINAL:
            result.lost.append(
                f"{message.message_id} {status}{_story(stack, item, submissions, receipts)}"
            )
            continue
        result.finals[status] += 1
        expected = message.expected
        if item and item["carrier"] != message.carrier:  # sent through a failover
            expected = expected_final(message.to, item["carrier"])
        if status != expected:
            refusals = refused_5xx[item["id"]] if item else 0
            explained = status == "failed" and refusals >= max_attempts
            if explained:
                result.explained += 1
            else:
                result.wrong_finals.append(
                    f"{message.message_id} to ..{message.to[-2:]} on {message.carrier}: "
                    f"{status}, simulator decided {expected}"
                    + _story(stack, item, submissions, receipts)
                )
        if callbacks and (message.callback or message.client == "ofsc"):
            result.callbacks_expected += 1
            count = received.get(message.message_id, 0)
            if count == 0:
                result.callbacks_missing.append(message.message_id)
            elif count > 1:
                result.callbacks_duplicated.append(f"{message.message_id} x{count}")
    return result


def _story(
    stack: LocalStack,
    item: dict[str, str] | None,
    submissions: list[dict[str, Any]],
    receipts: list[dict[str, str]],
) -> str:
    """A message's history, its submissions and the receipts posted for it, for the report of
    a failure."""
    if item is None:
        return ""
    answer = stack.clients.dynamodb.get_item(
        TableName=stack.table_name("MessagesTable"), Key={"id": {"S": item["id"]}}
    )
    history = [
        " ".join(
            v.get("S", v.get("N", ""))
            for k, v in sorted(entry.get("M", {}).items())
            if k in ("status", "source", "at")
        )
        for entry in answer.get("Item", {}).get("history", {}).get("L", [])
    ]
    sent = [
        " ".join(filter(None, (row["answer"], row["gateway_id"]))) + f"@{row['at'][11:23]}"
        for row in submissions
        if row["reference"] == item["id"]
    ]
    posted = [
        f"{row['state']}:{row['answer']}@{row['at'][11:23]}"
        for row in receipts
        if row["reference"] == item["id"]
    ]
    fields = {
        k: v.get("S", v.get("N"))
        for k, v in answer.get("Item", {}).items()
        if k in ("next_check_at", "open_shard", "claimed_until", "poll_count", "attempts")
    }
    return (
        f"\n      history: {history}\n      fields: {fields}\n      submissions: {sent}"
        f"\n      receipts: {posted}"
    )


def _callbacks_by_message(stack: LocalStack) -> dict[str, int]:
    """Final-status callbacks received per client message_id (JSON callbacks and OFSC
    set_message_status entries; answered-with-failure attempts are not counted)."""
    counts: Counter[str] = Counter()
    for call in stack.simulator.callbacks():
        if int(call.get("answered", 200) or 200) >= 300:
            continue
        if call.get("kind") == "json":
            document = call.get("json") or {}
            if isinstance(document, dict) and document.get("status") in FINAL:
                counts[str(document.get("message_id"))] += 1
        else:
            for entry in call.get("messages") or []:
                if entry.get("status") in OFSC_FINAL_WORDS:
                    counts[str(entry.get("message_id"))] += 1
    return dict(counts)


#: The words of a final status in OFSC's set_message_status.
OFSC_FINAL_WORDS = frozenset({"delivered", "failed", "sent"})


# --------------------------------------------------------------------------------------------
# The run


def run(
    count: int,
    *,
    seed: int = 11,
    rates: FaultRates | None = None,
    workers: int = 4,
    rate: float = DEFAULT_RATE,
    max_open: int = DEFAULT_MAX_OPEN,
    settle_seconds: float | None = None,
    env: dict[str, str] | None = None,
    progress: bool = False,
    log_file: str | None = None,
    measure_backend: bool = False,
    outage_carrier: str = OUTAGE_CARRIER,
    outage_seconds: float = OUTAGE_SECONDS,
    outage_after: float = OUTAGE_AFTER_SECONDS,
) -> Audit:
    """The whole soak; the audit (with the captured log lines checked) is returned."""
    rates = rates or FaultRates()
    settings = {k: os.environ.get(k) or v for k, v in FAST_SETTINGS.items()}
    # Each receipt's effect (message, status before and after) for the story of a failure.
    settings.setdefault("LOCAL_DEBUG_LOGGERS", "smsbridge.receipts")
    settings.update(env or {})
    faults = Faults(rates, seed=seed, enabled=False)
    capture = LogCapture()
    started = time.monotonic()
    with capture:
        stack = LocalStack(
            port=0, sim_port=0, env=settings, secrets_path=SECRETS_EXAMPLE_FILE, faults=faults
        )
        stack.start()
        try:
            callbacks = "NotifyFunction" in stack.resources.functions
            planned_requests = plan(count, seed, callbacks=callbacks, rates=rates)
            planned = [m for r in planned_requests for m in r.messages]
            faults.counts["callback_failing"] = sum(1 for m in planned if m.callback_failures)
            sender = Sender(
                stack.api_url,
                stack.sim_url,
                rate=rate,
                open_messages=partial(_open_messages, stack),
                max_open=max_open,
            )
            backend = backend_calls_per_second(stack) if measure_backend else 0.0
            faults.set_enabled(True)
            sending = time.monotonic()
            outage = threading.Timer(
                outage_after, stack.simulator.outage, (outage_carrier, outage_seconds)
            )
            if outage_seconds > 0:
                outage.start()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(sender.send, planned_requests))
            intake_seconds = time.monotonic() - started
            if progress:
                print(f"  sent {len(planned)} in {intake_seconds:.0f} s", file=sys.stderr)
            settle = settle_seconds if settle_seconds is not None else SETTLE_SECONDS
            items = wait_settled(stack, sender.accepted, settle, progress)
            outage.cancel()
            flow_seconds = time.monotonic() - sending
            faults.set_enabled(False)
            faults.add(stack.moto_fault_counts())
            if callbacks:
                _wait_callbacks(stack, planned, sender, items)
            wall = time.monotonic() - started
            max_attempts = int(stack.setting("SUBMIT_MAX_ATTEMPTS") or 5)
            result = audit(stack, planned, sender, items, max_attempts, callbacks)
            result.wall_seconds = wall
            result.intake_seconds = intake_seconds
            result.held_seconds = sender.held_seconds / max(1, workers)
            result.flow_seconds = flow_seconds
            result.backend_calls_per_second = backend
            result.faults = Counter(faults.counts)
            if outage_seconds > 0:
                result.outage = f"{outage_carrier} down {outage_seconds:.0f} s"
            secrets = secret_values(stack.secrets)
        finally:
            stack.stop()
    numbers = {m.to for m in planned}
    result.log_lines = len(capture.lines)
    if log_file:
        Path(log_file).write_text("".join(line + "\n" for line in capture.lines), "utf-8")
    result.hygiene = hygiene_findings(capture.lines, secrets, numbers)
    return result


def _wait_callbacks(
    stack: LocalStack,
    planned: list[Planned],
    sender: Sender,
    items: dict[tuple[str, str], dict[str, str]],
    seconds: float = 30,
) -> None:
    """Callbacks follow the final status by a few seconds (retries with back-off)."""
    wanted = {
        m.message_id
        for m in planned
        if (m.client, m.message_id) in sender.accepted and (m.callback or m.client == "ofsc")
    }
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if wanted <= set(_callbacks_by_message(stack)):
            return
        time.sleep(1.0)


def format_report(result: Audit, rates: FaultRates) -> list[str]:
    from bench.tables import render

    rows = [
        ["messages", str(result.messages)],
        ["accepted", str(result.accepted)],
        ["refused at intake", str(result.refused)],
        *[[f"final: {status}", str(n)] for status, n in sorted(result.finals.items())],
        ["LOST (accepted, not final)", str(len(result.lost))],
        ["DOUBLE SENDS", str(len(result.double_sends))],
        ["WRONG FINALS", str(len(result.wrong_finals))],
        ["finals explained by faults", str(result.explained)],
        ["callbacks expected", str(result.callbacks_expected)],
        ["callbacks missing", str(len(result.callbacks_missing))],
        ["callbacks duplicated", str(len(result.callbacks_duplicated))],
        ["carrier submissions seen", str(result.submissions)],
        ["outage", result.outage or "none"],
        ["  submissions refused by it", str(result.outage_refused)],
        ["log lines checked", str(result.log_lines)],
        ["log-hygiene findings", str(len(result.hygiene))],
        ["intake time", f"{result.intake_seconds:.1f} s"],
        ["  of which held by the open bound", f"{result.held_seconds:.1f} s"],
        ["wall time", f"{result.wall_seconds:.1f} s"],
        ["messages per second", f"{result.accepted / max(result.wall_seconds, 1e-9):.1f}"],
    ]
    lines = ["faults injected", ""]
    lines += render(
        ["fault", "rate", "injected", "where"],
        [
            [name, f"{rate:.0%}", str(result.faults.get(_COUNTER[name], 0)), where]
            for name, rate, where in rates.rows()
        ],
        "lrrl",
    )
    lines += ["", "soak audit", ""]
    lines += render(["", "count"], rows, "lr")
    for title, entries in (
        ("lost", result.lost),
        ("double sends", result.double_sends),
        ("wrong finals", result.wrong_finals),
        ("callbacks missing", result.callbacks_missing),
        ("callbacks duplicated", result.callbacks_duplicated),
        ("log hygiene", result.hygiene),
    ):
        if entries:
            lines += ["", f"{title} (first 10):", *[f"  {e}" for e in entries[:10]]]
    lines += ["", "PASS" if result.ok else "FAIL"]
    return lines


_COUNTER = {
    "carrier 5xx": "carrier_5xx",
    "carrier time-out after taking": "carrier_timeout",
    "DynamoDB throttling": "dynamodb_throttle",
    "SQS record delivered twice": "sqs_duplicate",
    "duplicate receipt": "receipt_duplicate",
    "reordered receipts": "receipt_reorder",
    "receipts before the submit answer": "receipt_before_answer",
    "crash between intake write and enqueue": "crash_before_enqueue",
    "crash after the carrier call, before the dispatch write": "crash_before_dispatch_write",
    "callback endpoint failing for a while": "callback_failing",
}


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__)
    parser.add_argument("-n", "--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=4, help="concurrent intake clients")
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="messages per second offered to the intake (0: as fast as it answers)",
    )
    parser.add_argument(
        "--max-open",
        type=int,
        default=DEFAULT_MAX_OPEN,
        help="hold the intake while more messages than this are open (0: never)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=None,
        help=f"give up after this long without progress (default {SETTLE_SECONDS:.0f})",
    )
    parser.add_argument("--log-file", help="write every captured log line to this file")
    parser.add_argument(
        "--outage-carrier", default=OUTAGE_CARRIER, help="the carrier that goes down for a while"
    )
    parser.add_argument(
        "--outage-seconds",
        type=float,
        default=OUTAGE_SECONDS,
        help=f"how long it is down (default {OUTAGE_SECONDS:.0f}; 0: no outage)",
    )
    parser.add_argument(
        "--outage-after",
        type=float,
        default=OUTAGE_AFTER_SECONDS,
        help=f"seconds into the run it goes down (default {OUTAGE_AFTER_SECONDS:.0f})",
    )
    args = parser.parse_args(argv)
    rates = FaultRates()
    with _quiet_logs():
        result = run(
            args.messages,
            seed=args.seed,
            rates=rates,
            workers=args.workers,
            rate=args.rate,
            max_open=args.max_open,
            settle_seconds=args.settle_seconds,
            progress=True,
            log_file=args.log_file,
            outage_carrier=args.outage_carrier,
            outage_seconds=args.outage_seconds,
            outage_after=args.outage_after,
        )
    print("\n".join(format_report(result, rates)), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
