"""Settings from the environment: parsed once, bad values named, secrets out of repr."""

from __future__ import annotations

import pytest
from yarl import URL

from proxy.settings import SettingsError, load_settings


def test_defaults_are_the_documented_ones():
    settings = load_settings({"HOME": "/home/u"})
    assert settings.ollama_base_url == URL("http://127.0.0.1:11434")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.embedded_database
    assert str(settings.data_dir) == "/home/u/.local/share/ollama-gateway"
    assert (settings.log_level, settings.log_format, settings.access_token_expire_minutes) == ("INFO", "text", 60)


@pytest.mark.parametrize("variable, value, fragment", [
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
])
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
    settings = load_settings({
        "DATABASE_URL": "postgresql://u:dbpassword@db/x",
        "SECRET_KEY": "s" * 40,
        "DEMO_ADMIN_KEY": "demo-admin-secret-value",
        "DEMO_USER_KEY": "demo-user-secret-value",
    })
    text = repr(settings)
    for secret in ("dbpassword", "s" * 40, "demo-admin-secret-value", "demo-user-secret-value"):
        assert secret not in text


def test_cli_overrides_win_and_none_means_not_given():
    settings = load_settings({"GATEWAY_PORT": "9000"}).with_overrides(port=9100, host=None)
    assert (settings.port, settings.host) == (9100, "127.0.0.1")
