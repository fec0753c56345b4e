"""moto's server in a process of its own on loopback, and boto3 clients for it (dummy
credentials, no AWS account).

`python -m local.aws HOST PORT [FAULTS]` is that process: moto's own WSGI application
(`DomainDispatcherApplication`, what `moto_server` serves) on werkzeug's threaded
server, behind one small front (`_Front`), with a subclass of moto's dispatcher and two hooks on
moto's models, each kept for a need measured on the local stack and tested in
tests/unit/test_local_aws.py. They are written for the moto version in `MOTO_VERSION`; the
same test asserts that version.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config

from local.cloudformation import REPO_ROOT
from tools.chaos import EXEMPT_USER_AGENT, THROTTLE_BODY, FaultRates, Faults

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

#: The moto release the hooks below were written for and measured on.
MOTO_VERSION = "5.2.5"
LOOPBACK = "127.0.0.1"
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"
#: Requests to moto are local: fail fast rather than retry for a minute. The stack's own clients
#: say who they are, so that injected faults (`make soak`) spare them.
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 2, "mode": "standard"},
    connect_timeout=5,
    max_pool_connections=32,
    user_agent_extra=EXEMPT_USER_AGENT,
)
#: Never passed to the moto process or the handlers: a profile of the shell, real credentials.
MASKED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
#: The front's own path: GET answers the fault counts, POST {"enabled": bool} turns faults on/off.
FAULTS_PATH = "/_local/faults"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free right now (for components that must know their URL before binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _FairLock:
    """A lock served first come, first served: under load a thread with many requests in a row
    (the poller) would otherwise wait behind newcomers again and again."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def __enter__(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()  # handed over: still held
            else:
                self._held = False


class _Front:
    """In front of moto's application: DynamoDB requests one at a time, and injected throttling.

    DynamoDB applies each request to an item atomically; moto's threaded server does not, so two
    concurrent conditional updates could both pass their condition and one be lost. Other
    services (SQS long polls) stay parallel. With `faults`, DynamoDB data-plane requests are
    answered as throttled at its rate.
    """

    def __init__(self, app: Any, faults: Faults | None = None) -> None:
        self._app = app
        self._lock = _FairLock()
        self._faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == FAULTS_PATH:
            return self._fault_control(environ, start_response)
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self._app(environ, start_response)
        if self._faults is not None and self._faults.throttles(environ):
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
            return [THROTTLE_BODY]
        with self._lock:
            return list(self._app(environ, start_response))

    def _fault_control(self, environ: dict[str, Any], start_response: Any) -> Any:
        faults = self._faults
        if faults is not None and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            faults.enabled = bool(json.loads(environ["wsgi.input"].read(length))["enabled"])
        counts = dict(faults.counts) if faults is not None else {}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(counts).encode()]


