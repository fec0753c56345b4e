"""Finding messages (SPEC 3.4): GET /v1/messages (search), GET /v1/messages/{client}/{message_id}
and GET /v1/carriers (support staff), GET /v1/me (who a token is), and the support console
(GET /console and its assets).

A function of its own, so that the intake path (send_message) never loads the search or the
console, and a search never waits behind the intake's reserved concurrency.
"""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsbridge import auth, delivery_stats
from smsbridge.circuit import carrier_circuits
from smsbridge.config import ClientConfig, ConfigError
from smsbridge.models import iso
from smsbridge.runtime import Runtime
from smsbridge.search import BadQuery, Search, SearchUnavailable, is_support, record_view
from smsbridge.web import HttpRequest

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()
app = APIGatewayHttpResolver()

JSON = "application/json"
CONSOLE = Path(__file__).resolve().parent / "console"
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: The console runs its own script and style files only, talks to this API only, and cannot be
#: framed: an injected value can never run as script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: How long one environment reuses the per-carrier delivery rates (they read a day of the log).
CARRIER_STATS_MAX_AGE = timedelta(seconds=60)


def _error(status: int, message: str, **extra: Any) -> Response[Any]:
    return Response(status, JSON, {"message": message, **extra})


@app.exception_handler(BadQuery)  # type: ignore[untyped-decorator]
def _bad_query(error: BadQuery) -> Response[Any]:
    return _error(400, error.reason, parameter=error.parameter)


@app.exception_handler(SearchUnavailable)  # type: ignore[untyped-decorator]
def _unavailable(error: SearchUnavailable) -> Response[Any]:
    return _error(503, str(error))


@app.exception_handler(ConfigError)  # type: ignore[untyped-decorator]
def _not_configured(error: ConfigError) -> Response[Any]:
    logger.error("configuration error", extra={"error": str(error)})
    return _error(503, "smsbridge is not configured")


@app.exception_handler(ServiceError)  # type: ignore[untyped-decorator]
def _service_error(error: ServiceError) -> Response[Any]:
    return _error(error.status_code, str(error.msg))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _internal_error(error: Exception) -> Response[Any]:
    """Anything unexpected: logged, answered 500 without a stack trace."""
    logger.exception("unhandled error")
    return _error(500, "internal error")


def _viewer() -> ClientConfig | Response[Any]:
    """The JSON or support client the request authenticates as, or the 401."""
    event = app.current_event
    headers = {key.lower(): value for key, value in (event.headers or {}).items()}
    request = HttpRequest(method="GET", path=event.raw_path, headers=headers)
    clients = runtime.config().clients.values()
    client = auth.json_client_of(request, clients, ("json", "support"))
    if client is None:
        return Response(
            401,
            JSON,
            {"message": "missing or wrong credentials"},
            headers={"WWW-Authenticate": 'Bearer realm="smsbridge", Basic realm="smsbridge"'},
        )
    return client


def _search() -> Search:
    return Search(runtime.repository(), runtime.config(), runtime.clock)


def _query_params() -> list[tuple[str, str]]:
    raw = app.current_event.raw_query_string or ""
    try:
        return parse_qsl(raw, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadQuery("query", "not percent-encoded UTF-8") from None


def _path_part(name: str, raw: str) -> str:
    try:
        value = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadQuery(name, "not percent-encoded UTF-8") from None
    if not 1 <= len(value) <= 64:
        raise BadQuery(name, "must be 1 to 64 characters")
    return value


# --- the API --------------------------------------------------------------------------------


@app.get("/v1/messages")
def search_messages() -> Response[Any]:
    viewer = _viewer()
    if isinstance(viewer, Response):
        return viewer
    page = _search().find(viewer, _query_params())
    logger.debug("search", extra={"records": len(page.records), "read_units": page.read_units})
    return Response(200, JSON, {"messages": page.records, "next_cursor": page.next_cursor})


@app.get("/v1/messages/<client>/<message_id>")
def read_message(client: str, message_id: str) -> Response[Any]:
    viewer = _viewer()
    if isinstance(viewer, Response):
        return viewer
    if not is_support(viewer):
        return _error(403, "support clients only")
    message = _search().read(_path_part("client", client), _path_part("message_id", message_id))
    if message is None:
        return _error(404, "message not found")
    return Response(200, JSON, record_view(message, viewer, history=True))


#: The last per-carrier rates this environment read, and when.
_RATES: dict[str, Any] = {}


def _carrier_rates() -> dict[str, delivery_stats.CarrierRate]:
    """Per-carrier outcomes of the last 24 h (`make report`'s definitions), reused for a minute."""
    now = runtime.clock()
    if _RATES and timedelta(0) <= now - _RATES["at"] < CARRIER_STATS_MAX_AGE:
        rates: dict[str, delivery_stats.CarrierRate] = _RATES["rates"]
        return rates
    since, until = iso(now - timedelta(hours=24)), iso(now)
    entries = runtime.repository().log_entries(since, until)
    rates = delivery_stats.carrier_rates(entries, since=since, until=until)
    _RATES.update(at=now, rates=rates)
    return rates


@app.get("/v1/me")
def me() -> Response[Any]:
    """Who a token signs in as (the console asks once, to show what the role may do)."""
    viewer = _viewer()
    if isinstance(viewer, Response):
        return viewer
    return Response(200, JSON, {"client": viewer.name, "kind": viewer.kind})


@app.get("/v1/carriers")
def carriers() -> Response[Any]:
    viewer = _viewer()
    if isinstance(viewer, Response):
        return viewer
    if not is_support(viewer):
        return _error(403, "support clients only")
    repository = runtime.repository()
    rates = _carrier_rates()
    names = sorted(runtime.config().carriers)
    circuits = carrier_circuits(repository, names)
    answer = {}
    for name in names:
        rate = rates.get(name, delivery_stats.CarrierRate())
        answer[name] = {
            **circuits[name],
            "delivery_rate_24h": rate.rate,
            "outcomes_24h": rate.outcomes,
        }
    return Response(200, JSON, {"carriers": answer})


# --- the console ----------------------------------------------------------------------------


@functools.cache
def _asset(name: str) -> str:
    return (CONSOLE / name).read_text(encoding="utf-8")


@app.get("/console")
def console() -> Response[Any]:
    return Response(200, "text/html; charset=utf-8", _asset("index.html"), headers=PAGE_HEADERS)


@app.get("/console/<asset>")
def console_asset(asset: str) -> Response[Any]:
    if asset not in ASSETS:
        return _error(404, "not found")
    return Response(200, ASSETS[asset], _asset(asset), headers=PAGE_HEADERS)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    problem = runtime.configuration_problem()
    if problem is not None:
        # 503 on every route until a configuration is put (SPEC 6.1), as the other functions do.
        logger.error("not configured", extra={"problem": problem})
        headers = {"Content-Type": JSON, "Retry-After": "60"}
        return {"statusCode": 503, "headers": headers, "body": json.dumps({"message": problem})}
    return app.resolve(event, context)
