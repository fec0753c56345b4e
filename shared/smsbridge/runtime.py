"""The composition root the handlers share: settings, AWS clients, configuration and services.

Handlers build one `Runtime` at import (the DynamoDB client only); the configuration document and
secrets are read on first use and cached for `CONFIG_MAX_AGE_SECONDS`.

Every client comes from boto3's one default session, so botocore's loader reads its endpoint,
partition and retry data once per process, not once per client: a client of its own session
costs about a third of the cold-start floor, one more client of the shared session a tenth or
less. Clients other than DynamoDB are made when a call first needs them (a receipt, a lookup or
a dispatch that queues nothing never makes the SQS client).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from smsbridge.config import AppConfig, ConfigError, Settings, load_config
from smsbridge.models import utcnow
from smsbridge.queueing import DispatchQueue
from smsbridge.repository import MessageRepository
from smsbridge.telemetry import EmfMetrics, MetricSink
from smsbridge.tracking import StatusTracker

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_ssm.client import SSMClient


#: Why a request is refused when the configuration's stores cannot be read just now.
UNREADABLE = "the configuration could not be read"

Event = TypeVar("Event")
Result = TypeVar("Result")


def aws_client(service: str) -> Any:
    """A boto3 client with tight time-outs and standard retries (one per container), from boto3's
    default session (shared by every client of the process: one botocore loader).

    Its connection pool fits the most threads one invocation runs on it (intake's 16 concurrent
    writes, the poller's and notify's pools): a smaller pool opens and drops a connection per call.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=32,
    )
    return boto3.client(service, config=config)  # type: ignore[call-overload]


class _OnFirstCall:
    """Stands for a client that is made when one of its methods is first looked up."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)


@dataclass
class Runtime:
    settings: Settings
    dynamodb: DynamoDBClient
    #: The SQS client, made on first use (see `sqs`).
    sqs_client: SQSClient | None = None
    metrics: MetricSink = field(default_factory=EmfMetrics)
    clock: Callable[[], datetime] = utcnow
    #: Reads the configuration; None: `load_config` with this runtime's SSM and Secrets Manager
    #: clients.
    config_loader: Callable[[Settings], AppConfig] | None = None
    _config: AppConfig | None = None
    _loaded_at: float = 0.0
    _ssm: SSMClient | None = None
    _secretsmanager: SecretsManagerClient | None = None
    #: Clients made on first use may be asked for by several threads at once (intake's enqueue
    #: pool), and a boto3 session must not make clients in two threads at the same time.
    _clients_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls) -> Runtime:
        return cls(settings=Settings.from_env(), dynamodb=aws_client("dynamodb"))

    @property
    def sqs(self) -> SQSClient:
        """Made when first needed, not on a cold start: receipts and most poller runs queue
        nothing, and a second client costs a tenth of the floor."""
        with self._clients_lock:
            if self.sqs_client is None:
                self.sqs_client = aws_client("sqs")
            return self.sqs_client

    @property
    def sqs_when_called(self) -> SQSClient:
        """The SQS client for a queue that may send nothing: made at its first call."""
        if self.sqs_client is not None:
            return self.sqs_client
        return cast("SQSClient", _OnFirstCall(lambda: self.sqs))

    @property
    def ssm(self) -> SSMClient:
        """The SSM client (the configuration document), made on first use."""
        with self._clients_lock:
            if self._ssm is None:
                self._ssm = aws_client("ssm")
            return self._ssm

    @property
    def secretsmanager(self) -> SecretsManagerClient:
        """The Secrets Manager client (the secrets), made on first use."""
        with self._clients_lock:
            if self._secretsmanager is None:
                self._secretsmanager = aws_client("secretsmanager")
            return self._secretsmanager

    def _load_config(self, settings: Settings) -> AppConfig:
        return load_config(settings, self.ssm, self.secretsmanager)

    def publishes_metrics(
        self, handler: Callable[[Event, Any], Result]
    ) -> Callable[[Event, Any], Result]:
        """Decorates a Lambda handler: the invocation's metrics are written when it returns or
        raises, one EMF document per dimension set."""

        @functools.wraps(handler)
        def publishing(event: Event, context: Any) -> Result:
            try:
                return handler(event, context)
            finally:
                self.metrics.flush()

        return publishing

    def config(self) -> AppConfig:
        age = time.monotonic() - self._loaded_at
        if self._config is None or age > self.settings.config_max_age_seconds:
            loader = self.config_loader or self._load_config
            self._config = loader(self.settings)
            self._loaded_at = time.monotonic()
        return self._config

    def configuration_problem(self) -> str | None:
        """Why no request can be served (no configuration put yet, or a bad one), naming what
        to fix; None when the configuration loads. Handlers answer 503 with it, never 500."""
        try:
            self.config()
        except ConfigError as exc:
            return str(exc)
        except Exception:  # the stores could not be read (throttled, unreachable): retry later
            return f"temporarily unavailable: {UNREADABLE}"
        return None

    def repository(self) -> MessageRepository:
        return MessageRepository(
            self.dynamodb,
            self.settings.messages_table,
            search_secret=lambda: self.config().search_index_secret,
        )

    def queue(self) -> DispatchQueue:
        return DispatchQueue(self.sqs_when_called, self.settings.dispatch_queue_url)

    def tracker(self) -> StatusTracker:
        return StatusTracker(
            self.repository(),
            self.settings,
            self.config(),
            self.queue(),
            self.metrics,
            self.clock,
        )
