"""Settings from the environment, and the clients/carriers/routes document with its secrets.

The document (SPEC 6) lives in SSM Parameter Store (`CONFIG_PARAMETER`); secrets in one Secrets
Manager secret (`SECRETS_ID`, a JSON object). Both are read with the runtime's own clients (one
GetParameter, one GetSecretValue) and cached by the runtime for `CONFIG_MAX_AGE_SECONDS`.
(Powertools Parameters did the same with a boto3 session of its own per store, which cost a cold
start a third of its floor.) The local stack seeds both from files under `local/`.
A bad value raises `ConfigError` naming the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_ssm.client import SSMClient

FORMATS = ("ip2sms", "vibes", "smartswitch", "conceptomovil")
MESSAGE_TYPES = ("verification", "medication_request", "text", "2FA")
CLIENT_KINDS = ("json", "ofsc", "support")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


class NotConfigured(ConfigError):
    """No configuration put yet: the stack's starting content (no carriers, no credentials) or
    no parameter or secret at all. Every request is answered 503 with this message."""

    def __init__(self, what: str, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(f"smsbridge is not configured yet: {what} (missing: {', '.join(missing)})")


#: What `make config-push` and `make secrets-push` put, named in the 503 answers.
PUT_CONFIG = "put one with `make config-push FILE=...`"
PUT_SECRETS = "put them with `make secrets-push FILE=...`"


def _env_int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    return value


def _env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, got {raw!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Non-secret settings from environment variables (template.yaml sets them)."""

    messages_table: str = "smsbridge-messages"
    dispatch_queue_url: str = ""
    config_parameter: str = "/smsbridge/config"
    secrets_id: str = "smsbridge/secrets"
    config_max_age_seconds: int = 300
    #: Base URL of this API as carriers reach it (for receipt callback URLs).
    public_base_url: str = ""
    status_timeout_seconds: int = 72 * 3600
    submit_max_attempts: int = 5
    submit_backoff_seconds: int = 10
    submit_lease_seconds: int = 60
    poll_first_seconds: int = 60
    poll_max_interval_seconds: int = 900
    requeue_after_seconds: int = 120
    poller_batch_limit: int = 500
    poller_time_budget_seconds: int = 40
    poller_concurrency: int = 8
    store_otp_body: bool = False
    message_ttl_days: int = 90
    orphan_ttl_days: int = 7
    #: Carrier ids of one carrier that may wait with orphan receipts at a time.
    orphan_limit: int = 10_000
    max_body_bytes: int = 256 * 1024
    #: notify: its queue and dead-letter queue, tries and back-off of one callback.
    notify_queue_url: str = ""
    notify_dead_letter_queue_url: str = ""
    notify_max_attempts: int = 8
    notify_backoff_seconds: int = 30
    #: Read time-out of one callback (the connect time-out is at most this, and 3 s).
    notify_timeout_seconds: int = 5
    #: Callbacks sent at the same time by one invocation.
    notify_concurrency: int = 8
    #: How long an `all` status waits for the one before it before it goes out anyway.
    notify_order_wait_seconds: int = 60
    #: Circuit breaker per carrier (SPEC 4.3): consecutive "carrier unwell" failures that open
    #: it, the window they must fall in, and how long it stays open before one probe.
    circuit_failures: int = 5
    circuit_window_seconds: int = 60
    circuit_open_seconds: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            messages_table=env.get("MESSAGES_TABLE") or d.messages_table,
            dispatch_queue_url=env.get("DISPATCH_QUEUE_URL") or d.dispatch_queue_url,
            config_parameter=env.get("CONFIG_PARAMETER") or d.config_parameter,
            secrets_id=env.get("SECRETS_ID") or d.secrets_id,
            config_max_age_seconds=_env_int(
                env, "CONFIG_MAX_AGE_SECONDS", d.config_max_age_seconds
            ),
            public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/"),
            status_timeout_seconds=_env_int(
                env, "STATUS_TIMEOUT_SECONDS", d.status_timeout_seconds, 1
            ),
            submit_max_attempts=_env_int(env, "SUBMIT_MAX_ATTEMPTS", d.submit_max_attempts, 1),
            submit_backoff_seconds=_env_int(
                env, "SUBMIT_BACKOFF_SECONDS", d.submit_backoff_seconds
            ),
            submit_lease_seconds=_env_int(env, "SUBMIT_LEASE_SECONDS", d.submit_lease_seconds, 1),
            poll_first_seconds=_env_int(env, "POLL_FIRST_SECONDS", d.poll_first_seconds),
            poll_max_interval_seconds=_env_int(
                env, "POLL_MAX_INTERVAL_SECONDS", d.poll_max_interval_seconds, 1
            ),
            requeue_after_seconds=_env_int(
                env, "REQUEUE_AFTER_SECONDS", d.requeue_after_seconds, 1
            ),
            poller_batch_limit=_env_int(env, "POLLER_BATCH_LIMIT", d.poller_batch_limit, 1),
            poller_time_budget_seconds=_env_int(
                env, "POLLER_TIME_BUDGET_SECONDS", d.poller_time_budget_seconds, 1
            ),
            poller_concurrency=_env_int(env, "POLLER_CONCURRENCY", d.poller_concurrency, 1),
            store_otp_body=_env_bool(env, "STORE_OTP_BODY", d.store_otp_body),
            message_ttl_days=_env_int(env, "MESSAGE_TTL_DAYS", d.message_ttl_days, 1),
            orphan_ttl_days=_env_int(env, "ORPHAN_TTL_DAYS", d.orphan_ttl_days, 1),
            orphan_limit=_env_int(env, "ORPHAN_LIMIT", d.orphan_limit, 1),
            max_body_bytes=_env_int(env, "MAX_BODY_BYTES", d.max_body_bytes, 1),
            notify_queue_url=env.get("NOTIFY_QUEUE_URL") or d.notify_queue_url,
            notify_dead_letter_queue_url=(
                env.get("NOTIFY_DEAD_LETTER_QUEUE_URL") or d.notify_dead_letter_queue_url
            ),
            notify_max_attempts=_env_int(env, "NOTIFY_MAX_ATTEMPTS", d.notify_max_attempts, 1),
            notify_backoff_seconds=_env_int(
                env, "NOTIFY_BACKOFF_SECONDS", d.notify_backoff_seconds
            ),
            notify_timeout_seconds=_env_int(
                env, "NOTIFY_TIMEOUT_SECONDS", d.notify_timeout_seconds, 1
            ),
            notify_concurrency=_env_int(env, "NOTIFY_CONCURRENCY", d.notify_concurrency, 1),
            notify_order_wait_seconds=_env_int(
                env, "NOTIFY_ORDER_WAIT_SECONDS", d.notify_order_wait_seconds
            ),
            circuit_failures=_env_int(env, "CIRCUIT_FAILURES", d.circuit_failures, 1),
            circuit_window_seconds=_env_int(
                env, "CIRCUIT_WINDOW_SECONDS", d.circuit_window_seconds, 1
            ),
            circuit_open_seconds=_env_int(env, "CIRCUIT_OPEN_SECONDS", d.circuit_open_seconds, 1),
        )


