"""moto server on loopback, and boto3 clients for it (dummy credentials, no AWS account)."""

from __future__ import annotations

import functools
import logging
import socket
import threading
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from local.chaos import EXEMPT_USER_AGENT, THROTTLE_BODY, Faults

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

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


class _OneDynamoDbWriteAtATime:
    """DynamoDB applies each request to an item atomically; moto's threaded server does not, so
    two concurrent conditional updates could both pass their condition and one be lost. DynamoDB
    requests are served one at a time (other services, such as SQS long polls, stay parallel)."""

    def __init__(self, app: Any, faults: Faults | None = None) -> None:
        self._app = app
        self._lock = _FairLock()
        self._faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self._app(environ, start_response)
        if self._faults is not None and self._faults.throttles(environ):
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
            return [THROTTLE_BODY]
        with self._lock:
            return list(self._app(environ, start_response))


def _remember_backends(dispatcher: Any) -> None:
    """moto's dispatcher finds the backend of every request by listing its package directory,
    under one lock for all threads (a fifth of the local stack's CPU under load): remember the
    answer per host, which never changes while the server runs."""
    dispatcher.get_backend_for_host = functools.lru_cache(maxsize=256)(
        dispatcher.get_backend_for_host
    )


def _index_reads_read_the_index() -> None:
    """moto answers a query or a scan of an index by going through every item of the table (a
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
    """moto works out a queue's approximate message counts (a pass over every message) for
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


class MotoServer:
    """moto's threaded server (DynamoDB, Streams, SQS, SSM, Secrets Manager ...) in this process."""

    def __init__(self, host: str = LOOPBACK, port: int = 0, faults: Faults | None = None) -> None:
        self._host = host
        self._port = port
        self._faults = faults
        self._server: Any = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("the moto server is not running")
        return self._endpoint

    def start(self) -> str:
        """Start on the port (0: a free one) with empty backends; return the endpoint URL."""
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request line at INFO; the local log keeps to our own lines.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        wsgi = self._server._server  # werkzeug's server: its app is swapped before any request
        _remember_backends(wsgi.app)
        _index_reads_read_the_index()
        _sqs_sends_and_receives_skip_queue_counts()
        wsgi.app = _OneDynamoDbWriteAtATime(wsgi.app, self._faults)
        host, port = self._server.get_host_and_port()
        self._endpoint = f"http://{host}:{port}"
        self.reset()
        return self._endpoint

    def reset(self) -> None:
        """Forget every resource (moto's backends live in this process and outlive a server)."""
        url = f"{self.endpoint}/moto-api/reset"
        request = urllib.request.Request(url, method="POST")  # noqa: S310 - our loopback server
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._endpoint = None


def session(region: str) -> boto3.Session:
    """A boto3 session with dummy credentials (never the developer's real ones)."""
    return boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
        region_name=region,
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
