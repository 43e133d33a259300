"""Settings from the environment: parsed once, bad values named, secrets out of repr."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from yarl import URL

from proxy.settings import ENVIRONMENT, SettingsError, load_settings


def test_defaults_are_the_documented_ones():
    settings = load_settings({"HOME": "/home/u"})
    assert settings.ollama_base_url == URL("http://127.0.0.1:11434")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.embedded_database
    assert str(settings.data_dir) == "/home/u/.local/share/ollama-gateway"
    assert (settings.log_level, settings.log_format, settings.access_token_expire_minutes) == ("INFO", "text", 60)
    assert (settings.max_json_body_size, settings.max_body_size) == (64 * 1024**2, 100 * 1024**2)
    assert (settings.header_read_timeout, settings.body_idle_timeout, settings.body_read_timeout) == (30, 30, 300)


@pytest.mark.parametrize(
    "variable, value, fragment",
    [
        ("GATEWAY_PORT", "abc", "not a port number"),
        ("GATEWAY_PORT", "70000", "not a port number"),
        ("OLLAMA_BASE_URL", "ftp://x", "http(s) URL"),
        ("OLLAMA_BASE_URL", "localhost:11434", "http(s) URL"),
        ("DATABASE_URL", "mysql://x", "postgresql://"),
        ("LOG_LEVEL", "LOUD", "not one of"),
        ("LOG_FORMAT", "xml", "not one of"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "-1", "greater than 0"),
        ("SECRET_KEY", "short", "at least 32"),
        ("DEMO_ADMIN_KEY", "has spaces in it ok", "without spaces"),
        ("LOG_RETENTION_DAYS", "-1", "0 or more"),
        ("LOG_RETENTION_DAYS", "90d", "0 or more"),
        ("MAX_JSON_BODY_SIZE", "0", "greater than 0"),
        ("HEADER_READ_TIMEOUT", "0", "greater than 0"),
        ("BODY_IDLE_TIMEOUT", "nan", "finite"),
        ("BODY_READ_TIMEOUT", "inf", "finite"),
    ],
)
def test_a_bad_value_names_its_variable(variable, value, fragment):
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert str(caught.value).startswith(f"{variable}: ")
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_database_url_value_is_never_echoed():
    with pytest.raises(SettingsError) as caught:
        load_settings({"DATABASE_URL": "mysql://root:hunter2@db"})
    assert "hunter2" not in str(caught.value)


def test_external_database_requires_a_secret():
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings({"DATABASE_URL": "postgresql://db/x"})


def test_secrets_stay_out_of_repr():
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://u:dbpassword@db/x",
            "SECRET_KEY": "s" * 40,
            "DEMO_ADMIN_KEY": "demo-admin-secret-value",
            "DEMO_USER_KEY": "demo-user-secret-value",
            "OLLAMA_BASE_URL": "http://gpu:ollamapassword@gpu.example:11434",
        }
    )
    text = repr(settings)
    for secret in ("dbpassword", "s" * 40, "demo-admin-secret-value", "demo-user-secret-value", "ollamapassword"):
        assert secret not in text
    assert "ollamapassword" not in settings.ollama_display_url  # what the banner and warnings print


@pytest.mark.parametrize("variable", ["KEY_CACHE_TTL", "OLLAMA_CONNECT_TIMEOUT", "OLLAMA_READ_TIMEOUT"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "soon"])
def test_a_duration_is_a_positive_finite_number(variable, value):
    with pytest.raises(SettingsError) as refused:
        load_settings({variable: value})
    assert str(refused.value).startswith(variable + ": ")


def test_cli_overrides_win_and_none_means_not_given():
    settings = load_settings({"GATEWAY_PORT": "9000"}).with_overrides(port=9100, host=None)
    assert (settings.port, settings.host) == (9100, "127.0.0.1")


def test_trusted_proxies_setting_parses_addresses_and_networks():
    settings = load_settings({"TRUSTED_PROXIES": " 127.0.0.1, 172.28.0.0/24 ,,::1 "})
    expected = ("127.0.0.1/32", "172.28.0.0/24", "::1/128")
    assert settings.trusted_proxies == tuple(ipaddress.ip_network(n) for n in expected)
    assert load_settings({}).trusted_proxies == ()


@pytest.mark.parametrize("value", ["nginx", "10.1.2.3/8", "1.2.3.4:80", "10.0.0.0/33"])
def test_a_bad_trusted_proxy_names_the_variable(value):
    with pytest.raises(SettingsError) as caught:
        load_settings({"TRUSTED_PROXIES": value})
    assert str(caught.value).startswith("TRUSTED_PROXIES: ")


def test_operator_settings_parse():
    settings = load_settings(
        {
            "CORS_ORIGINS": "https://App.Example.com:443, http://localhost:3000/, https://app.example.com",
            "GATEWAY_PLUGINS": "examples.tenant_tag:tenant_required, pkg.mod:factory",
            "METRICS_TOKEN": "scrape-token-0123456789",
            "ACCESS_LOG": "off",
        }
    )
    # The form a browser sends in Origin: lower case, no default port, no trailing slash.
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert settings.plugins == ("examples.tenant_tag:tenant_required", "pkg.mod:factory")
    assert settings.access_log is False
    assert "scrape-token" not in repr(settings)
    assert (load_settings({}).cors_origins, load_settings({}).access_log) == ((), True)


@pytest.mark.parametrize(
    "variable, value, fragment",
    [
        ("CORS_ORIGINS", "app.example.com", "not an origin"),
        ("CORS_ORIGINS", "https://app.example.com/path", "not an origin"),
        ("GATEWAY_PLUGINS", "examples/tenant_tag.py", "package.module:factory"),
        ("GATEWAY_PLUGINS", "examples.tenant_tag", "package.module:factory"),
        ("METRICS_TOKEN", "short", "at least 16"),
        ("ACCESS_LOG", "maybe", "true or false"),
    ],
)
def test_a_bad_operator_setting_names_its_variable(variable, value, fragment):
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert str(caught.value).startswith(f"{variable}: ") and fragment in str(caught.value)


def test_every_variable_is_documented_in_env_example_and_readme():
    repo = Path(__file__).resolve().parent.parent
    example, readme = (repo / ".env.example").read_text(), (repo / "README.md").read_text()
    for variable in ENVIRONMENT:
        assert f"{variable}=" in example, f"{variable} missing from .env.example"
        assert f"`{variable}`" in readme, f"{variable} missing from the README's configuration table"


def test_log_retention_defaults_to_90_days_and_0_keeps_everything():
    assert load_settings({}).log_retention_days == 90
    assert load_settings({"LOG_RETENTION_DAYS": "0"}).log_retention_days == 0
