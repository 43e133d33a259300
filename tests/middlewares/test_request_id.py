"""Request ids: random version-4 UUIDs that behave as uuid.UUID everywhere, or the client's own if it is one."""

from __future__ import annotations

import uuid

import pytest

from proxy.middlewares import request_id
from proxy.middlewares.request_id import new_request_id, request_id_from


def test_new_ids_are_random_version_4_uuids():
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for made in ids[:100]:
        assert isinstance(made, uuid.UUID)
        assert (made.version, made.variant) == (4, uuid.RFC_4122)
        same = uuid.UUID(str(made))
        assert same == made and hash(same) == hash(made) and {same: 1}[made] == 1


def test_the_installed_asyncpg_offers_the_fast_class():
    assert request_id._FastUUID is not None and type(new_request_id()) is request_id._FastUUID


def test_without_it_ids_are_made_by_the_standard_library(monkeypatch):
    monkeypatch.setattr(request_id, "_FastUUID", None)
    made = new_request_id()
    assert type(made) is uuid.UUID and made.version == 4


@pytest.mark.parametrize("header", ["0f8e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b", "{0F8E4C1A-2B3D-4E5F-8A9B-0C1D2E3F4A5B}"])
def test_a_client_uuid_is_kept(header):
    assert request_id_from(header) == uuid.UUID("0f8e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b")


@pytest.mark.parametrize("header", [None, "", "req-42", "٠" * 32, "0" * 100])
def test_anything_else_gets_a_new_id(header):
    made = request_id_from(header)
    assert made.version == 4 and str(made) != header


def test_ids_read_in_blocks_are_still_all_different_across_many_blocks():
    ids = {new_request_id() for _ in range(request_id._IDS_PER_READ * 5 + 7)}
    assert len(ids) == request_id._IDS_PER_READ * 5 + 7


def test_a_forked_child_never_makes_an_id_its_parent_will_make():
    import os

    new_request_id()  # the parent holds unused random pieces now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave without running pytest's exit
        os.close(read)
        os.write(write, "".join(str(new_request_id()) + "\n" for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {str(new_request_id()) for _ in range(request_id._IDS_PER_READ)}
    assert len(child) == 10 and not child & parent