def _index_reads_read_the_index() -> None:
    """Hook: moto answers a query or a scan of an index by going through every item of the table (a
    query also sorts them all): the poller's 16 queries of the sparse open-message index, and
    the soak's count of open messages, then cost more with every message ever stored. Keep, for
    each index of a table without a sort key, the items it holds, refreshed after every write to
    an item, and let index queries and scans read only those, as DynamoDB reads only the index.
    Tables with a sort key, and indexes added after the table was made, keep moto's own path."""
    import inspect

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original_init = Table.__init__
    if getattr(original_init, "keeps_index_members", False):
        return
    original_query, original_all_items = Table.query, Table.all_items
    original_has_idx_items = Table.has_idx_items
    original_put, original_delete = Table.put_item, Table.delete_item
    original_update = DynamoDBBackend.update_item
    query_signature = inspect.signature(original_query)
    reading = threading.local()

    def members(table: Any, index_name: Any) -> dict[Any, Any] | None:
        kept: dict[str, dict[Any, Any]] | None = table.__dict__.get("_index_members")
        return None if kept is None else kept.get(index_name)

    def refresh(table: Any, hash_value: Any) -> None:
        kept = table.__dict__.get("_index_members")
        if kept is None:
            return
        item = table.items.get(hash_value)
        for name, keys in table._index_keys.items():
            if item is not None and all(map(item.attrs.get, keys)):
                kept[name][hash_value] = item
            else:
                kept[name].pop(hash_value, None)

    @functools.wraps(original_init)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if type(self) is Table and not self.range_key_attr:  # a restored table copies items
            indexes = self.all_indexes()
            vars(self).update(
                _index_keys={i.name: [k["AttributeName"] for k in i.schema] for i in indexes},
                _index_members={i.name: {} for i in indexes},
            )

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original_put(self, *args, **kwargs)
        refresh(self, item.hash_key)
        return item

    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        try:
            return original_delete(self, hash_key, range_key)
        finally:
            refresh(self, hash_key)

    def update_item(self: Any, table_name: str, key: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        finally:
            table = self.get_table(table_name)
            if "_index_members" in table.__dict__ and table.hash_key_attr in key:
                refresh(table, DynamoType(key[table.hash_key_attr]))

    def all_items(self: Any) -> Any:
        held = getattr(reading, "held", None)
        if held is not None and held[0] is self:
            return held[1]
        return original_all_items(self)

    @functools.wraps(original_query)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = query_signature.bind(self, *args, **kwargs).arguments.get("index_name")
        held = members(self, index_name)
        if held is None:
            return original_query(self, *args, **kwargs)
        reading.held = (self, sorted(held.values(), key=lambda item: item.hash_key))
        try:
            return original_query(self, *args, **kwargs)
        finally:
            reading.held = None

    def has_idx_items(self: Any, index_name: str) -> Any:
        held = members(self, index_name)
        return original_has_idx_items(self, index_name) if held is None else list(held.values())

    init.keeps_index_members = True  # type: ignore[attr-defined]
    Table.__init__ = init  # type: ignore[method-assign]
    Table.put_item = put_item  # type: ignore[method-assign]
    Table.delete_item = delete_item  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]
    Table.has_idx_items = has_idx_items  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]


def _sqs_sends_and_receives_skip_queue_counts() -> None:
    """Hook: moto works out a queue's approximate message counts (a pass over every message) for
    each message it sends and each message a receive looks at, where it only wants one other
    attribute: with a backlog of thousands, every call costs as much as the backlog. Sends and
    receives skip the counts (they never answer them); GetQueueAttributes still counts."""
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.send_message, "skips_queue_counts", False):
        return
    skipping = threading.local()

    def counted(name: str) -> property:
        count = getattr(Queue, name).fget

        def get(self: Any) -> int:
            return 0 if getattr(skipping, "depth", 0) else int(count(self))

        return property(get)

    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        setattr(Queue, name, counted(name))

    def skip_counts(call: Any) -> Any:
        @functools.wraps(call)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            skipping.depth = getattr(skipping, "depth", 0) + 1
            try:
                return call(*args, **kwargs)
            finally:
                skipping.depth -= 1

        wrapper.skips_queue_counts = True  # type: ignore[attr-defined]
        return wrapper

    SQSBackend.send_message = skip_counts(SQSBackend.send_message)  # type: ignore[method-assign]
    SQSBackend.receive_message = skip_counts(SQSBackend.receive_message)  # type: ignore[method-assign]


def _dispatcher() -> Any:
    """moto's application, remembering which backend serves which host.

    Hook (a subclass): for every request moto's dispatcher lists its package directory to find
    the backend of the request's host (`backends.list_of_moto_modules()`), under one lock for all
    threads, though the answer never changes while the server runs: about a fifth of the local
    stack's CPU under load when measured with moto 5.2.5. The answer is remembered per host.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        @functools.lru_cache(maxsize=256)  # noqa: B019 - one instance, for the process's life
        def get_backend_for_host(self, host: str | None) -> Any:
            return super().get_backend_for_host(host)

    return Dispatcher(create_backend_app)


def _end_with_parent() -> None:
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


def serve(host: str, port: int, faults_json: str = "") -> None:
    """The moto process: moto's application behind the front, until the parent ends it."""
    from werkzeug.serving import make_server

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean exit (coverage is saved)
    # The parent holds our stdin open: when it ends, however it ends, so does this process.
    threading.Thread(target=_end_with_parent, name="parent-watch", daemon=True).start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _index_reads_read_the_index()
    _sqs_sends_and_receives_skip_queue_counts()
    faults = None
    if faults_json:
        setup = json.loads(faults_json)
        faults = Faults(FaultRates(**setup["rates"]), seed=setup["seed"], enabled=False)
    app = _Front(_dispatcher(), faults)
    make_server(host, port, app, threaded=True).serve_forever(poll_interval=0.2)


