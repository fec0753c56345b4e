"""`make run` (python -m local) ends within a second or two of Ctrl-C, even while busy."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from local.aws import free_port
from tests.support import ROOT

#: What a person accepts between Ctrl-C and the prompt.
PATIENCE_SECONDS = 2.5


def big_batch(count: int, tag: str) -> str:
    messages = "".join(
        f"<message><message_id>{tag}{i}</message_id><address>+4915112{i:06d}</address>"
        "<body>At 10:00</body></message>"
        for i in range(count)
    )
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:toatech:agent"><soapenv:Body><urn:send_message><urn:messages>'
        f"{messages}</urn:messages></urn:send_message></soapenv:Body></soapenv:Envelope>"
    )


def post_quietly(url: str, body: str) -> None:
    auth = base64.b64encode(b"ofsc:ofsc-secret").decode()
    with contextlib.suppress(requests.RequestException):  # the stack goes away under it
        requests.post(
            url,
            data=body,
            headers={"Authorization": f"Basic {auth}", "Content-Type": "text/xml"},
            timeout=30,
        )


def test_ctrl_c_stops_the_local_stack_quickly_even_while_busy(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "SIM_PORT": str(free_port()), "SIM_DELAY_MS": "50"}
    output = tmp_path / "run.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 60
        while b"Ctrl-C stops" not in output.read_bytes():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the local stack did not start"
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/ofsc"
        for number in range(3):
            body = big_batch(600, f"busy{number}-")
            threading.Thread(target=post_quietly, args=(url, body), daemon=True).start()
        time.sleep(1.5)  # intake and dispatch are at work now
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert elapsed < PATIENCE_SECONDS, f"{elapsed:.1f} s after Ctrl-C"
    assert process.returncode == 0
    assert "Traceback" not in output.read_text()
