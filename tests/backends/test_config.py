"""proxy/backends/config.py: OLLAMA_BASE_URL lists and the OLLAMA_BACKENDS file."""

from __future__ import annotations

import pytest
from yarl import URL

from proxy.backends.config import DEFAULT_CAPACITY, nodes_from_settings, read_backends_file
from proxy.settings import SettingsError, load_settings


def test_one_url_is_one_node_named_host_port():
    settings = load_settings({"OLLAMA_BASE_URL": "http://10.0.0.5:11434"})
    [node] = nodes_from_settings(settings)
    assert (node.name, node.url, node.capacity) == ("10.0.0.5:11434", URL("http://10.0.0.5:11434"), DEFAULT_CAPACITY)
    assert settings.ollama_base_url == URL("http://10.0.0.5:11434")


def test_a_comma_separated_list_is_several_nodes_and_the_first_is_the_base_url():
    settings = load_settings({"OLLAMA_BASE_URL": "http://a:11434, http://b:11434,"})
    assert [node.name for node in nodes_from_settings(settings)] == ["a:11434", "b:11434"]
    assert settings.ollama_base_url == URL("http://a:11434")


def test_a_bad_url_in_the_list_names_the_variable():
    with pytest.raises(SettingsError, match="^OLLAMA_BASE_URL: "):
        load_settings({"OLLAMA_BASE_URL": "http://a:11434,ftp://b"})


def test_the_same_node_twice_is_refused():
    with pytest.raises(SettingsError, match="two nodes are named 'a:11434'"):
        nodes_from_settings(load_settings({"OLLAMA_BASE_URL": "http://a:11434,http://a:11434"}))


def test_the_backends_file_wins_and_reads_every_field(tmp_path):
    path = tmp_path / "nodes.toml"
    path.write_text(
        '[[backend]]\nname = "gpu1"\nurl = "http://u:secret@10.0.0.5:11434"\ncapacity = 2\nweight = 1.5\n'
        'labels = ["a100"]\n\n[[backend]]\nurl = "http://10.0.0.6:11434"\n'
    )
    settings = load_settings({"OLLAMA_BASE_URL": "http://elsewhere:1", "OLLAMA_BACKENDS": str(path)})
    first, second = nodes_from_settings(settings)
    assert (first.name, first.capacity, first.weight, first.labels) == ("gpu1", 2, 1.5, ("a100",))
    assert first.display_url == "http://u@10.0.0.5:11434"  # never the password
    assert (second.name, second.capacity, second.weight) == ("10.0.0.6:11434", DEFAULT_CAPACITY, 1.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "names no node"),
        ("[[backend]]\nname = 'x'\n", "[[backend]] #1 ('x'): url is required"),
        ("[[backend]]\nurl = 'http://a:1'\n[[backend]]\nurl = 'nope://p:secret@b'\n", "#2: url is not an http(s)"),
        ("[[backend]]\nurl = 'http://a:1'\ncapacity = 0\n", "#1: capacity must be"),
        ("[[backend]]\nurl = 'http://a:1'\ncapacity = 2.5\n", "#1: capacity must be"),
        ("[[backend]]\nurl = 'http://a:1'\nweight = -1\n", "#1: weight must be"),
        ("[[backend]]\nurl = 'http://a:1'\nlabels = 'gpu'\n", "#1: labels must be"),
        ("[[backend]]\nurl = 'http://a:1'\ncapacty = 2\n", "#1: unknown field 'capacty'"),
        ("[[backends]]\nurl = 'http://a:1'\n", "unknown table 'backends'"),
        ("[[backend]]\nurl = 'http://a:1'\n[[backend]]\nurl = 'http://a:1'\n", "two nodes are named 'a:1'"),
        ("[[backend]\n", "is not TOML"),
    ],
)
def test_a_bad_file_stops_startup_with_one_line_naming_the_entry(tmp_path, text, fragment):
    path = tmp_path / "nodes.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as caught:
        read_backends_file(path)
    message = str(caught.value)
    assert message.startswith("OLLAMA_BACKENDS: ") and fragment in message and "\n" not in message
    assert "secret" not in message


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match="OLLAMA_BACKENDS: cannot read"):
        read_backends_file(tmp_path / "absent.toml")