@dataclass(frozen=True, slots=True)
class CarrierConfig:
    name: str
    format: str
    submit_url: str = ""
    #: IP2SMS: where `<request id="..">status</request>` goes.
    status_url: str = ""
    #: Default sender (short code, long code or alphanumeric).
    sender: str = ""
    #: Vibes `source type`: SC (short code) or LC (long code).
    sender_type: str = "SC"
    #: True: the carrier posts no receipts; the poller asks it.
    poll: bool = False
    alternate: str | None = None
    #: Where messages go while this carrier's circuit is open (SPEC 4.3); None: they wait.
    failover: str | None = None
    max_per_second: float | None = None
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    # Secrets (from the secrets document, never from the config document):
    username: str = ""
    password: str = ""
    api_key: str = ""
    token: str = ""
    dlr_login: str = ""
    dlr_password: str = ""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    name: str
    #: "json" (the /v1 API), "ofsc" (the SOAP outbound API) or "support" (read-only: searches
    #: and reads every client's messages, masked; SPEC 3.4).
    kind: str = "json"
    #: Senders this client may use; empty: the route's carrier default only.
    senders: tuple[str, ...] = ()
    #: ISO 3166 region used for national numbers without a `country`.
    default_country: str = ""
    #: OFSC: "advanced" answers `sending`, "simple" answers `sent`.
    workflow: str = "advanced"
    #: OFSC `user` block hash: "sha256" (current) or "md5" (legacy).
    auth_hash: str = "sha256"
    #: Where status callbacks go (OFSC: overrides app_host/app_port/app_url).
    callback_url: str = ""
    #: Callback hosts allowed although they are loopback/private (and over http): local use.
    callback_hosts_allowed: tuple[str, ...] = ()
    #: OFSC `company` of the `user` block sent with set_message_status (default: the name).
    company: str = ""
    #: Sending limits (SPEC 3.5), checked at intake. None: no limit.
    verification_per_number_per_hour: int | None = 5
    daily_message_limit: int | None = None
    #: ISO 3166 alpha-2 regions a message may go to; empty: every region.
    allowed_countries: tuple[str, ...] = ()
    #: E.164 prefixes refused for this client (the document's global list applies as well).
    blocked_prefixes: tuple[str, ...] = ()
    # Secrets:
    login: str = ""
    password: str = ""
    token: str = ""
    callback_secret: str = ""