class MotoServer:
    """moto's server in a child process (DynamoDB, Streams, SQS, SSM, Secrets Manager ...)."""

    def __init__(self, host: str = LOOPBACK, port: int = 0, faults: Faults | None = None) -> None:
        self._host = host
        self._port = port
        self._faults = faults
        self._process: subprocess.Popen[bytes] | None = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("the moto server is not running")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 60.0) -> str:
        """Start on the port (0: a free one) with empty backends; return the endpoint URL."""
        port = self._port or free_port(self._host)
        faults = self._faults
        setup = (
            ""
            if faults is None
            else json.dumps({"rates": faults.rates.as_dict(), "seed": faults.seed})
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.aws", self._host, str(port), setup],
            cwd=REPO_ROOT,
            env={k: v for k, v in os.environ.items() if k not in MASKED},
            stdin=subprocess.PIPE,  # never written: closed when this process ends
        )
        self._endpoint = f"http://{self._host}:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", FAULTS_PATH)
                break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise OSError(f"the moto server did not start on port {port}") from None
                time.sleep(0.05)
        if faults is not None:
            faults.on_enabled.append(self._set_faults)
        return self._endpoint

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.endpoint}{path}"
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read() or b"null")

    def _set_faults(self, enabled: bool) -> None:
        self._call("POST", FAULTS_PATH, {"enabled": enabled})

    def fault_counts(self) -> dict[str, int]:
        """What the moto process injected (throttling), by fault name."""
        counts: dict[str, int] = self._call("GET", FAULTS_PATH)
        return counts

    def reset(self) -> None:
        """Forget every resource."""
        self._call("POST", "/moto-api/reset")

    def stop(self) -> None:
        if self._faults is not None and self._set_faults in self._faults.on_enabled:
            self._faults.on_enabled.remove(self._set_faults)
        if self._process is not None:
            if self._process.stdin is not None:
                self._process.stdin.close()
            self._process.terminate()
            try:
                self._process.wait(2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._endpoint = None


def session(region: str) -> boto3.Session:
    """A boto3 session with dummy credentials (never the developer's real ones: a profile
    named in the environment is not read either)."""
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
        region_name=region,
        botocore_session=core,
    )


@dataclass(frozen=True, slots=True)
class AwsClients:
    """boto3 clients for one endpoint; `local.cloudformation.deploy` accepts this object."""

    endpoint: str
    region: str
    dynamodb: DynamoDBClient
    sqs: SQSClient
    ssm: SSMClient
    secretsmanager: SecretsManagerClient
    #: boto3-stubs for DynamoDB Streams and CloudFormation are not installed: untyped.
    dynamodbstreams: Any
    cloudformation: Any

    def client(self, service: str) -> Any:
        """The client for `service`, as a boto3 Session's `client()` gives it."""
        return getattr(self, service)


def clients(endpoint: str, region: str) -> AwsClients:
    s = session(region)
    kw: dict[str, Any] = {"endpoint_url": endpoint, "config": _CLIENT_CONFIG}
    return AwsClients(
        endpoint=endpoint,
        region=region,
        dynamodb=s.client("dynamodb", **kw),
        sqs=s.client("sqs", **kw),
        ssm=s.client("ssm", **kw),
        secretsmanager=s.client("secretsmanager", **kw),
        dynamodbstreams=s.client("dynamodbstreams", **kw),
        cloudformation=s.client("cloudformation", **kw),
    )


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
