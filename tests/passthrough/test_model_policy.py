"""requested_models: every model a body names under Go's decoding, the one Ollama acts on first."""

from __future__ import annotations

import pytest

from proxy.passthrough.model_policy import requested_models

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
