"""Settings from the environment, and the clients/carriers/routes document with its secrets."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from smsbridge.config import (
    DEFAULT_STATUS_TIMEOUTS,
    AppConfig,
    ConfigError,
    Routes,
    Settings,
    parse_config,
)

LOCAL = Path(__file__).resolve().parents[2] / "local"


def _document() -> dict[str, Any]:
    text = (LOCAL / "config.json").read_text(encoding="utf-8")
    # The local stack puts the simulator's URL in; the document is checked as it deploys.
    result: dict[str, Any] = json.loads(text.replace("${SIM_URL}", "http://127.0.0.1:3001"))
    return result


def _secrets() -> dict[str, Any]:
    path = LOCAL / "secrets.example.json"
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


@pytest.fixture
def document() -> dict[str, Any]:
    return copy.deepcopy(_document())


@pytest.fixture
def secrets() -> dict[str, Any]:
    return copy.deepcopy(_secrets())


# --- Settings -------------------------------------------------------------------------------


def test_settings_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.messages_table == "smsbridge-messages"
    assert settings.status_timeout_seconds == 72 * 3600
    assert settings.submit_max_attempts == 5
    assert settings.poll_first_seconds == 60
    assert settings.poll_max_interval_seconds == 900
    assert settings.requeue_after_seconds == 120
    assert settings.store_otp_body is False
    assert settings.message_ttl_days == 90
    assert settings.orphan_ttl_days == 7
    assert settings.max_body_bytes == 256 * 1024


def test_settings_read_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MESSAGES_TABLE": "t",
            "DISPATCH_QUEUE_URL": "http://127.0.0.1:5000/123/q",
            "PUBLIC_BASE_URL": "https://api.example.com/",
            "STATUS_TIMEOUT_SECONDS": "30",
            "SUBMIT_MAX_ATTEMPTS": "2",
            "POLL_FIRST_SECONDS": "0",
            "STORE_OTP_BODY": "TRUE",
        }
    )
    assert settings.messages_table == "t"
    assert settings.dispatch_queue_url == "http://127.0.0.1:5000/123/q"
    assert settings.public_base_url == "https://api.example.com"
    assert settings.status_timeout_seconds == 30
    assert settings.submit_max_attempts == 2
    assert settings.poll_first_seconds == 0
    assert settings.store_otp_body is True


def test_settings_empty_values_fall_back_to_defaults() -> None:
    assert Settings.from_env({"STATUS_TIMEOUT_SECONDS": "", "STORE_OTP_BODY": ""}) == Settings()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("STATUS_TIMEOUT_SECONDS", "72h"),
        ("STATUS_TIMEOUT_SECONDS", "0"),
        ("SUBMIT_MAX_ATTEMPTS", "0"),
        ("SUBMIT_MAX_ATTEMPTS", "1.5"),
        ("POLL_FIRST_SECONDS", "-1"),
        ("REQUEUE_AFTER_SECONDS", "soon"),
        ("MAX_BODY_BYTES", "0"),
        ("STORE_OTP_BODY", "maybe"),
    ],
)
def test_settings_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Settings.from_env({key: value})


# --- the document ---------------------------------------------------------------------------


def test_local_configuration_parses(document: dict[str, Any], secrets: dict[str, Any]) -> None:
    config = parse_config(document, secrets)
    assert isinstance(config, AppConfig)
    assert set(config.carriers) == {
        "smartswitch",
        "conceptomovil",
        "vibes",
        "vibes-longcode",
        "ip2sms",
    }
    assert set(config.clients) == {"demo", "ofsc", "partner", "support"}
    assert config.clients["support"].kind == "support"
    assert config.clients["support"].token == "support-token"
    assert config.clients["partner"].token == "partner-token"
    assert config.search_index_secret

    vibes = config.carriers["vibes"]
    assert vibes.format == "vibes"
    assert vibes.alternate == "vibes-longcode"
    assert vibes.sender_type == "SC"
    assert config.carriers["vibes-longcode"].sender_type == "LC"
    assert vibes.dlr_login == "vibes"
    assert vibes.dlr_password == "vibes-secret"
    assert vibes.read_timeout == 1.5
    assert vibes.connect_timeout == 3.05

    ip2sms = config.carriers["ip2sms"]
    assert ip2sms.poll is True
    assert ip2sms.status_url
    assert config.carriers["smartswitch"].poll is False
    assert config.carriers["smartswitch"].dlr_password == "smartswitch-secret"
    assert config.carriers["conceptomovil"].api_key == "sim-api-key"

    demo = config.clients["demo"]
    assert demo.kind == "json"
    assert demo.token == "demo-token"
    assert demo.callback_secret == "demo-callback-secret"
    assert demo.senders == ("SMSBRIDGE", "DEMO")
    assert demo.default_country == "UA"

    ofsc = config.clients["ofsc"]
    assert ofsc.kind == "ofsc"
    assert ofsc.workflow == "advanced"
    assert ofsc.auth_hash == "sha256"
    assert ofsc.login == "ofsc"
    assert ofsc.password == "ofsc-secret"

    assert config.routes.default == "smartswitch"
    assert config.routes.by_prefix == {
        "+380": "ip2sms",
        "+52": "conceptomovil",
        "+1": "vibes",
        "+1844": "vibes-longcode",
    }
    assert config.status_timeout("2FA", 999) == 1800
    assert config.status_timeout("verification", 999) == 1800
    assert config.status_timeout("text", 999) == 999


def test_local_configuration_has_the_limits_and_failover_demo(
    document: dict[str, Any], secrets: dict[str, Any]
) -> None:
    config = parse_config(document, secrets)
    partner = config.clients["partner"]
    assert partner.token == "partner-token"
    assert partner.allowed_countries == ("GB",)
    assert partner.daily_message_limit == 20
    assert partner.verification_per_number_per_hour == 5
    demo = config.clients["demo"]
    assert (demo.daily_message_limit, demo.allowed_countries) == (None, ())
    assert config.carriers["smartswitch"].failover == "conceptomovil"
    assert config.carriers["conceptomovil"].failover is None
    assert config.blocked_prefixes == ("+881", "+882")


def test_settings_circuit_defaults_and_environment() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.circuit_failures,
        defaults.circuit_window_seconds,
        defaults.circuit_open_seconds,
    ) == (5, 60, 30)
    env = {"CIRCUIT_FAILURES": "3", "CIRCUIT_WINDOW_SECONDS": "10", "CIRCUIT_OPEN_SECONDS": "2"}
    settings = Settings.from_env(env)
    assert (
        settings.circuit_failures,
        settings.circuit_window_seconds,
        settings.circuit_open_seconds,
    ) == (3, 10, 2)
    for key in env:
        with pytest.raises(ConfigError, match=key):
            Settings.from_env({key: "0"})


@pytest.mark.parametrize(
    ("where", "key", "value", "named"),
    [
        ("carrier", "failover", "nobody", "carriers.smartswitch.failover"),
        ("carrier", "failover", "smartswitch", "carriers.smartswitch.failover"),
        ("client", "verification_per_number_per_hour", 0, "verification_per_number_per_hour"),
        ("client", "verification_per_number_per_hour", "5", "verification_per_number_per_hour"),
        ("client", "daily_message_limit", -1, "clients.demo.daily_message_limit"),
        ("client", "daily_message_limit", 2.5, "clients.demo.daily_message_limit"),
        ("client", "allowed_countries", "GB", "clients.demo.allowed_countries"),
        ("client", "allowed_countries", ["GBR"], "clients.demo.allowed_countries"),
        ("client", "blocked_prefixes", ["881"], "clients.demo.blocked_prefixes"),
        ("client", "blocked_prefixes", ["+88x"], "clients.demo.blocked_prefixes"),
        ("document", "blocked_prefixes", "+881", "blocked_prefixes"),
    ],
)
def test_bad_limits_and_failover_name_the_key(
    document: dict[str, Any], where: str, key: str, value: Any, named: str
) -> None:
    target = {
        "carrier": document["carriers"]["smartswitch"],
        "client": document["clients"]["demo"],
        "document": document,
    }[where]
    target[key] = value
    assert named in _refused(document)


def test_a_null_limit_means_no_limit(document: dict[str, Any]) -> None:
    document["clients"]["demo"]["verification_per_number_per_hour"] = None
    assert parse_config(document, {}).clients["demo"].verification_per_number_per_hour is None


def test_secrets_are_optional(document: dict[str, Any]) -> None:
    config = parse_config(document, {})
    assert config.carriers["vibes"].password == ""
    assert config.clients["demo"].token == ""
    # The OFSC login defaults to the client's name.
    assert config.clients["ofsc"].login == "ofsc"


def test_status_timeouts_default_for_otp_types(document: dict[str, Any]) -> None:
    del document["status_timeouts"]
    config = parse_config(document, {})
    assert config.status_timeouts == DEFAULT_STATUS_TIMEOUTS


def test_a_carrier_without_format_poll_defaults_by_format(document: dict[str, Any]) -> None:
    del document["carriers"]["ip2sms"]["poll"]
    assert parse_config(document, {}).carriers["ip2sms"].poll is True


def _refused(document: dict[str, Any], secrets: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, secrets or {})
    return str(caught.value)


def test_unknown_format_names_the_key(document: dict[str, Any]) -> None:
    document["carriers"]["vibes"]["format"] = "smpp"
    message = _refused(document)
    assert "carriers.vibes.format" in message
    assert "smpp" in message


def test_missing_format_names_the_key(document: dict[str, Any]) -> None:
    del document["carriers"]["smartswitch"]["format"]
    assert "carriers.smartswitch.format" in _refused(document)


def test_unknown_alternate_names_the_key(document: dict[str, Any]) -> None:
    document["carriers"]["vibes"]["alternate"] = "nobody"
    message = _refused(document)
    assert "carriers.vibes.alternate" in message
    assert "nobody" in message


def test_alternate_of_the_wrong_type_names_the_key(document: dict[str, Any]) -> None:
    document["carriers"]["vibes"]["alternate"] = ["vibes-longcode"]
    assert "carriers.vibes.alternate" in _refused(document)


def test_route_to_an_unknown_carrier_names_the_key(document: dict[str, Any]) -> None:
    document["routes"]["by_prefix"]["+44"] = "nobody"
    message = _refused(document)
    assert "routes.by_prefix.+44" in message
    assert "nobody" in message


def test_default_route_to_an_unknown_carrier_names_the_key(document: dict[str, Any]) -> None:
    document["routes"]["default"] = "nobody"
    assert "routes.default" in _refused(document)


def test_bad_by_type_key_names_the_key(document: dict[str, Any]) -> None:
    document["routes"]["by_type"]["otp"] = "smartswitch"
    assert "routes.by_type.otp" in _refused(document)


def test_by_type_to_an_unknown_carrier_names_the_key(document: dict[str, Any]) -> None:
    document["routes"]["by_type"]["2FA"] = "nobody"
    assert "routes.by_type.2FA" in _refused(document)


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("carriers", "vibes", "sender_type"), "XX", "carriers.vibes.sender_type"),
        (("carriers", "vibes", "read_timeout"), 0, "carriers.vibes.read_timeout"),
        (("carriers", "vibes", "max_per_second"), "fast", "carriers.vibes.max_per_second"),
        (("carriers", "vibes", "submit_url"), "", "carriers.vibes.submit_url"),
        (("carriers", "ip2sms", "status_url"), "", "carriers.ip2sms.status_url"),
        (("carriers", "vibes", "sender"), 98765, "carriers.vibes.sender"),
        (("clients", "demo", "kind"), "rest", "clients.demo.kind"),
        (("clients", "ofsc", "workflow"), "fast", "clients.ofsc.workflow"),
        (("clients", "ofsc", "auth_hash"), "sha1", "clients.ofsc.auth_hash"),
        (("clients", "demo", "senders"), "SMSBRIDGE", "clients.demo.senders"),
        (("status_timeouts", "2FA"), 0, "status_timeouts.2FA"),
        (("status_timeouts", "otp"), 60, "status_timeouts.otp"),
        (("status_timeouts", "2FA"), True, "status_timeouts.2FA"),
        (("carriers", "ip2sms", "poll"), "false", "carriers.ip2sms.poll"),
        (("routes", "by_prefix", "+44"), ["vibes"], "routes.by_prefix.+44"),
    ],
)
def test_bad_values_name_the_key(
    document: dict[str, Any], path: tuple[str, ...], value: object, key: str
) -> None:
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert key in _refused(document)


def test_bad_secrets_name_the_key(document: dict[str, Any], secrets: dict[str, Any]) -> None:
    secrets["carriers"]["vibes"] = "vibes-secret"
    assert "secrets.carriers.vibes" in _refused(document, secrets)
    secrets = _secrets()
    secrets["clients"]["demo"]["token"] = 12345
    assert "secrets.clients.demo.token" in _refused(document, secrets)


def test_no_carriers_is_refused(document: dict[str, Any]) -> None:
    document["carriers"] = {}
    assert "carriers" in _refused(document)


def test_a_section_that_is_not_an_object_is_refused(document: dict[str, Any]) -> None:
    document["routes"] = ["smartswitch"]
    assert "routes" in _refused(document)


# --- routing --------------------------------------------------------------------------------


def test_routes_longest_prefix_wins() -> None:
    routes = Routes(
        default="smartswitch",
        by_prefix={"+1": "vibes", "+380": "ip2sms", "+38067": "conceptomovil", "+52": "cm"},
    )
    assert routes.carrier_for("+380671234501", "text") == "conceptomovil"
    assert routes.carrier_for("+380501234501", "text") == "ip2sms"
    assert routes.carrier_for("+12024561111", "text") == "vibes"
    assert routes.carrier_for("+525512345678", "text") == "cm"
    assert routes.carrier_for("+442083661177", "text") == "smartswitch"


def test_routes_by_type_comes_first() -> None:
    routes = Routes(default="smartswitch", by_type={"2FA": "vibes"}, by_prefix={"+380": "ip2sms"})
    assert routes.carrier_for("+380671234501", "2FA") == "vibes"
    assert routes.carrier_for("+380671234501", "verification") == "ip2sms"
    assert routes.carrier_for("+442083661177", "2FA") == "vibes"


def test_local_routes(document: dict[str, Any]) -> None:
    routes = parse_config(document, {}).routes
    assert routes.carrier_for("+380671234501", "text") == "ip2sms"
    assert routes.carrier_for("+525512345678", "verification") == "conceptomovil"
    assert routes.carrier_for("+12024561111", "2FA") == "vibes"
    assert routes.carrier_for("+442083661177", "text") == "smartswitch"


def test_a_configured_callback_url_obeys_the_address_policy() -> None:
    from smsbridge.config import ConfigError, parse_config

    def document(url: str, allowed: list[str]) -> dict[str, object]:
        return {
            "clients": {
                "ofsc": {"kind": "ofsc", "callback_url": url, "callback_hosts_allowed": allowed}
            },
            "carriers": {"c": {"format": "smartswitch", "submit_url": "https://c.example/s"}},
            "routes": {"default": "c"},
        }

    with pytest.raises(ConfigError, match=r"clients\.ofsc\.callback_url .*64:ff9b::/96"):
        parse_config(document("https://[64:ff9b::a9fe:a9fe]/soap", []), {})
    with pytest.raises(ConfigError, match=r"clients\.ofsc\.callback_url must be an https URL"):
        parse_config(document("http://ofsc.example/soap", []), {})
    config = parse_config(document("http://127.0.0.1:3001/_sim/ofsc", ["127.0.0.1"]), {})
    assert config.clients["ofsc"].callback_url == "http://127.0.0.1:3001/_sim/ofsc"


def test_load_config_reads_both_stores_and_names_what_is_missing() -> None:
    import boto3
    from moto import mock_aws

    from smsbridge.config import load_config

    settings = Settings(config_parameter="/smsbridge/config", secrets_id="smsbridge/secrets")
    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-1")
        secretsmanager = boto3.client("secretsmanager", region_name="eu-west-1")
        with pytest.raises(ConfigError, match="/smsbridge/config does not exist"):
            load_config(settings, ssm, secretsmanager)
        ssm.put_parameter(Name="/smsbridge/config", Value=json.dumps(_document()), Type="String")
        with pytest.raises(ConfigError, match="smsbridge/secrets does not exist"):
            load_config(settings, ssm, secretsmanager)
        secretsmanager.create_secret(Name="smsbridge/secrets", SecretString="[]")
        with pytest.raises(ConfigError, match="smsbridge/secrets must hold a JSON object"):
            load_config(settings, ssm, secretsmanager)
        secretsmanager.put_secret_value(
            SecretId="smsbridge/secrets", SecretString=json.dumps(_secrets())
        )

        config = load_config(settings, ssm, secretsmanager)

    assert config.clients["demo"].token == "demo-token"
    assert "smartswitch" in config.carriers
