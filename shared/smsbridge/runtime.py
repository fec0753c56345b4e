"""The composition root the handlers share: settings, AWS clients, configuration and services.

Handlers build one `Runtime` at import (clients only); the configuration document and secrets are
read on first use and cached for `CONFIG_MAX_AGE_SECONDS`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from smsbridge.config import AppConfig, ConfigError, Settings, load_config
from smsbridge.models import utcnow
from smsbridge.queueing import DispatchQueue
from smsbridge.repository import MessageRepository
from smsbridge.telemetry import EmfMetrics, MetricSink
from smsbridge.tracking import StatusTracker

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient


Event = TypeVar("Event")
Result = TypeVar("Result")


def aws_client(service: str) -> Any:
    """A boto3 client with tight time-outs and standard retries (one per container).

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


@dataclass
class Runtime:
    settings: Settings
    dynamodb: DynamoDBClient
    #: The SQS client, made on first use (see `sqs`).
    sqs_client: SQSClient | None = None
    metrics: MetricSink = field(default_factory=EmfMetrics)
    clock: Callable[[], datetime] = utcnow
    config_loader: Callable[[Settings], AppConfig] = load_config
    _config: AppConfig | None = None
    _loaded_at: float = 0.0

    @classmethod
    def from_env(cls) -> Runtime:
        return cls(settings=Settings.from_env(), dynamodb=aws_client("dynamodb"))

    @property
    def sqs(self) -> SQSClient:
        """Made when first needed, not on a cold start: receipts and most poller runs queue
        nothing, and a second client costs a tenth of the floor."""
        if self.sqs_client is None:
            self.sqs_client = aws_client("sqs")
        return self.sqs_client

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
            self._config = self.config_loader(self.settings)
            self._loaded_at = time.monotonic()
        return self._config

    def configuration_problem(self) -> str | None:
        """Why no request can be served (no configuration put yet, or a bad one), naming what
        to fix; None when the configuration loads. Handlers answer 503 with it, never 500."""
        try:
            self.config()
        except ConfigError as exc:
            return str(exc)
        return None

    def repository(self) -> MessageRepository:
        return MessageRepository(
            self.dynamodb,
            self.settings.messages_table,
            search_secret=lambda: self.config().search_index_secret,
        )

    def queue(self) -> DispatchQueue:
        return DispatchQueue(self.sqs, self.settings.dispatch_queue_url)

    def tracker(self) -> StatusTracker:
        return StatusTracker(
            self.repository(),
            self.settings,
            self.config(),
            self.queue(),
            self.metrics,
            self.clock,
        )