@dataclass(frozen=True, slots=True)
class Routes:
    default: str
    by_type: dict[str, str] = field(default_factory=dict)
    by_prefix: dict[str, str] = field(default_factory=dict)

    def carrier_for(self, phone_number: str, message_type: str) -> str:
        """by_type first, then the longest matching prefix, then the default."""
        if message_type in self.by_type:
            return self.by_type[message_type]
        best = ""
        for prefix in self.by_prefix:
            if phone_number.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.by_prefix[best] if best else self.default


@dataclass(frozen=True, slots=True)
class AppConfig:
    clients: dict[str, ClientConfig]
    carriers: dict[str, CarrierConfig]
    routes: Routes
    #: Status time-out in seconds per message type (SPEC 4.2), falling back to the setting.
    status_timeouts: dict[str, int] = field(default_factory=dict)
    #: The key of the search index's number hashes (secrets document `search_index_secret`);
    #: empty: numbers are not indexed and a search by number answers 503.
    search_index_secret: str = ""
    #: E.164 prefixes refused for every client (premium and high-risk ranges, SPEC 3.5).
    blocked_prefixes: tuple[str, ...] = ()

    def status_timeout(self, message_type: str, default: int) -> int:
        return self.status_timeouts.get(message_type, default)


DEFAULT_STATUS_TIMEOUTS = {"verification": 1800, "2FA": 1800}


def _section(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key} must be an object")
    return value


