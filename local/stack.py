"""The whole system on loopback: moto (its own process), the template's tables and queues, the
HTTP API, the drivers, the carrier simulator, and each function's execution environments (worker
processes, `local.runtime`).

Start order: moto server → template.yaml through the SAM translator, its tables and queues
created by moto's CloudFormation → configuration (SSM) and secrets (Secrets Manager) → each
function's environment variables (the translated function's own) and its first execution
environments → the HTTP API's routes → the simulator → the drivers. The calling process's
own environment and modules are never changed, so tests can run one stack after another.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from local import aws
from local.api import ApiServer, Route
from local.cloudformation import (
    DEFAULT_REGION,
    DEFAULT_TEMPLATE,
    REPO_ROOT,
    STACK_NAME,
    FunctionSpec,
    LocalStackResources,
    deploy,
    store_documents,
)
from local.drivers import Driver, ScheduleDriver, SqsDriver, StreamDriver, schedule_period
from local.runtime import DEFAULT_MAX_ENVIRONMENTS, LocalFunction

if TYPE_CHECKING:
    from local.simulator import Simulator
    from tools.chaos import Faults

log = logging.getLogger("local.stack")

LOCAL_DIR = Path(__file__).resolve().parent
CONFIG_FILE = LOCAL_DIR / "config.json"
SECRETS_FILE = LOCAL_DIR / "secrets.json"
SECRETS_EXAMPLE_FILE = LOCAL_DIR / "secrets.example.json"
SHARED_DIR = REPO_ROOT / "shared"
#: `make run` writes it for `sam local ... --env-vars` (git-ignored).
SAM_ENV_FILE = LOCAL_DIR / "sam-env.json"
#: How a Lambda container started by `sam local` reaches this machine (Docker Desktop's name;
#: on Linux pass `--add-host host.docker.internal:host-gateway` to sam local).
CONTAINER_HOST = "host.docker.internal"

#: Settings where a value already in the process environment beats the template's: these names
#: and every name with one of these suffixes or the POWERTOOLS_ prefix.
TUNABLES = frozenset({"STORE_OTP_BODY", "LOG_LEVEL", "CIRCUIT_FAILURES"})
_TUNABLE_SUFFIXES = ("_SECONDS", "_ATTEMPTS", "_LIMIT", "_DAYS", "_BYTES", "_CONCURRENCY", "_MS")
#: Execution environments started with the stack per function (more start when needed).
WARM_ENVIRONMENTS = 2
_MASKED = aws.MASKED


def is_tunable(name: str) -> bool:
    return name in TUNABLES or name.startswith("POWERTOOLS_") or name.endswith(_TUNABLE_SUFFIXES)


class LocalStack:
    """Everything `make run` starts, from this process. Port 0 picks a free port."""

    def __init__(
        self,
        *,
        port: int = 3000,
        sim_port: int = 3001,
        env: dict[str, str] | None = None,
        template_path: Path = DEFAULT_TEMPLATE,
        host: str = aws.LOOPBACK,
        config_path: Path = CONFIG_FILE,
        secrets_path: Path = SECRETS_FILE,
        sam_env_path: Path | None = None,
        faults: Faults | None = None,
    ) -> None:
        self._host = host
        #: Fault injection (`make soak`): moto front, SQS drivers, handler clients, simulator.
        self._faults = faults
        self._port = port
        self._sim_port = sim_port
        self._env = dict(env or {})
        self._template_path = Path(template_path)
        self._config_path = Path(config_path)
        self._secrets_path = Path(secrets_path)
        self._sam_env_path = sam_env_path
        self._lock = threading.Lock()
        self._running = False
        self._resources: LocalStackResources | None = None
        self._moto: aws.MotoServer | None = None
        self._clients: aws.AwsClients | None = None
        self._api: ApiServer | None = None
        self._simulator: Simulator | None = None
        self._sim_url = ""
        self._functions: dict[str, LocalFunction] = {}
        self._drivers: list[Driver[Any]] = []
        self._stop_drivers = threading.Event()
        self._config: dict[str, Any] = {}
        self._secrets: dict[str, Any] = {}
        self._region = DEFAULT_REGION

    # ------------------------------------------------------------------------------ properties

    def _need[T](self, value: T | None, what: str) -> T:
        if value is None:
            raise RuntimeError(f"the local stack is not running ({what})")
        return value

    @property
    def api_url(self) -> str:
        return self._need(self._api, "api_url").url

    @property
    def sim_url(self) -> str:
        self._need(self._simulator, "sim_url")
        return self._sim_url

    @property
    def aws_endpoint(self) -> str:
        return self._need(self._clients, "aws_endpoint").endpoint

    @property
    def simulator(self) -> Simulator:
        return self._need(self._simulator, "simulator")

    @property
    def resources(self) -> LocalStackResources:
        """What the template made locally: tables, queues, functions and their triggers."""
        return self._need(self._resources, "resources")

    @property
    def clients(self) -> aws.AwsClients:
        """boto3 clients for the stack's moto server."""
        return self._need(self._clients, "clients")

    @property
    def functions(self) -> dict[str, LocalFunction]:
        """The loaded functions by logical id (`invoke(event)` runs one directly)."""
        return dict(self._functions)

    @property
    def region(self) -> str:
        return self._region

    @property
    def config(self) -> dict[str, Any]:
        """The configuration document as stored in SSM (URLs substituted)."""
        return self._config

    @property
    def secrets(self) -> dict[str, Any]:
        """The secrets document as stored in Secrets Manager."""
        return self._secrets

    def moto_fault_counts(self) -> dict[str, int]:
        """The faults the moto process injected (DynamoDB throttling), by name."""
        return self._need(self._moto, "moto").fault_counts()

    def table_name(self, logical_id: str) -> str:
        return self.resources.table_name(logical_id)

    def queue_url(self, logical_id: str) -> str:
        return self.resources.queue_url(logical_id)

    def setting(self, name: str) -> str | None:
        """A setting from the `env` argument, else from the process environment."""
        return self._env.get(name) or os.environ.get(name) or None

    # ------------------------------------------------------------------------------ life cycle

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        with self._lock:
            if self._running:
                raise RuntimeError("the local stack is already running")
            self._running = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self._region = (
            self.setting("AWS_DEFAULT_REGION") or self.setting("AWS_REGION") or (DEFAULT_REGION)
        )
        self._moto = aws.MotoServer(self._host, faults=self._faults)
        endpoint = self._moto.start()
        self._clients = aws.clients(endpoint, self._region)
        # The HTTP front binds now: its URL is the stack's public base URL (template parameters),
        # and goes into the configuration and the environment.
        self._api = ApiServer([], self._host, self._port)
        api_url = self._api.url
        parameters = {"PublicBaseUrl": api_url, "LocalEndpointUrl": endpoint}
        # The SAM translator makes a boto3 session of its own: a profile of the shell must not
        # reach it (it may not even exist here).
        saved = {name: os.environ.pop(name) for name in _MASKED if name in os.environ}
        try:
            resources = self._resources = deploy(
                self._clients, self._template_path, parameters=parameters, stack_name=STACK_NAME
            )
        finally:
            os.environ.update(saved)
        log.info(
            "moto %s: tables %s, queues %s",
            endpoint,
            ", ".join(t.name for t in resources.tables.values()) or "none",
            ", ".join(q.name for q in resources.queues.values()) or "none",
        )
        sim_port = self._sim_port or aws.free_port(self._host)
        self._sim_url = f"http://{self._host}:{sim_port}"
        self._store_documents(resources, api_url)

        self._load_functions(resources, endpoint, api_url)

        routes = [
            Route(route=route, invoke=self._functions[fn.logical_id].invoke, function=fn.logical_id)
            for fn, route in resources.routes()
        ]
        self._api.set_routes(routes)
        self._api.start()

        from local.simulator import Simulator

        self._simulator = Simulator(
            api_url,
            self._config,
            self._secrets,
            delay_ms=int(self.setting("SIM_DELAY_MS") or 300),
            late_ms=int(self.setting("SIM_LATE_MS") or 2500),
            faults=self._faults,
        )
        self._sim_url = self._simulator.start(self._host, sim_port).rstrip("/")

        self._start_drivers(resources)
        log.info("API %s, simulator %s, %d drivers", api_url, self._sim_url, len(self._drivers))
        if self._sam_env_path is not None:
            text = json.dumps(self.sam_env_vars(), indent=2, sort_keys=True)
            self._sam_env_path.write_text(text + "\n", encoding="utf-8")
            log.info("sam local env vars for this stack: %s", self._sam_env_path)

    def sam_env_vars(self) -> dict[str, dict[str, str]]:
        """`sam local invoke/start-api --env-vars`: each function's environment as this stack
        runs it, with its loopback URLs as a container reaches them (CONTAINER_HOST)."""
        here, there = f"://{self._host}:", f"://{CONTAINER_HOST}:"
        found: dict[str, dict[str, str]] = {}
        for fn in self.resources.functions.values():
            env = {
                name: self._functions[fn.logical_id].env.get(name, value)
                for name, value in fn.environment.items()
            }
            env["AWS_ENDPOINT_URL"] = self.aws_endpoint
            found[fn.logical_id] = {k: v.replace(here, there) for k, v in env.items()}
        return found

    def _store_documents(self, resources: LocalStackResources, api_url: str) -> None:
        """The configuration into SSM, the secrets into Secrets Manager (the handlers read both)."""
        text = self._config_path.read_text(encoding="utf-8")
        text = text.replace("${SIM_URL}", self._sim_url).replace("${API_URL}", api_url)
        self._config = json.loads(text)
        if not self._secrets_path.exists():
            shutil.copyfile(SECRETS_EXAMPLE_FILE, self._secrets_path)
            log.info("created %s from %s", self._secrets_path.name, SECRETS_EXAMPLE_FILE.name)
        secrets_text = self._secrets_path.read_text(encoding="utf-8")
        self._secrets = json.loads(secrets_text)

        store_documents(self.clients, resources, text, secrets_text)

    def _environment(self, fn: FunctionSpec, endpoint: str, api_url: str) -> dict[str, str]:
        """A function's environment variables: this process's (less any real credentials), the
        translated function's own, the stack's, tunables from this process, the `env` argument."""
        env = {k: v for k, v in os.environ.items() if k not in _MASKED}
        env.update(fn.environment)
        env.setdefault("PUBLIC_BASE_URL", api_url)
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": aws.DUMMY_ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": aws.DUMMY_SECRET_ACCESS_KEY,
                "AWS_DEFAULT_REGION": self._region,
                "AWS_REGION": self._region,
            }
        )
        for name in fn.environment:
            if is_tunable(name) and os.environ.get(name):
                env[name] = os.environ[name]
        env.update(self._env)
        return env

    def _load_functions(self, resources: LocalStackResources, endpoint: str, api_url: str) -> None:
        """Each function with its first execution environment started (all at once)."""
        layers: list[str] = [str(SHARED_DIR)]
        for fn in resources.functions.values():
            layers.extend(str(p) for p in fn.layers if str(p) not in layers)
        limit = int(self.setting("LOCAL_CONCURRENCY") or DEFAULT_MAX_ENVIRONMENTS)
        for fn in resources.functions.values():
            self._functions[fn.logical_id] = LocalFunction(
                fn,
                region=self._region,
                account_id=resources.account_id,
                max_environments=limit,
                function_name=f"{STACK_NAME}-{fn.logical_id}",
                env=self._environment(fn, endpoint, api_url),
                path=layers,
                faults=self._faults,
            )
        warm = int(self.setting("LOCAL_WARM_ENVIRONMENTS") or WARM_ENVIRONMENTS)
        _each_at_once([partial(f.warm, warm) for f in self._functions.values()])
        for function in self._functions.values():
            if not function.pids:
                function.warm()  # its import error, raised here

    def _start_drivers(self, resources: LocalStackResources) -> None:
        clients, period = self.clients, self.setting("SCHEDULE_SECONDS")
        for fn in resources.functions.values():
            function = self._functions[fn.logical_id]
            common: dict[str, Any] = {"invoke": function.invoke, "region": self._region}
            common["stop_event"] = self._stop_drivers
            for sqs in filter(lambda t: t.enabled, fn.sqs):
                workers = min(sqs.maximum_concurrency or 5, function.max_environments)
                self._drivers.append(
                    SqsDriver(
                        **common,
                        trigger=sqs,
                        queue=resources.queues[sqs.queue],
                        sqs=clients.sqs,
                        workers=workers,
                        name=f"{fn.logical_id}<-{sqs.queue}",
                        faults=self._faults,
                    )
                )
            for schedule in filter(lambda t: t.enabled, fn.schedules):
                self._drivers.append(
                    ScheduleDriver(
                        **common,
                        trigger=schedule,
                        period_seconds=schedule_period(schedule, period),
                        function=function.name,
                        account_id=resources.account_id,
                        name=f"{fn.logical_id}<-{schedule.event}",
                    )
                )
            for stream in filter(lambda t: t.enabled, fn.streams):
                self._drivers.append(
                    StreamDriver(
                        **common,
                        trigger=stream,
                        table=resources.tables[stream.table],
                        streams=clients.dynamodbstreams,
                        name=f"{fn.logical_id}<-{stream.table}",
                    )
                )
        for driver in self._drivers:
            driver.start()

    def stop(self) -> None:
        """Stop everything in reverse order; safe to call twice or after a failed start."""
        with self._lock:
            if not self._running:
                return
        self._stop_drivers.set()
        for driver in self._drivers:
            self._quietly(driver.stop, f"driver {driver.name}")
        self._drivers.clear()
        if self._simulator is not None:
            self._quietly(self._simulator.stop, "simulator")
            self._simulator = None
        if self._api is not None:
            self._quietly(self._api.stop, "HTTP API")
            self._api = None
        _each_at_once([function.unload for function in self._functions.values()])
        self._functions.clear()
        if self._moto is not None:
            self._quietly(self._moto.stop, "moto server")
            self._moto = None
        self._clients = None
        with self._lock:
            self._running = False
            self._stop_drivers = threading.Event()

    @staticmethod
    def _quietly(action: Any, what: str) -> None:
        try:
            action()
        except Exception as exc:
            log.warning("stopping %s: %s", what, exc)


def _each_at_once(actions: list[Callable[[], Any]]) -> None:
    """Run the actions side by side, each in a thread of its own, and wait for them all."""
    threads = [threading.Thread(target=action, daemon=True) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
