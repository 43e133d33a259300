"""proxy/passthrough/merged_listing.py: the union of several nodes' model lists, each model once."""

from __future__ import annotations

from proxy.passthrough.merged_listing import merge
from proxy.passthrough.routes import Listing


def test_native_lists_keep_the_first_nodes_entry_of_each_model_by_normalised_name():
    first = {"models": [{"name": "llama3:latest", "model": "llama3:latest", "size": 1}]}
    second = {"models": [{"name": "llama3", "size": 2}, {"name": "qwen3:0.6b", "size": 3}]}
    assert merge([first, second], Listing.NATIVE) == {
        "models": [{"name": "llama3:latest", "model": "llama3:latest", "size": 1}, {"name": "qwen3:0.6b", "size": 3}]
    }


def test_openai_lists_merge_by_id_and_keep_ollamas_null_when_every_node_has_none():
    assert merge([{"object": "list", "data": None}, {"object": "list", "data": None}], Listing.OPENAI) == {
        "object": "list",
        "data": None,
    }
    merged = merge([{"object": "list", "data": None}, {"object": "list", "data": [{"id": "a"}]}], Listing.OPENAI)
    assert merged == {"object": "list", "data": [{"id": "a"}]}