def _str(doc: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{where}{key} must be a string")
    return value


def _bool(doc: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}{key} must be true or false")
    return value


def _num(doc: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = doc.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}{key} must be a positive number")
    return float(value)


def _check_callback_url(url: str, allowed: tuple[str, ...], key: str) -> None:
    """A configured callback URL obeys the same address policy as any other (its own text only:
    names are resolved again before each call)."""
    from smsbridge import callback_urls  # only for clients that configure one

    try:
        callback_urls.check(url, allowed, resolver=None, what=key)
    except callback_urls.RefusedUrl as exc:
        raise ConfigError(str(exc)) from None


def _limit(doc: Mapping[str, Any], key: str, where: str, default: int | None) -> int | None:
    """A count limit: a positive integer, or null for none."""
    value = doc.get(key, default)
    if value is None:
        return None
    if type(value) is not int or value <= 0:
        raise ConfigError(f"{where}{key} must be a positive integer or null")
    return value


def _countries(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(
        isinstance(item, str) and len(item) == 2 and item.isascii() and item.isalpha()
        for item in value
    ):
        raise ConfigError(f"{where}{key} must be a list of ISO 3166 alpha-2 codes")
    return tuple(item.upper() for item in value)


def _prefixes(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item.startswith("+") and item[1:].isdigit() and len(item) <= 16
        for item in value
    ):
        raise ConfigError(f'{where}{key} must be a list of E.164 prefixes such as "+881"')
    return tuple(value)


def parse_config(document: Mapping[str, Any], secrets: Mapping[str, Any]) -> AppConfig:
    """Build the configuration from the document and the secrets; raise ConfigError on any fault."""
    if not isinstance(document, Mapping):
        raise ConfigError("the configuration document must be a JSON object")
    secret_clients = _section(secrets, "clients", "secrets.")
    secret_carriers = _section(secrets, "carriers", "secrets.")

    carriers: dict[str, CarrierConfig] = {}
    for name, raw in _section(document, "carriers", "").items():
        where = f"carriers.{name}."
        if not isinstance(raw, dict):
            raise ConfigError(f"carriers.{name} must be an object")
        fmt = _str(raw, "format", where)
        if fmt not in FORMATS:
            raise ConfigError(f"{where}format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        secret = secret_carriers.get(name, {})
        if not isinstance(secret, dict):
            raise ConfigError(f"secrets.carriers.{name} must be an object")
        sender_type = _str(raw, "sender_type", where, "SC")
        if sender_type not in ("SC", "LC"):
            raise ConfigError(f"{where}sender_type must be SC or LC")
        carriers[name] = CarrierConfig(
            name=name,
            format=fmt,
            submit_url=_str(raw, "submit_url", where),
            status_url=_str(raw, "status_url", where),
            sender=_str(raw, "sender", where),
            sender_type=sender_type,
            poll=_bool(raw, "poll", where, fmt == "ip2sms"),
            alternate=_str(raw, "alternate", where) or None,
            failover=_str(raw, "failover", where) or None,
            max_per_second=_num(raw, "max_per_second", where, None),
            connect_timeout=_num(raw, "connect_timeout", where, 3.05) or 3.05,
            read_timeout=_num(raw, "read_timeout", where, 10.0) or 10.0,
            username=_str(secret, "username", f"secrets.{where}"),
            password=_str(secret, "password", f"secrets.{where}"),
            api_key=_str(secret, "api_key", f"secrets.{where}"),
            token=_str(secret, "token", f"secrets.{where}"),
            dlr_login=_str(secret, "dlr_login", f"secrets.{where}"),
            dlr_password=_str(secret, "dlr_password", f"secrets.{where}"),
        )
    if not carriers:
        missing = ["carriers", *(["clients"] if not document.get("clients") else [])]
        routes = document.get("routes")
        if not isinstance(routes, dict) or not routes.get("default"):
            missing.append("routes.default")
        raise NotConfigured(f"the configuration names no carriers; {PUT_CONFIG}", missing)
    for carrier in carriers.values():
        if carrier.alternate is not None and carrier.alternate not in carriers:
            raise ConfigError(
                f"carriers.{carrier.name}.alternate names an unknown carrier {carrier.alternate!r}"
            )
        if carrier.failover is not None and (
            carrier.failover not in carriers or carrier.failover == carrier.name
        ):
            raise ConfigError(
                f"carriers.{carrier.name}.failover must name another carrier, "
                f"got {carrier.failover!r}"
            )
        if not carrier.submit_url:
            raise ConfigError(f"carriers.{carrier.name}.submit_url is required")
        if carrier.poll and not carrier.status_url:
            raise ConfigError(f"carriers.{carrier.name}.status_url is required when poll is true")

    clients: dict[str, ClientConfig] = {}
    for name, raw in _section(document, "clients", "").items():
        where = f"clients.{name}."
        if not isinstance(raw, dict):
            raise ConfigError(f"clients.{name} must be an object")
        kind = _str(raw, "kind", where, "json")
        if kind not in CLIENT_KINDS:
            raise ConfigError(f"{where}kind must be one of {', '.join(CLIENT_KINDS)}")
        workflow = _str(raw, "workflow", where, "advanced")
        if workflow not in ("advanced", "simple"):
            raise ConfigError(f"{where}workflow must be advanced or simple")
        auth_hash = _str(raw, "auth_hash", where, "sha256")
        if auth_hash not in ("sha256", "md5"):
            raise ConfigError(f"{where}auth_hash must be sha256 or md5")
        senders = raw.get("senders", [])
        if not isinstance(senders, list) or not all(isinstance(s, str) for s in senders):
            raise ConfigError(f"{where}senders must be a list of strings")
        hosts = raw.get("callback_hosts_allowed", [])
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise ConfigError(f"{where}callback_hosts_allowed must be a list of host names")
        allowed = tuple(host.lower().strip("[]") for host in hosts)
        callback_url = _str(raw, "callback_url", where)
        if callback_url:
            _check_callback_url(callback_url, allowed, f"{where}callback_url")
        secret = secret_clients.get(name, {})
        if not isinstance(secret, dict):
            raise ConfigError(f"secrets.clients.{name} must be an object")
        clients[name] = ClientConfig(
            name=name,
            kind=kind,
            senders=tuple(senders),
            default_country=_str(raw, "default_country", where).upper(),
            workflow=workflow,
            auth_hash=auth_hash,
            callback_url=callback_url,
            callback_hosts_allowed=allowed,
            company=_str(raw, "company", where, name),
            verification_per_number_per_hour=_limit(
                raw, "verification_per_number_per_hour", where, 5
            ),
            daily_message_limit=_limit(raw, "daily_message_limit", where, None),
            allowed_countries=_countries(raw, "allowed_countries", where),
            blocked_prefixes=_prefixes(raw, "blocked_prefixes", where),
            login=_str(secret, "login", f"secrets.{where}", _str(raw, "login", where, name)),
            password=_str(secret, "password", f"secrets.{where}"),
            token=_str(secret, "token", f"secrets.{where}"),
            callback_secret=_str(secret, "callback_secret", f"secrets.{where}"),
        )

    raw_routes = _section(document, "routes", "")
    default = _str(raw_routes, "default", "routes.")
    if default not in carriers:
        raise ConfigError(f"routes.default must name a carrier, got {default!r}")
    by_type = _section(raw_routes, "by_type", "routes.")
    by_prefix = _section(raw_routes, "by_prefix", "routes.")
    for section, mapping in (("by_type", by_type), ("by_prefix", by_prefix)):
        for key, target in mapping.items():
            if not isinstance(target, str) or target not in carriers:
                raise ConfigError(f"routes.{section}.{key} names an unknown carrier {target!r}")
    for key in by_type:
        if key not in MESSAGE_TYPES:
            raise ConfigError(f"routes.by_type.{key} is not a message type")

    timeouts = dict(DEFAULT_STATUS_TIMEOUTS)
    for key, value in _section(document, "status_timeouts", "").items():
        if key not in MESSAGE_TYPES or type(value) is not int or value <= 0:
            raise ConfigError(
                f"status_timeouts.{key} must be a positive integer for a message type"
            )
        timeouts[key] = value

    return AppConfig(
        clients=clients,
        carriers=carriers,
        routes=Routes(default=default, by_type=dict(by_type), by_prefix=dict(by_prefix)),
        status_timeouts=timeouts,
        search_index_secret=_str(secrets, "search_index_secret", "secrets."),
        blocked_prefixes=_prefixes(document, "blocked_prefixes", ""),
    )


def check_secrets(secrets: Any) -> None:
    """The secret's own shape (`clients` and `carriers`: objects of objects of strings), before
    any configuration names them; raise ConfigError naming the key."""
    if not isinstance(secrets, Mapping):
        raise ConfigError("the secret must be a JSON object")
    for section in ("clients", "carriers"):
        for name, entry in _section(secrets, section, "secrets.").items():
            where = f"secrets.{section}.{name}"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where} must be an object")
            for key in entry:
                _str(entry, key, f"{where}.")


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigError(f"{where} must hold a JSON object") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must hold a JSON object")
    return value


def load_config(
    settings: Settings, ssm: SSMClient, secretsmanager: SecretsManagerClient
) -> AppConfig:
    """Read the document and the secrets, one call each (the caller caches the result).

    A parameter or secret that does not exist, or the stack's starting content, raises
    NotConfigured naming what is missing; any other failure of the call (throttling, network)
    raises the client's own error.
    """
    try:
        answer = ssm.get_parameter(Name=settings.config_parameter)
    except ssm.exceptions.ParameterNotFound:
        raise NotConfigured(
            f"the parameter {settings.config_parameter} does not exist; {PUT_CONFIG}",
            [settings.config_parameter],
        ) from None
    try:
        secret = secretsmanager.get_secret_value(SecretId=settings.secrets_id)
    except secretsmanager.exceptions.ResourceNotFoundException:
        raise NotConfigured(
            f"the secret {settings.secrets_id} does not exist; {PUT_SECRETS}",
            [settings.secrets_id],
        ) from None
    document = _json_object(answer["Parameter"].get("Value", ""), settings.config_parameter)
    secrets = _json_object(secret.get("SecretString", ""), settings.secrets_id)
    config = parse_config(document, secrets)
    if config.clients and not secrets.get("clients") and not secrets.get("carriers"):
        # The secret's starting content beside a real configuration: nobody could sign in.
        raise NotConfigured(
            f"the secret {settings.secrets_id} holds no credentials; {PUT_SECRETS}",
            ["secrets.clients", "secrets.carriers"],
        )
    return config
