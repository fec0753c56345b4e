"""Cold import of each handler module, against the floor `import boto3` + one client.

Every sample is a fresh interpreter running `bench/probe.py`, which times the import itself
(start-up excluded). Baseline and handler runs are interleaved, and the order rotates every round,
so that a noisy neighbour slows them alike. One untimed round first fills the bytecode caches.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import probe
from bench.tables import ratio, render

PROBE = Path(probe.__file__).resolve()
BASELINE = "baseline"
PROBE_TIMEOUT_SECONDS = 120
TOP_IMPORTS = 5
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S.*)$")


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to import: the baseline or a handler file."""

    name: str
    args: tuple[str, ...]


@dataclass(slots=True)
class Timing:
    """The samples of one target (milliseconds), or why it could not be imported."""

    name: str
    samples: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0


@dataclass(slots=True)
class ImportNode:
    """One line of `python -X importtime`, with the imports it triggered."""

    name: str
    self_us: int
    cumulative_us: int
    children: list[ImportNode] = field(default_factory=list)


@dataclass(slots=True)
class ImportProfile:
    """One `-X importtime` run of a handler."""

    #: The whole import as the probe timed it (importtime's own overhead included).
    total_ms: float
    #: The imports the handler triggered directly (the roots), heaviest first.
    roots: list[ImportNode]

    @property
    def imports_ms(self) -> float:
        return sum(node.cumulative_us for node in self.roots) / 1000


@dataclass(slots=True)
class ColdImportReport:
    runs: int
    timings: dict[str, Timing]
    profiles: dict[str, ImportProfile]

    @property
    def failed(self) -> bool:
        return any(timing.error for timing in self.timings.values())


def targets(root: Path) -> list[Target]:
    """The baseline, then every functions/<name>/app.py."""
    shared = str(root / "shared")
    found = [Target(BASELINE, (probe.BASELINE,))]
    for app in sorted((root / "functions").glob("*/app.py")):
        found.append(Target(app.parent.name, (str(app), shared)))
    return found


