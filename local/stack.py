"""The whole system on loopback: moto, the template's tables and queues, the HTTP API, the drivers
and the carrier simulator, all in this process.

Start order: moto server → template.yaml through the SAM translator, its tables and queues
created by moto's CloudFormation → configuration (SSM) and secrets (Secrets Manager) → the
handlers' environment (the translated functions' own) → the handler modules → HTTP API,
simulator, drivers. `stop()` undoes it in reverse order and restores the process environment,
so tests can run one stack after another in one process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
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
    LocalStackResources,
    deploy,
    store_documents,
)
from local.drivers import Driver, ScheduleDriver, SqsDriver, StreamDriver, schedule_period
from local.runtime import DEFAULT_MAX_ENVIRONMENTS, LocalFunction

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from local.chaos import Faults
    from local.simulator import Simulator

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
#: Removed while the stack runs: the handlers must reach moto with dummy credentials only.
_MASKED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def is_tunable(name: str) -> bool:
    return name in TUNABLES or name.startswith("POWERTOOLS_") or name.endswith(_TUNABLE_SUFFIXES)


def _clear_parameter_caches() -> None:
    """Powertools caches parameter providers (and their boto3 clients) at module level."""
    module = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if module is not None:
        module.clear_caches()


def _under(module: Any, folders: tuple[Path, ...]) -> bool:
    file = getattr(module, "__file__", None)
    if not file:
        return False
    path = Path(file).resolve()
    return any(path.is_relative_to(folder) for folder in folders)


class LocalStack:
    """Everything `make run` starts, in this process. Port 0 picks a free port."""

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
        self._drivers: list[Driver] = []
        self._stop_drivers = threading.Event()
        self._config: dict[str, Any] = {}
        self._secrets: dict[str, Any] = {}
        self._region = DEFAULT_REGION
        self._saved_env: dict[str, str | None] = {}
        self._added_paths: list[str] = []
        self._code_dirs: tuple[Path, ...] = ()
        self._stashed_modules: dict[str, Any] = {}

    # ------------------------------------------------------------------------------ properties

    def _need(self, value: Any, what: str) -> Any:
        if value is None:
            raise RuntimeError(f"the local stack is not running ({what})")
        return value

    @property
    def api_url(self) -> str:
        api: ApiServer = self._need(self._api, "api_url")
        return api.url

    @property
    def sim_url(self) -> str:
        self._need(self._simulator, "sim_url")
        return self._sim_url

    @property
    def aws_endpoint(self) -> str:
        clients: aws.AwsClients = self._need(self._clients, "aws_endpoint")
        return clients.endpoint

    @property
    def simulator(self) -> Simulator:
        simulator: Simulator = self._need(self._simulator, "simulator")
        return simulator

    @property
    def resources(self) -> LocalStackResources:
        """What the template made locally: tables, queues, functions and their triggers."""
        resources: LocalStackResources = self._need(self._resources, "resources")
        return resources

    @property
    def clients(self) -> aws.AwsClients:
        """boto3 clients for the stack's moto server."""
        clients: aws.AwsClients = self._need(self._clients, "clients")
        return clients

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
        # A profile or session token from the shell would reach our own clients and the handlers'.
        self._apply_environment({})

        self._moto = aws.MotoServer(self._host, faults=self._faults)
        endpoint = self._moto.start()
        self._clients = aws.clients(endpoint, self._region)
        # The HTTP front binds now: its URL is the stack's public base URL (template parameters),
        # and goes into the configuration and the environment.
        self._api = ApiServer([], self._host, self._port)
        api_url = self._api.url
        parameters = {"PublicBaseUrl": api_url, "LocalEndpointUrl": endpoint}
        resources = self._resources = deploy(
            self._clients, self._template_path, parameters=parameters, stack_name=STACK_NAME
        )
        log.info(
            "moto %s: tables %s, queues %s",
            endpoint,
            ", ".join(t.name for t in resources.tables.values()) or "none",
            ", ".join(q.name for q in resources.queues.values()) or "none",
        )
        sim_port = self._sim_port or aws.free_port(self._host)
        self._sim_url = f"http://{self._host}:{sim_port}"
        self._store_documents(resources, api_url)

        self._apply_environment(self._environment(resources, endpoint, api_url))
        self._load_functions(resources)

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
            env = {name: os.environ.get(name, value) for name, value in fn.environment.items()}
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

    def _environment(
        self, resources: LocalStackResources, endpoint: str, api_url: str
    ) -> dict[str, str]:
        """Every function's environment (they share this process), then the stack's own."""
        env: dict[str, str] = {}
        for fn in resources.functions.values():
            for name, value in fn.environment.items():
                if name in env and env[name] != value:
                    log.warning(
                        "%s: %s differs between functions; using %r", fn.logical_id, name, value
                    )
                env[name] = value
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
        for name in list(env):
            if is_tunable(name) and os.environ.get(name):
                env[name] = os.environ[name]
        env.update(self._env)
        return env

    def _apply_environment(self, env: dict[str, str]) -> None:
        for name in (*env, *_MASKED):
            if name not in self._saved_env:
                self._saved_env[name] = os.environ.get(name)
        for name in _MASKED:
            os.environ.pop(name, None)
        os.environ.update(env)

    def _load_functions(self, resources: LocalStackResources) -> None:
        """The layer first on sys.path, then each handler module under its own name.

        Layer and handler modules imported before the stack (by tests) are set aside while it
        runs, so the handlers import them afresh under the stack's environment, as a new Lambda
        environment would; they are put back on stop.
        """
        layers: list[Path] = [SHARED_DIR]
        for fn in resources.functions.values():
            layers.extend(p for p in fn.layers if p not in layers)
        for folder in reversed(layers):
            entry = str(folder)
            if entry in sys.path:
                sys.path.remove(entry)
            else:
                self._added_paths.append(entry)
            sys.path.insert(0, entry)
        self._code_dirs = (*layers, *(fn.code_uri for fn in resources.functions.values()))
        for name, module in list(sys.modules.items()):
            if _under(module, self._code_dirs):
                self._stashed_modules[name] = sys.modules.pop(name)
        _clear_parameter_caches()

        limit = int(self.setting("LOCAL_CONCURRENCY") or DEFAULT_MAX_ENVIRONMENTS)
        for fn in resources.functions.values():
            function = LocalFunction(
                fn,
                region=self._region,
                account_id=resources.account_id,
                max_environments=limit,
                function_name=f"{STACK_NAME}-{fn.logical_id}",
                on_load=self._fault_hooks(fn.logical_id),
            )
            self._functions[fn.logical_id] = function
            function.warm()

    def _fault_hooks(self, logical_id: str) -> Callable[[ModuleType], None] | None:
        faults = self._faults
        if faults is None:
            return None
        return lambda module: faults.attach(logical_id, module)

    def _start_drivers(self, resources: LocalStackResources) -> None:
        clients = self.clients
        for fn in resources.functions.values():
            function = self._functions[fn.logical_id]
            for sqs in fn.sqs:
                if sqs.enabled:
                    workers = min(sqs.maximum_concurrency or 5, function.max_environments)
                    self._drivers.append(
                        SqsDriver(
                            invoke=function.invoke,
                            trigger=sqs,
                            queue=resources.queues[sqs.queue],
                            sqs=clients.sqs,
                            region=self._region,
                            stop_event=self._stop_drivers,
                            workers=workers,
                            name=f"{fn.logical_id}<-{sqs.queue}",
                            faults=self._faults,
                        )
                    )
            for schedule in fn.schedules:
                if schedule.enabled:
                    self._drivers.append(
                        ScheduleDriver(
                            invoke=function.invoke,
                            trigger=schedule,
                            period_seconds=schedule_period(
                                schedule, self.setting("SCHEDULE_SECONDS")
                            ),
                            function=function.name,
                            region=self._region,
                            account_id=resources.account_id,
                            stop_event=self._stop_drivers,
                            name=f"{fn.logical_id}<-{schedule.event}",
                        )
                    )
            for stream in fn.streams:
                if stream.enabled:
                    self._drivers.append(
                        StreamDriver(
                            invoke=function.invoke,
                            trigger=stream,
                            table=resources.tables[stream.table],
                            streams=clients.dynamodbstreams,
                            region=self._region,
                            stop_event=self._stop_drivers,
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
        for function in self._functions.values():
            function.unload()
        self._functions.clear()
        if self._moto is not None:
            self._quietly(self._moto.stop, "moto server")
            self._moto = None
        self._restore_process()
        self._clients = None
        with self._lock:
            self._running = False
            self._stop_drivers = threading.Event()

    def _restore_process(self) -> None:
        for name, module in list(sys.modules.items()):
            if self._code_dirs and _under(module, self._code_dirs):
                del sys.modules[name]
        sys.modules.update(self._stashed_modules)
        self._stashed_modules.clear()
        self._code_dirs = ()
        for entry in self._added_paths:
            if entry in sys.path:
                sys.path.remove(entry)
        self._added_paths.clear()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        _clear_parameter_caches()

    @staticmethod
    def _quietly(action: Any, what: str) -> None:
        try:
            action()
        except Exception as exc:
            log.warning("stopping %s: %s", what, exc)
