"""requested_models: every model a body names under Go's decoding, the one Ollama acts on first."""

from __future__ import annotations

import pytest

from proxy.errors import GatewayError
from proxy.passthrough.model_policy import multipart_model, requested_models

PULL = ("model", "name")


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        ({"name": "slow", "model": "tiny"}, PULL, ["tiny", "slow"]),  # cmp.Or(req.Model, req.Name)
        ({"name": "slow"}, PULL, ["slow"]),
        ({"name": "slow", "model": "tiny"}, ("model",), ["tiny"]),  # ChatRequest has no Name
        ({"Model": "a", "model": "b"}, ("model",), ["b", "a"]),  # the last duplicate wins in Go
        ({"model": "b", "MODEL": "a"}, ("model",), ["a", "b"]),
        ({"ſource": "a", "destination": "b"}, ("source", "destination"), ["a", "b"]),  # Unicode folding
        ({"\u212aey": "x", "model": "m"}, ("model",), ["m"]),
        ({"model": "", "name": "n", "from": 3}, ("model", "name", "from"), ["n"]),
        ({"prompt": "model"}, ("model",), []),
    ],
)
def test_requested_models(body, fields, expected):
    assert requested_models(body, fields) == expected


def test_without_a_route_every_model_field_is_read():
    assert sorted(requested_models({"Source": "a", "FROM": "b", "name": "c", "x": "d"})) == ["a", "b", "c"]


def _form(model_part: bytes) -> tuple[str, bytes]:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n' + model_part + b"\r\n"
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n--b--\r\n'
    )
    return "multipart/form-data; boundary=b", body


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (b"\r\nwhisper", "whisper"),
        (b"Content-Transfer-Encoding: 8bit\r\n\r\nwhisper", "whisper"),
        (b"Content-Transfer-Encoding: quoted-printable\r\n\r\nwhis=70er", "whisper"),  # Go decodes this one too
    ],
)
def test_the_form_model_is_read_as_go_reads_it(part, expected):
    assert multipart_model(*_form(part)) == expected


@pytest.mark.parametrize("encoding", [b"base64", b"BASE64", b"x-uuencode", b"\xff"])
def test_a_form_model_in_an_encoding_go_passes_through_is_refused(encoding):
    """Go would read `Z3B0LW9zczoxMjBiLWNsb3Vk` itself as the model; Python would decode it to a cloud
    model name: refused rather than checked under another name than Ollama's."""
    content_type, body = _form(b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\nZ3B0LW9zczoxMjBiLWNsb3Vk")
    with pytest.raises(GatewayError) as refused:
        multipart_model(content_type, body)
    assert refused.value.status == 400
