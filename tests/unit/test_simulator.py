"""The carrier simulator of the local stack, over real HTTP against a small fake smsbridge API."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from local.simulator import Simulator, outcome_for
from smsbridge import safexml
from smsbridge.carriers import vibes
from smsbridge.statuses import Status
from tests.support import LoopbackServer

LOCAL = Path(__file__).resolve().parents[2] / "local"
DELAY_MS = 50
LATE_MS = 300
SUBMIT_AUTH = ("smsbridge", "sim-submit-secret")
SUBMIT_TOKEN = "sim-submit-token"
API_KEY = "sim-api-key"


class FakeApi:
    """Records every request the simulator sends to smsbridge's API (`/dlr/...`)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        #: How many of the next requests are answered 503 (recorded all the same).
        self.failing = 0
        self.server = LoopbackServer(self._app)
        self.url = self.server.url
        self.server.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        split = urlsplit(str(environ.get("RAW_URI") or request.full_path))
        body = request.get_data()
        with self.lock:
            self.received.append(
                {
                    "path": split.path,
                    "query": parse_qs(split.query),
                    "headers": Headers(request.headers),  # names case-insensitive
                    "body": body,
                }
            )
            failing, self.failing = self.failing > 0, max(0, self.failing - 1)
        if failing:
            return Response(b"unavailable", 503)(environ, start_response)
        return Response(b"OK")(environ, start_response)

    def requests_where(self, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self.lock:
            return [item for item in self.received if match(item)]

    def stop(self) -> None:
        self.server.stop()


def load_local(name: str) -> dict[str, Any]:
    text = (LOCAL / name).read_text(encoding="utf-8").replace("${SIM_URL}", "http://127.0.0.1:1")
    document: dict[str, Any] = json.loads(text)
    return document


def wait_until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def attribute(root: ET.Element, path: str, name: str) -> str | None:
    element = root.find(path)
    assert element is not None, path
    return element.get(name)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def reference() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def sim(api: FakeApi) -> Iterator[Simulator]:
    simulator = Simulator(
        api.url,
        load_local("config.json"),
        load_local("secrets.example.json"),
        delay_ms=DELAY_MS,
        late_ms=LATE_MS,
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture(autouse=True)
def fresh(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").reset()


# ---- submitting in each format


def smartswitch_send(
    sim: Simulator, to: str, ref: str, *, auth: tuple[str, str] = SUBMIT_AUTH, **kwargs: Any
) -> requests.Response:
    body = {"to": to, "from": "SMSBRIDGE", "text": "hello", "message_id": ref}
    return requests.post(f"{sim.url}/smartswitch/send", json=body, auth=auth, **kwargs)


def conceptomovil_send(
    sim: Simulator,
    to: str,
    ref: str,
    *,
    token: str = SUBMIT_TOKEN,
    api_key: str = API_KEY,
) -> requests.Response:
    body = {
        "apiKey": api_key,
        "country": "MX",
        "message": "hola",
        "msisdns": [to.lstrip("+")],
        "tag": ref,
        "dlr": True,
    }
    return requests.post(
        f"{sim.url}/conceptomovil/send", json=body, headers={"Authorization": token}, timeout=5
    )


def vibes_send(
    sim: Simulator,
    api: FakeApi,
    to: str,
    ref: str,
    *,
    carrier: str = "vibes",
    auth: tuple[str, str] = SUBMIT_AUTH,
    alternate_delivery: bool = False,
) -> requests.Response:
    asked = "true" if alternate_delivery else "false"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<mtMessage submitterMessageId="{ref}" alternateDelivery="{asked}">'
        f'<destination address="{to}" type="MDN"/><source address="98765" type="SC"/>'
        "<text>hello</text>"
        f'<receiptOption callbackUrl="{api.url}/dlr/{carrier}?token=vibes-secret">ALL'
        "</receiptOption></mtMessage>"
    )
    return requests.post(
        f"{sim.url}/{carrier}/send",
        data=body.encode(),
        headers={"Content-Type": "application/xml"},
        auth=auth,
        timeout=5,
    )


def ip2sms_send(
    sim: Simulator, to: str, ref: str, *, auth: tuple[str, str] = SUBMIT_AUTH
) -> requests.Response:
    body = (
        f'<message><service id="single" source="SMSBRIDGE" uniq_key="{ref}"/>'
        f'<to ext_id="{ref}">{to}</to>'
        '<body content-type="text/plain" encoding="plain">hello</body></message>'
    )
    return requests.post(
        f"{sim.url}/ip2sms/send",
        data=body.encode(),
        headers={"Content-Type": "application/xml"},
        auth=auth,
        timeout=5,
    )


def ip2sms_state(sim: Simulator, gateway_id: str) -> tuple[str, str]:
    response = requests.post(
        f"{sim.url}/ip2sms/status",
        data=f'<request id="{gateway_id}">status</request>'.encode(),
        auth=SUBMIT_AUTH,
        timeout=5,
    )
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "status"
    assert root.get("id") == gateway_id
    assert root.get("date")
    state = root.find("state")
    assert state is not None
    return state.text or "", state.get("error", "")


# ---- reading receipts


def smartswitch_states(api: FakeApi, gateway_id: str) -> list[str]:
    found = api.requests_where(lambda r: r["query"].get("message_id") == [gateway_id])
    return [r["query"]["message_state"][0] for r in found]


def conceptomovil_receipts(api: FakeApi, gateway_id: int) -> list[dict[str, Any]]:
    found = api.requests_where(lambda r: r["path"] == "/dlr/conceptomovil")
    bodies = [json.loads(r["body"]) for r in found]
    return [body for body in bodies if body["messageId"] == gateway_id]


def vibes_receipts(api: FakeApi, gateway_id: str) -> list[dict[str, Any]]:
    found = api.requests_where(lambda r: r["path"].startswith("/dlr/vibes"))
    receipts = []
    for item in found:
        root = ET.fromstring(item["body"])
        if root.get("messageId") == gateway_id:
            receipts.append({"request": item, "root": root})
    return receipts


def sim_submissions(sim: Simulator, ref: str) -> list[dict[str, Any]]:
    return [item for item in sim.submissions() if item["reference"] == ref]


# ---- tests


def test_outcome_table() -> None:
    assert outcome_for("+380671234501").receipts == ("enroute", "delivered")
    assert outcome_for("+380671234599").receipts == ("enroute", "delivered")
    assert outcome_for("+380671234511").receipts == ("enroute", "undeliverable")
    assert outcome_for("+380671234512").reject
    assert outcome_for("+380671234513").unavailable == 2
    assert outcome_for("+380671234514").receipts == ("enroute",)
    assert outcome_for("+380671234516").receipts == ("enroute", "expired")
    assert outcome_for("+380671234517").late == 2
    assert outcome_for("+18475551218", "SC").receipts[-1] == "undeliverable"
    assert outcome_for("+18475551218", "LC").receipts[-1] == "delivered"
    assert outcome_for("+380671234519").before_answer
    for ending in ("21", "22", "23", "24"):
        outcome = outcome_for(f"+184455512{ending}")
        assert outcome.forwarding and outcome.receipts == ("enroute", "undeliverable")


def test_smartswitch_default_enroute_then_delivered(sim: Simulator, api: FakeApi) -> None:
    ref = reference()
    response = smartswitch_send(sim, "+380671234501", ref, timeout=5)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "accepted"
    gateway_id = answer["message_id"]
    assert isinstance(gateway_id, str)
    assert gateway_id.isdigit()
    wait_until(lambda: len(smartswitch_states(api, gateway_id)) >= 2)
    time.sleep(DELAY_MS * 3 / 1000)
    assert smartswitch_states(api, gateway_id) == ["enroute", "delivered"]
    posted = api.requests_where(lambda r: r["query"].get("message_id") == [gateway_id])
    for item in posted:
        assert item["path"] == "/dlr/smartswitch"
        assert item["query"]["_login"] == ["smartswitch"]
        assert item["query"]["_password"] == ["smartswitch-secret"]
    [submission] = sim_submissions(sim, ref)
    assert submission["carrier"] == "smartswitch"
    assert submission["to"] == "+380671234501"
    assert submission["text"] == "hello"
    assert submission["sender"] == "SMSBRIDGE"
    assert submission["taken"] is True
    assert submission["gateway_id"] == gateway_id
    assert submission["at"]


@pytest.mark.parametrize(
    ("to", "states"),
    [
        ("+380671234511", ["enroute", "undeliverable"]),
        ("+380671234516", ["enroute", "expired"]),
        ("+380671234514", ["enroute"]),
        ("+380671234518", ["enroute", "undeliverable"]),
    ],
)
def test_smartswitch_outcomes(sim: Simulator, api: FakeApi, to: str, states: list[str]) -> None:
    response = smartswitch_send(sim, to, reference(), timeout=5)
    assert response.status_code == 200
    gateway_id = response.json()["message_id"]
    wait_until(lambda: len(smartswitch_states(api, gateway_id)) >= len(states))
    time.sleep(DELAY_MS * 3 / 1000)
    assert smartswitch_states(api, gateway_id) == states


def test_conceptomovil_default_posts_only_the_final(sim: Simulator, api: FakeApi) -> None:
    ref = reference()
    before = int(time.time() * 1000)
    response = conceptomovil_send(sim, "+525512345601", ref)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "ok"
    gateway_id = answer["id"]
    assert isinstance(gateway_id, int)
    wait_until(lambda: len(conceptomovil_receipts(api, gateway_id)) >= 1)
    time.sleep(DELAY_MS * 3 / 1000)
    [receipt] = conceptomovil_receipts(api, gateway_id)
    assert receipt["statusDelivery"] == "DELIVERED"
    assert receipt["carrier"] == "TELCEL"
    assert before <= receipt["sendDate"] <= receipt["doneDate"]
    [request] = api.requests_where(lambda r: r["path"] == "/dlr/conceptomovil" and r["body"])[-1:]
    assert request["headers"]["Authorization"] == basic("conceptomovil", "conceptomovil-secret")
    assert request["headers"]["Content-Type"] == "application/json"
    [submission] = sim_submissions(sim, ref)
    assert submission["to"] == "+525512345601"
    assert submission["text"] == "hola"
    assert submission["gateway_id"] == str(gateway_id)


@pytest.mark.parametrize(
    ("to", "words"),
    [
        ("+525512345611", ["UNDELIVERABLE"]),
        ("+525512345616", ["UNDELIVERABLE"]),
        ("+525512345614", []),
        ("+525512345615", ["DELIVERED", "DELIVERED"]),
    ],
)
def test_conceptomovil_outcomes(sim: Simulator, api: FakeApi, to: str, words: list[str]) -> None:
    response = conceptomovil_send(sim, to, reference())
    assert response.status_code == 200
    gateway_id = response.json()["id"]
    wait_until(lambda: len(conceptomovil_receipts(api, gateway_id)) >= len(words))
    receipts = conceptomovil_receipts(api, gateway_id)
    assert [item["statusDelivery"] for item in receipts] == words


def test_vibes_default_posts_system_then_handset(sim: Simulator, api: FakeApi) -> None:
    ref = reference()
    response = vibes_send(sim, api, "+18475551201", ref)
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "mtMessageRsp"
    gateway_id = root.get("messageId") or ""
    assert str(uuid.UUID(gateway_id)) == gateway_id
    wait_until(lambda: len(vibes_receipts(api, gateway_id)) >= 2)
    time.sleep(DELAY_MS * 3 / 1000)
    receipts = vibes_receipts(api, gateway_id)
    # `Carrier` with isError="false" is delivery (SPEC 2.2): in progress is `System`.
    assert [r["root"].findtext("type") for r in receipts] == ["System", "Handset"]
    assert [smsbridge_status(r["root"]) for r in receipts] == [Status.ENROUTE, Status.DELIVERED]
    for receipt in receipts:
        assert receipt["request"]["path"] == "/dlr/vibes"
        assert receipt["request"]["query"]["token"] == ["vibes-secret"]
        root = receipt["root"]
        assert root.tag == "mtMessageResponse"
        assert root.get("submitterMessageId") == ref
        assert root.get("receiptDate")
        status = root.find("status")
        assert status is not None
        assert status.get("isError") == "false"
    [submission] = sim_submissions(sim, ref)
    assert submission["sender"] == "98765"
    assert submission["to"] == "+18475551201"


def smsbridge_status(root: ET.Element) -> Status:
    """The canonical status smsbridge reads from one of the simulator's Vibes receipts."""
    return vibes.parse_receipt(safexml.parse(ET.tostring(root))).status


@pytest.mark.parametrize(
    ("ending", "statuses"),
    [
        ("01", [Status.ENROUTE, Status.DELIVERED]),
        ("11", [Status.ENROUTE, Status.UNDELIVERABLE]),
        ("14", [Status.ENROUTE]),
        ("16", [Status.ENROUTE, Status.UNDELIVERABLE]),
    ],
)
def test_vibes_receipts_keep_the_magic_numbers_promises(
    sim: Simulator, api: FakeApi, ending: str, statuses: list[Status]
) -> None:
    """Read by smsbridge's own Vibes mapping, the receipts end as SPEC 9 promises (`16`: Vibes
    has no expiry word, an error receipt is undeliverable)."""
    response = vibes_send(sim, api, f"+184755512{ending}", reference())
    gateway_id = ET.fromstring(response.content).get("messageId") or ""
    wait_until(lambda: len(vibes_receipts(api, gateway_id)) >= len(statuses))
    time.sleep(DELAY_MS * 3 / 1000)
    receipts = vibes_receipts(api, gateway_id)
    assert [smsbridge_status(r["root"]) for r in receipts] == statuses


def test_vibes_18_fails_on_short_code_and_delivers_on_long_code(
    sim: Simulator, api: FakeApi
) -> None:
    short = vibes_send(sim, api, "+18475551218", reference())
    long = vibes_send(sim, api, "+18475551218", reference(), carrier="vibes-longcode")
    short_id = ET.fromstring(short.content).get("messageId") or ""
    long_id = ET.fromstring(long.content).get("messageId") or ""
    wait_until(lambda: len(vibes_receipts(api, short_id)) >= 2)
    wait_until(lambda: len(vibes_receipts(api, long_id)) >= 2)
    failure = vibes_receipts(api, short_id)[-1]["root"]
    assert attribute(failure, "status", "isError") == "true"
    assert failure.findtext("status/internalErrorCode") == "255"
    assert failure.findtext("status/errorCode")
    assert failure.findtext("status/description")
    success = vibes_receipts(api, long_id)[-1]["root"]
    assert success.findtext("type") == "Handset"
    assert attribute(success, "status", "isError") == "false"
    assert vibes_receipts(api, long_id)[-1]["request"]["path"] == "/dlr/vibes-longcode"


def vibes_forwarding(
    sim: Simulator, api: FakeApi, ending: str, count: int
) -> tuple[str, list[ET.Element]]:
    """Submit with alternate delivery asked; the original's id and every receipt about it (its
    own and its alternate's), in the order they arrived."""
    response = vibes_send(sim, api, f"+184455512{ending}", reference(), alternate_delivery=True)
    original = ET.fromstring(response.content).get("messageId") or ""

    def about_it() -> list[ET.Element]:
        posted = api.requests_where(lambda r: r["path"].startswith("/dlr/vibes"))
        roots = [ET.fromstring(item["body"]) for item in posted]
        return [
            root
            for root in roots
            if original in (root.get("messageId"), root.get("fwdFromMessageId"))
        ]

    wait_until(lambda: len(about_it()) >= count)
    time.sleep(DELAY_MS * 3 / 1000)
    return original, about_it()


def test_vibes_21_the_carrier_forwards_by_itself_original_receipt_first(
    sim: Simulator, api: FakeApi
) -> None:
    original, receipts = vibes_forwarding(sim, api, "21", 3)
    forward, *alternate = receipts
    alternate_id = forward.get("fwdToMessageId") or ""
    assert forward.get("messageId") == original
    assert alternate_id and alternate_id != original
    assert attribute(forward, "status", "isError") == "true"
    assert [r.findtext("type") for r in alternate] == ["System", "Handset"]
    for root in alternate:
        assert root.get("messageId") == alternate_id
        assert root.get("fwdFromMessageId") == original


def test_vibes_22_the_alternates_handset_comes_first(sim: Simulator, api: FakeApi) -> None:
    original, receipts = vibes_forwarding(sim, api, "22", 2)
    first, second = receipts
    assert first.get("fwdFromMessageId") == original and first.findtext("type") == "Handset"
    assert second.get("messageId") == original and second.get("fwdToMessageId")


def test_vibes_23_only_the_alternates_final(sim: Simulator, api: FakeApi) -> None:
    original, receipts = vibes_forwarding(sim, api, "23", 1)
    [final] = receipts
    assert final.get("fwdFromMessageId") == original
    assert final.findtext("type") == "Handset"


def test_vibes_24_the_alternate_fails(sim: Simulator, api: FakeApi) -> None:
    _, receipts = vibes_forwarding(sim, api, "24", 2)
    forward, failure = receipts
    assert forward.get("fwdToMessageId") == failure.get("messageId")
    assert attribute(failure, "status", "isError") == "true"


def test_vibes_forwards_only_when_alternate_delivery_was_asked(
    sim: Simulator, api: FakeApi
) -> None:
    ref = reference()
    response = vibes_send(sim, api, "+18445551221", ref)
    gateway_id = ET.fromstring(response.content).get("messageId") or ""
    wait_until(lambda: len(vibes_receipts(api, gateway_id)) >= 2)
    time.sleep(DELAY_MS * 3 / 1000)
    receipts = [r["root"] for r in vibes_receipts(api, gateway_id)]
    assert all(root.get("fwdToMessageId") is None for root in receipts)
    assert attribute(receipts[-1], "status", "isError") == "true"
    assert sim_submissions(sim, ref)[0]["alternate_delivery"] is False


def test_vibes_16_expired(sim: Simulator, api: FakeApi) -> None:
    response = vibes_send(sim, api, "+18475551216", reference())
    gateway_id = ET.fromstring(response.content).get("messageId") or ""
    wait_until(lambda: len(vibes_receipts(api, gateway_id)) >= 2)
    root = vibes_receipts(api, gateway_id)[-1]["root"]
    assert root.findtext("status/description") == "expired"
    assert attribute(root, "status", "isError") == "true"


def test_12_rejects_in_each_format(sim: Simulator, api: FakeApi) -> None:
    smart = smartswitch_send(sim, "+380671234512", reference(), timeout=5)
    assert smart.status_code == 400
    assert smart.json()["errors"][0]["code"]
    assert "data" not in smart.json()
    concepto = conceptomovil_send(sim, "+525512345612", reference())
    assert concepto.status_code == 400
    assert concepto.json()["status"] == "error"
    assert concepto.json()["message"]
    vibes = vibes_send(sim, api, "+18475551212", reference())
    assert vibes.status_code == 400
    error = ET.fromstring(vibes.content)
    assert error.tag == "error"
    assert error.get("code")
    assert error.get("description")
    ref = reference()
    ip2sms = ip2sms_send(sim, "+380671234512", ref)
    assert ip2sms.status_code == 200
    status = ET.fromstring(ip2sms.content)
    assert status.get("ext_id") == ref
    state = status.find("state")
    assert state is not None
    assert state.text == "Rejected"
    assert state.get("error") == "rejected by operator"
    # A retry of a refused reference is refused again, and nothing was taken.
    assert smartswitch_send(sim, "+380671234512", ref, timeout=5).status_code == 400
    assert all(not item["taken"] for item in sim.submissions())


def test_13_answers_503_twice_then_accepts_and_delivers(sim: Simulator, api: FakeApi) -> None:
    ref = reference()
    answers = [smartswitch_send(sim, "+380671234513", ref, timeout=5) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [503, 503, 200]
    gateway_id = answers[2].json()["message_id"]
    wait_until(lambda: len(smartswitch_states(api, gateway_id)) >= 2)
    assert smartswitch_states(api, gateway_id) == ["enroute", "delivered"]
    assert [item["taken"] for item in sim_submissions(sim, ref)] == [False, False, True]
    # The same through ip2sms: 503 twice, then Accepted.
    ip_ref = reference()
    codes = [ip2sms_send(sim, "+380671234513", ip_ref).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_an_outage_answers_503_for_its_seconds_and_lists_the_refused_submissions(
    sim: Simulator, api: FakeApi
) -> None:
    """SPEC 9's outage knob: that carrier's submit endpoint answers 503 for N seconds (a DELETE
    ends it early); the refused submissions are listed with taken: false."""
    ref = reference()
    started = requests.post(f"{sim.url}/_sim/outage/smartswitch?seconds=30", timeout=5)
    assert started.status_code == 200
    assert started.json() == {"carrier": "smartswitch", "outage_seconds": 30.0}
    answers = [smartswitch_send(sim, "+380671234501", ref, timeout=5) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [503, 503]
    # Another carrier is not in the outage.
    assert conceptomovil_send(sim, "+525512345601", reference()).status_code == 200
    ended = requests.delete(f"{sim.url}/_sim/outage/smartswitch", timeout=5)
    assert ended.status_code == 200
    assert smartswitch_send(sim, "+380671234501", ref, timeout=5).status_code == 200
    listed = requests.get(f"{sim.url}/_sim/submissions?reference={ref}", timeout=5).json()
    assert [(item["taken"], item["answer"]) for item in listed] == [
        (False, "outage"),
        (False, "outage"),
        (True, "accepted"),
    ]
    # A short outage ends by itself.
    requests.post(f"{sim.url}/_sim/outage/smartswitch?seconds=0.3", timeout=5)
    assert smartswitch_send(sim, "+380671234501", reference(), timeout=5).status_code == 503
    time.sleep(0.4)
    assert smartswitch_send(sim, "+380671234501", reference(), timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("POST", "/_sim/outage/smartswitch", 400),
        ("POST", "/_sim/outage/smartswitch?seconds=soon", 400),
        ("POST", "/_sim/outage/smartswitch?seconds=-1", 400),
        ("POST", "/_sim/outage/nosuchcarrier?seconds=5", 404),
        ("GET", "/_sim/outage/smartswitch", 405),
    ],
)
def test_an_outage_request_it_cannot_follow_is_refused(
    sim: Simulator, method: str, target: str, status: int
) -> None:
    assert requests.request(method, f"{sim.url}{target}", timeout=5).status_code == status


def test_15_posts_four_receipts_out_of_order(sim: Simulator, api: FakeApi) -> None:
    response = smartswitch_send(sim, "+380671234515", reference(), timeout=5)
    gateway_id = response.json()["message_id"]
    wait_until(lambda: len(smartswitch_states(api, gateway_id)) >= 4)
    time.sleep(DELAY_MS * 3 / 1000)
    assert smartswitch_states(api, gateway_id) == ["delivered", "enroute", "delivered", "enroute"]
    vibes = vibes_send(sim, api, "+18475551215", reference())
    vibes_id = ET.fromstring(vibes.content).get("messageId") or ""
    wait_until(lambda: len(vibes_receipts(api, vibes_id)) >= 4)
    kinds = [r["root"].findtext("type") for r in vibes_receipts(api, vibes_id)]
    assert kinds == ["Handset", "System", "Handset", "System"]


def test_17_late_answers_dedupe_then_delivers_once(sim: Simulator, api: FakeApi) -> None:
    ref = reference()
    with pytest.raises(requests.ReadTimeout):
        smartswitch_send(sim, "+380671234517", ref, timeout=(2, 0.1))
    started = time.monotonic()
    second = smartswitch_send(sim, "+380671234517", ref, timeout=5)
    assert time.monotonic() - started >= LATE_MS / 1000
    records = sim_submissions(sim, ref)
    gateway_id = records[0]["gateway_id"]
    assert second.status_code == 200
    assert second.json()["message_id"] == gateway_id
    time.sleep(DELAY_MS * 3 / 1000)
    assert smartswitch_states(api, gateway_id) == []  # nothing delivered before an in-time answer
    started = time.monotonic()
    third = smartswitch_send(sim, "+380671234517", ref, timeout=5)
    assert time.monotonic() - started < LATE_MS / 1000
    assert third.json()["message_id"] == gateway_id
    wait_until(lambda: len(smartswitch_states(api, gateway_id)) >= 2)
    time.sleep(DELAY_MS * 4 / 1000)
    assert smartswitch_states(api, gateway_id) == ["enroute", "delivered"]
    records = sim_submissions(sim, ref)
    assert [item["taken"] for item in records] == [True, False, False]
    assert {item["gateway_id"] for item in records} == {gateway_id}


def test_repeat_of_a_taken_reference_sends_nothing_more(sim: Simulator, api: FakeApi) -> None:
    ref = reference()
    first = vibes_send(sim, api, "+18475551201", ref)
    second = vibes_send(sim, api, "+18475551201", ref)
    first_id = ET.fromstring(first.content).get("messageId") or ""
    assert ET.fromstring(second.content).get("messageId") == first_id
    wait_until(lambda: len(vibes_receipts(api, first_id)) >= 2)
    time.sleep(DELAY_MS * 4 / 1000)
    assert len(vibes_receipts(api, first_id)) == 2
    assert [item["taken"] for item in sim_submissions(sim, ref)] == [True, False]


def test_19_posts_delivered_before_answering(sim: Simulator, api: FakeApi) -> None:
    response = smartswitch_send(sim, "+380671234519", reference(), timeout=5)
    gateway_id = response.json()["message_id"]
    # No waiting: the receipt was posted and answered before the submission's answer.
    assert smartswitch_states(api, gateway_id) == ["delivered"]
    concepto = conceptomovil_send(sim, "+525512345619", reference())
    assert [r["statusDelivery"] for r in conceptomovil_receipts(api, concepto.json()["id"])] == [
        "DELIVERED"
    ]
    time.sleep(DELAY_MS * 3 / 1000)
    assert smartswitch_states(api, gateway_id) == ["delivered"]


def test_a_receipt_answered_5xx_is_posted_again(sim: Simulator, api: FakeApi) -> None:
    api.failing = 2
    response = smartswitch_send(sim, "+380671234501", reference(), timeout=5)
    gateway_id = response.json()["message_id"]
    # enroute answered 503 twice, posted again 1 s and 2 s later, then delivered after it.
    wait_until(lambda: "delivered" in smartswitch_states(api, gateway_id), timeout=10)
    assert smartswitch_states(api, gateway_id) == ["enroute"] * 3 + ["delivered"]
    listed = requests.get(f"{sim.url}/_sim/receipts?gateway_id={gateway_id}", timeout=5).json()
    assert [(r["state"], r["answer"]) for r in listed] == [
        ("enroute", "503"),
        ("enroute", "503"),
        ("enroute", "200"),
        ("delivered", "200"),
    ]


def test_a_receipt_posted_before_answering_is_posted_again_when_refused(
    sim: Simulator, api: FakeApi
) -> None:
    api.failing = 1
    response = smartswitch_send(sim, "+380671234519", reference(), timeout=5)
    gateway_id = response.json()["message_id"]
    assert smartswitch_states(api, gateway_id) == ["delivered"]
    wait_until(lambda: len(smartswitch_states(api, gateway_id)) == 2, timeout=5)
    assert smartswitch_states(api, gateway_id) == ["delivered", "delivered"]


def test_ip2sms_state_moves_with_time(api: FakeApi) -> None:
    delay = 200
    simulator = Simulator(
        api.url,
        load_local("config.json"),
        load_local("secrets.example.json"),
        delay_ms=delay,
        late_ms=LATE_MS,
    )
    simulator.start()
    try:
        ref = reference()
        response = ip2sms_send(simulator, "+380671234501", ref)
        assert response.status_code == 200
        root = ET.fromstring(response.content)
        gateway_id = root.get("id") or ""
        assert gateway_id.isdigit()
        assert root.get("ext_id") == ref
        assert root.get("date")
        assert root.findtext("state") == "Accepted"
        assert attribute(root, "state", "error") == ""
        stuck = ET.fromstring(ip2sms_send(simulator, "+380671234514", reference()).content)
        seen: list[str] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and (not seen or seen[-1] != "Delivered"):
            state, _ = ip2sms_state(simulator, gateway_id)
            if not seen or seen[-1] != state:
                seen.append(state)
            time.sleep(0.01)
        assert seen == ["Accepted", "Enroute", "Delivered"]
        assert ip2sms_state(simulator, stuck.get("id") or "")[0] == "Enroute"
        time.sleep(delay * 2 / 1000)
        assert ip2sms_state(simulator, stuck.get("id") or "")[0] == "Enroute"
        [submission] = sim_submissions(simulator, ref)
        assert submission["carrier"] == "ip2sms"
        assert submission["to"] == "+380671234501"
        assert submission["sender"] == "SMSBRIDGE"
        assert submission["gateway_id"] == gateway_id
        unknown = requests.post(
            f"{simulator.url}/ip2sms/status",
            data=b'<request id="123">status</request>',
            auth=SUBMIT_AUTH,
            timeout=5,
        )
        assert unknown.status_code == 404
        assert not api.requests_where(lambda r: r["path"] == "/dlr/ip2sms")
    finally:
        simulator.stop()


def test_ip2sms_failures_are_read_through_status(sim: Simulator) -> None:
    undeliverable = ET.fromstring(ip2sms_send(sim, "+380671234511", reference()).content)
    expired = ET.fromstring(ip2sms_send(sim, "+380671234516", reference()).content)
    wait_until(lambda: ip2sms_state(sim, undeliverable.get("id") or "")[0] == "Undeliverable")
    wait_until(lambda: ip2sms_state(sim, expired.get("id") or "")[0] == "Expired")


def test_bad_submit_credentials_are_401(sim: Simulator, api: FakeApi) -> None:
    wrong = ("smsbridge", "wrong")
    smart = smartswitch_send(sim, "+380671234501", reference(), auth=wrong, timeout=5)
    assert smart.status_code == 401
    assert smart.json()["errors"][0]["code"] == "authentication"
    assert conceptomovil_send(sim, "+525512345601", reference(), token="no").status_code == 401
    assert conceptomovil_send(sim, "+525512345601", reference(), api_key="no").status_code == 401
    assert vibes_send(sim, api, "+18475551201", reference(), auth=wrong).status_code == 401
    assert ip2sms_send(sim, "+380671234501", reference(), auth=wrong).status_code == 401
    anonymous = requests.post(
        f"{sim.url}/smartswitch/send", json={"to": "+380671234501", "text": "x"}, timeout=5
    )
    assert anonymous.status_code == 401
    status = requests.post(
        f"{sim.url}/ip2sms/status", data=b'<request id="1">status</request>', timeout=5
    )
    assert status.status_code == 401
    assert sim.submissions() == []


def test_malformed_submissions_are_400(sim: Simulator) -> None:
    smart = requests.post(
        f"{sim.url}/smartswitch/send", data=b"not json", auth=SUBMIT_AUTH, timeout=5
    )
    assert smart.status_code == 400
    assert smart.json()["errors"][0]["code"] == "invalid_parameter"
    vibes = requests.post(f"{sim.url}/vibes/send", data=b"<oops", auth=SUBMIT_AUTH, timeout=5)
    assert vibes.status_code == 400
    assert sim.submissions() == []


def test_unknown_paths_are_404(sim: Simulator) -> None:
    assert requests.post(f"{sim.url}/nobody/send", timeout=5).status_code == 404
    assert requests.post(f"{sim.url}/smartswitch/status", timeout=5).status_code == 404
    assert requests.get(f"{sim.url}/_sim/nothing", timeout=5).status_code == 404
    assert requests.get(f"{sim.url}/", timeout=5).status_code == 404


def test_back_office_callbacks_are_recorded(sim: Simulator) -> None:
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:urn="urn:toatech:agent"><soapenv:Body><urn:set_message_status>'
        "<user><now>2024-01-01T00:00:00Z</now><login>ofsc</login></user><messages>"
        "<message><message_id>101</message_id><status>delivered</status></message>"
        "<message><message_id>102</message_id><status>failed</status>"
        "<description>undeliverable</description></message>"
        "</messages></urn:set_message_status></soapenv:Body></soapenv:Envelope>"
    )
    ofsc = requests.post(
        f"{sim.url}/_sim/ofsc",
        data=envelope.encode(),
        headers={"Content-Type": "text/xml", "SOAPAction": "set_message_status"},
        timeout=5,
    )
    assert ofsc.status_code == 200
    assert ofsc.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(ofsc.content)
    soap = "{http://schemas.xmlsoap.org/soap/envelope/}"
    response = root.find(f"{soap}Body/{{urn:toatech:agent}}set_message_status_response")
    assert response is not None
    answers = response.findall("message_response")
    assert [item.findtext("message_id") for item in answers] == ["101", "102"]
    assert [item.findtext("result/code") for item in answers] == ["OK", "OK"]

    body = json.dumps({"message_id": "m-1", "status": "delivered"})
    callback = requests.post(
        f"{sim.url}/_sim/callback/demo",
        data=body,
        headers={"Content-Type": "application/json", "X-Smsbridge-Signature": "sha256=abc"},
        timeout=5,
    )
    assert callback.status_code == 200

    listed = requests.get(f"{sim.url}/_sim/callbacks", timeout=5)
    assert listed.status_code == 200
    assert listed.json() == sim.callbacks()
    first, second = listed.json()
    assert first["kind"] == "ofsc"
    assert first["path"] == "/_sim/ofsc"
    assert first["headers"]["SOAPAction"] == "set_message_status"
    assert first["operation"] == "set_message_status"
    assert [item["message_id"] for item in first["messages"]] == ["101", "102"]
    assert first["messages"][1]["description"] == "undeliverable"
    assert second["kind"] == "json"
    assert second["path"] == "/_sim/callback/demo"
    assert second["headers"]["X-Smsbridge-Signature"] == "sha256=abc"
    assert second["body"] == body
    assert second["json"] == {"message_id": "m-1", "status": "delivered"}
    assert second["at"]

    fault = requests.post(f"{sim.url}/_sim/ofsc", data=b"not xml", timeout=5)
    assert fault.status_code == 500
    assert b"Client" in fault.content


def test_back_office_fails_as_asked_per_path_and_query(sim: Simulator) -> None:
    def post(target: str) -> int:
        return requests.post(f"{sim.url}{target}", data=b"{}", timeout=5).status_code

    assert [post("/_sim/callback/a?fail=2") for _ in range(4)] == [500, 500, 200, 200]
    # Counted per path and query: another path, or another query, starts afresh.
    assert post("/_sim/callback/b?fail=2") == 500
    assert post("/_sim/callback/a?fail=2&x=1") == 500
    assert [post("/_sim/callback/c?fail=always") for _ in range(3)] == [503, 503, 503]
    calls = [c for c in sim.callbacks() if c["path"] == "/_sim/callback/a"]
    assert [(c["query"], c["answered"]) for c in calls] == [
        ("fail=2", 500),
        ("fail=2", 500),
        ("fail=2", 200),
        ("fail=2", 200),
        ("fail=2&x=1", 500),
    ]
    envelope = (
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soapenv:Body><set_message_status><user><login>ofsc</login></user><messages>"
        b"<message><message_id>7</message_id><status>delivered</status></message>"
        b"</messages></set_message_status></soapenv:Body></soapenv:Envelope>"
    )
    fault = requests.post(f"{sim.url}/_sim/ofsc?fail=1", data=envelope, timeout=5)
    assert fault.status_code == 500 and b"Fault" in fault.content
    ok = requests.post(f"{sim.url}/_sim/ofsc?fail=1", data=envelope, timeout=5)
    assert ok.status_code == 200 and b"<code>OK</code>" in ok.content
    missing = requests.post(f"{sim.url}/_sim/ofsc?code=NOT%20FOUND", data=envelope, timeout=5)
    assert b"<code>NOT FOUND</code>" in missing.content
    ofsc_calls = [c for c in sim.callbacks() if c["kind"] == "ofsc"]
    assert [c["answered"] for c in ofsc_calls] == [500, 200, 200]
    assert ofsc_calls[0]["user"] == {"login": "ofsc"}


def test_submissions_listing_and_reset(sim: Simulator) -> None:
    ref = reference()
    smartswitch_send(sim, "+380671234501", ref, timeout=5)
    listed = requests.get(f"{sim.url}/_sim/submissions", timeout=5)
    assert listed.status_code == 200
    assert listed.headers["Content-Type"] == "application/json"
    assert listed.json() == sim.submissions()
    [item] = listed.json()
    assert set(item) >= {
        "carrier",
        "reference",
        "to",
        "text",
        "sender",
        "taken",
        "gateway_id",
        "at",
    }
    filtered = requests.get(f"{sim.url}/_sim/submissions", params={"reference": ref}, timeout=5)
    assert [entry["reference"] for entry in filtered.json()] == [ref]
    assert requests.get(f"{sim.url}/_sim/submissions?carrier=vibes", timeout=5).json() == []
    assert requests.post(f"{sim.url}/_sim/reset", timeout=5).status_code == 200
    assert requests.get(f"{sim.url}/_sim/submissions", timeout=5).json() == []
    assert sim.callbacks() == []


def test_concurrent_submissions_get_distinct_ids(sim: Simulator) -> None:
    refs = [reference() for _ in range(40)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda ref: smartswitch_send(sim, "+380671234514", ref, timeout=5), refs)
        )
    assert all(answer.status_code == 200 for answer in answers)
    assert len({answer.json()["message_id"] for answer in answers}) == len(refs)
    assert len([item for item in sim.submissions() if item["taken"]]) == len(refs)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_receipt_failures_do_not_stop_the_simulator(caplog: pytest.LogCaptureFixture) -> None:
    simulator = Simulator(
        f"http://127.0.0.1:{closed_port()}",
        load_local("config.json"),
        load_local("secrets.example.json"),
        delay_ms=10,
        late_ms=LATE_MS,
    )
    simulator.start()
    try:
        assert smartswitch_send(simulator, "+380671234519", reference(), timeout=5).ok
        assert smartswitch_send(simulator, "+380671234501", reference(), timeout=5).ok
        wait_until(lambda: caplog.text.count("not posted") >= 3)
        assert "smartswitch-secret" not in caplog.text
        assert smartswitch_send(simulator, "+380671234501", reference(), timeout=5).ok
    finally:
        simulator.stop()


def test_stop_is_idempotent_and_cancels_pending_receipts(api: FakeApi) -> None:
    simulator = Simulator(
        api.url,
        load_local("config.json"),
        load_local("secrets.example.json"),
        delay_ms=200,
        late_ms=LATE_MS,
    )
    url = simulator.start()
    assert url == simulator.url
    gateway_id = smartswitch_send(simulator, "+380671234501", reference(), timeout=5).json()[
        "message_id"
    ]
    simulator.stop()
    simulator.stop()
    time.sleep(0.4)
    assert smartswitch_states(api, gateway_id) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_sim/submissions", timeout=2)


# ---- carrier outages (/_sim/outage)


def test_an_outage_answers_503_lists_the_refusals_and_ends_on_delete(sim: Simulator) -> None:
    started = requests.post(f"{sim.url}/_sim/outage/smartswitch?seconds=30", timeout=5)
    assert started.status_code == 200
    assert started.json() == {"carrier": "smartswitch", "outage_seconds": 30.0}
    try:
        ref = reference()
        assert smartswitch_send(sim, "+4915112345601", ref, timeout=5).status_code == 503
        # Other carriers are not affected.
        assert conceptomovil_send(sim, "+525512345601", reference()).status_code == 200
        refused = [s for s in sim.submissions() if s["reference"] == ref]
        assert [(s["carrier"], s["taken"], s["answer"]) for s in refused] == [
            ("smartswitch", False, "outage")
        ]
    finally:
        assert requests.delete(f"{sim.url}/_sim/outage/smartswitch", timeout=5).status_code == 200
    assert smartswitch_send(sim, "+4915112345601", ref, timeout=5).status_code == 200


def test_an_outage_ends_by_itself(sim: Simulator) -> None:
    answer = requests.post(f"{sim.url}/_sim/outage/smartswitch?seconds=0.2", timeout=5)
    assert answer.status_code == 200
    time.sleep(0.3)
    assert smartswitch_send(sim, "+4915112345601", reference(), timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/_sim/outage/nobody?seconds=5", 404),
        ("POST", "/_sim/outage/smartswitch?seconds=soon", 400),
        ("POST", "/_sim/outage/smartswitch?seconds=-1", 400),
        ("GET", "/_sim/outage/smartswitch", 405),
    ],
)
def test_a_bad_outage_request_is_refused(
    sim: Simulator, method: str, path: str, status: int
) -> None:
    assert requests.request(method, f"{sim.url}{path}", timeout=5).status_code == status