def probe_environment(config_parameter: str, secrets_id: str) -> dict[str, str]:
    """What a handler needs at import: region, dummy credentials, the template's variables.

    AWS_*, PYTHON* and POWERTOOLS_* variables of the caller are dropped, and the AWS config files
    point nowhere, so that every process starts alike (as a Lambda container does).
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "PYTHON", "POWERTOOLS_"))
    }
    env.update(
        {
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MESSAGES_TABLE": "smsbridge-MessagesTable",
            "DISPATCH_QUEUE_URL": (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/smsbridge-DispatchQueue"
            ),
            "CONFIG_PARAMETER": config_parameter,
            "SECRETS_ID": secrets_id,
            "POWERTOOLS_SERVICE_NAME": "smsbridge",
        }
    )
    return env


def run_probe(
    root: Path, target: Target, env: dict[str, str], *, importtime: bool = False
) -> tuple[float, str]:
    """Import `target` in a fresh interpreter; (milliseconds, stderr). RuntimeError on failure."""
    command = [sys.executable, "-P"]
    if importtime:
        command += ["-X", "importtime"]
    command += [str(PROBE), *target.args]
    done = subprocess.run(
        command,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError("\n".join(lines[-12:]) or f"exit status {done.returncode}")
    last = done.stdout.strip().splitlines()[-1]
    return float(json.loads(last)["ms"]), done.stderr


def parse_importtime(stderr: str) -> list[ImportNode]:
    """The imports made after the probe's marker, as trees; the roots in import order.

    `-X importtime` prints an import when it completes, after the imports it triggered, each
    nested level indented two more spaces.
    """
    _, found, after = stderr.partition(probe.MARKER)
    lines = after if found else stderr
    pending: dict[int, list[ImportNode]] = {}
    depths: list[int] = []
    for line in lines.splitlines():
        match = _IMPORTTIME.match(line)
        if match is None:
            continue
        depth = len(match.group(3))
        node = ImportNode(match.group(4), int(match.group(1)), int(match.group(2)))
        node.children = pending.pop(depth + 2, [])
        pending.setdefault(depth, []).append(node)
        depths.append(depth)
    return pending.get(min(depths), []) if depths else []


def measure(root: Path, runs: int, env: dict[str, str]) -> ColdImportReport:
    """`runs` timed rounds (after one untimed round), interleaved; then one importtime run each."""
    all_targets = targets(root)
    timings = {target.name: Timing(target.name) for target in all_targets}
    for round_no in range(runs + 1):
        shift = round_no % len(all_targets)
        for target in all_targets[shift:] + all_targets[:shift]:
            timing = timings[target.name]
            if timing.error:
                continue
            try:
                ms, _ = run_probe(root, target, env)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                timing.error = str(exc)
                continue
            if round_no > 0:
                timing.samples.append(ms)
    profiles: dict[str, ImportProfile] = {}
    for target in all_targets:
        if target.name == BASELINE or timings[target.name].error:
            continue
        try:
            total_ms, stderr = run_probe(root, target, env, importtime=True)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            timings[target.name].error = str(exc)
            continue
        roots = sorted(parse_importtime(stderr), key=lambda node: node.cumulative_us, reverse=True)
        profiles[target.name] = ImportProfile(total_ms, roots)
    return ColdImportReport(runs=runs, timings=timings, profiles=profiles)


def _ms(microseconds: int) -> str:
    return f"{microseconds / 1000:.1f} ms"


def where_it_goes(node: ImportNode) -> str:
    """The heaviest import inside `node`, followed down while it holds half the time, stopping at
    the first module of another top-level package (its own code when it imports nothing)."""
    package = node.name.partition(".")[0]
    current = node
    while current.children:
        heaviest = max(current.children, key=lambda child: child.cumulative_us)
        if current is not node and heaviest.cumulative_us * 2 < current.cumulative_us:
            break
        current = heaviest
        if current.name.partition(".")[0] != package:
            break
    return "(its own code)" if current is node else f"{current.name} {_ms(current.cumulative_us)}"


def format_report(report: ColdImportReport) -> list[str]:
    """The cold-import table and the heaviest imports of each handler."""
    baseline = report.timings[BASELINE]
    lines = [
        f"Cold import, median of {report.runs} fresh processes each "
        "(import only: interpreter start-up excluded)",
        f"baseline = `import boto3; boto3.client('dynamodb')`: median {baseline.median:.1f} ms",
        "",
    ]
    rows: list[list[str]] = []
    for name, timing in report.timings.items():
        label = "(baseline)" if name == BASELINE else name
        if timing.error:
            rows.append([label, "FAILED", "-", "-", "-"])
            continue
        rows.append(
            [
                label,
                f"{timing.median:.1f}",
                f"{min(timing.samples):.1f}",
                f"{max(timing.samples):.1f}",
                ratio(timing.median, baseline.median),
            ]
        )
    lines += render(["handler", "median ms", "min ms", "max ms", "vs baseline"], rows, "lrrrr")
    lines += [
        "",
        f"Top {TOP_IMPORTS} imports of each handler by cumulative time (python -X importtime, one",
        "run each). `where it goes`: the heaviest import inside, followed down while it holds",
        "half the time, up to the first module of another package. The rest of a handler's",
        "import is module-level code (clients, app objects).",
    ]
    for name, profile in report.profiles.items():
        rest = profile.total_ms - profile.imports_ms
        lines += [
            "",
            f"  {name}: {profile.total_ms:.1f} ms in this run, {profile.imports_ms:.1f} ms in "
            f"imports, {rest:.1f} ms in module-level code",
        ]
        rows = [
            [node.name, _ms(node.cumulative_us), where_it_goes(node)]
            for node in profile.roots[:TOP_IMPORTS]
        ]
        lines += render(["module", "cumulative", "where it goes"], rows, "lrl", indent=4)
    for name, timing in report.timings.items():
        if timing.error:
            lines += [
                "",
                f"  {name}: import FAILED",
                *("    " + s for s in timing.error.splitlines()),
            ]
    return lines
