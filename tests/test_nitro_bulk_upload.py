"""A certificate and its key go up in one bulk ``POST systemfile`` (issue 12: one round trip fewer
per deployed profile), against the simulated NetScaler over HTTPS; a partial failure (207 / 1243)
is handled like the single upload's errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.errors import NitroError
from citrix_connector.lifecycle import Agent
from citrix_connector.nitro import codes
from citrix_connector.nitro.client import NitroClient
from citrix_connector.nitro.plan import _uploaded_here
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox
from citrix_connector.state import StateStore

SYSTEMFILE = r"^/nitro/v1/config/systemfile$"


@pytest.fixture
def nitro(world: Sandbox) -> Iterator[NitroClient]:
    client = NitroClient(
        world.netscaler.url, verify=world.ca_bundle, timeout=10, username=ADC_USER, password=ADC_PASSWORD
    )
    with client:
        yield client


def _posts(world: Sandbox) -> list[dict]:
    return [
        r.json() for r in world.netscaler.requests if r.method == "POST" and r.path.endswith("/systemfile")
    ]


def test_both_files_arrive_in_one_request(world: Sandbox, nitro: NitroClient) -> None:
    paths = nitro.upload_files([("bulk-a.crt", b"cert bytes"), ("bulk-a.key", b"key bytes")])
    assert paths == ["/nsconfig/ssl/bulk-a.crt", "/nsconfig/ssl/bulk-a.key"]
    (body,) = _posts(world)
    assert [f["filename"] for f in body["systemfile"]] == ["bulk-a.crt", "bulk-a.key"]
    assert body["params"] == {"onerror": "EXIT"}
    (request,) = [r for r in world.netscaler.requests if r.path.endswith("/systemfile")]
    assert request.headers.get("x-nitro-onerror") == "exit"  # where Citrix documents it
    assert world.netscaler.get_file("/nsconfig/ssl/bulk-a.crt") == b"cert bytes"
    assert world.netscaler.get_file("/nsconfig/ssl/bulk-a.key") == b"key bytes"


def test_a_taken_name_stops_the_bulk_and_names_the_item(world: Sandbox, nitro: NitroClient) -> None:
    world.netscaler.put_file("/nsconfig/ssl/taken.key", b"someone else's")
    files = [("taken.crt", b"c"), ("taken.key", b"k"), ("taken.pem", b"p")]
    with pytest.raises(NitroError) as caught:
        nitro.upload_files(files)
    error = caught.value
    assert error.status == 207 and error.errorcode == 1642  # the item's own code, as for one file
    assert "item 2" in str(error) and "\n" not in str(error)
    assert world.netscaler.get_file("/nsconfig/ssl/taken.crt") == b"c"  # before the failure: added
    assert world.netscaler.get_file("/nsconfig/ssl/taken.key") == b"someone else's"
    assert world.netscaler.get_file("/nsconfig/ssl/taken.pem") is None  # exit: never tried


def test_the_simulator_continues_past_a_failure_when_asked(world: Sandbox, nitro: NitroClient) -> None:
    world.netscaler.put_file("/nsconfig/ssl/c2.key", b"x")
    items = [
        {"filename": name, "filelocation": "/nsconfig/ssl", "filecontent": "eA==", "fileencoding": "BASE64"}
        for name in ("c2.crt", "c2.key", "c2.pem")
    ]
    with pytest.raises(NitroError) as caught:
        nitro.session.call(
            "POST", "systemfile", payload={"params": {"onerror": "CONTINUE"}, "systemfile": items}
        )
    assert caught.value.errorcode == 1642
    assert world.netscaler.get_file("/nsconfig/ssl/c2.pem") == b"x"  # continue: tried after the failure


def _items(*names: str) -> list[dict[str, str]]:
    return [
        {"filename": name, "filelocation": "/nsconfig/ssl", "filecontent": "eA==", "fileencoding": "BASE64"}
        for name in names
    ]


@pytest.mark.parametrize(
    ("onerror", "tried_after_the_failure"), [("continue", True), ("exit", False), (None, False)]
)
def test_the_simulator_takes_onerror_from_the_header(
    world: Sandbox, nitro: NitroClient, onerror: str | None, tried_after_the_failure: bool
) -> None:
    """X-NITRO-ONERROR alone (no params in the body); without either, exit."""
    world.netscaler.put_file("/nsconfig/ssl/h2.key", b"x")
    headers = {"X-NITRO-ONERROR": onerror} if onerror else None
    with pytest.raises(NitroError) as caught:
        nitro.session.call(
            "POST",
            "systemfile",
            payload={"systemfile": _items("h2.crt", "h2.key", "h2.pem")},
            headers=headers,
        )
    error = caught.value
    assert (error.status, error.errorcode) == (207, 1642)
    assert [(item.position, item.errorcode) for item in error.failed_items] == [(1, 1642)]
    assert world.netscaler.get_file("/nsconfig/ssl/h2.crt") == b"x"  # before the failure: added
    assert (world.netscaler.get_file("/nsconfig/ssl/h2.pem") is not None) is tried_after_the_failure
    (request,) = [r for r in world.netscaler.requests if r.path.endswith("/systemfile")]
    assert "params" not in request.json()


def test_the_simulator_refuses_rollback(world: Sandbox, nitro: NitroClient) -> None:
    with pytest.raises(NitroError) as caught:
        nitro.session.call(
            "POST",
            "systemfile",
            payload={"systemfile": _items("r1.crt", "r1.key")},
            headers={"X-NITRO-ONERROR": "rollback"},
        )
    assert (caught.value.status, caught.value.errorcode) == (400, 1097)
    assert "rollback" in str(caught.value)
    assert world.netscaler.get_file("/nsconfig/ssl/r1.crt") is None  # nothing tried


def test_an_all_good_bulk_answers_like_one_add(world: Sandbox, nitro: NitroClient) -> None:
    world.netscaler.empty_success_bodies = True
    nitro.upload_files([("e1.crt", b"c"), ("e1.key", b"k")])
    (request,) = [r for r in world.netscaler.requests if r.path.endswith("/systemfile")]
    assert request.status == 201
    assert world.netscaler.get_file("/nsconfig/ssl/e1.key") == b"k"


def _bulk_answer(*items: tuple[int, str]) -> dict[str, object]:
    return {
        "errorcode": 1243,
        "message": "Bulk operation failed",
        "severity": "ERROR",
        "response": [
            {"errorcode": code, "message": text, "severity": "ERROR" if code else "NONE"}
            for code, text in items
        ],
    }


def _failing_upload(world: Sandbox, nitro: NitroClient, answer: object, status: int = 207) -> NitroError:
    world.netscaler.add_fault(SYSTEMFILE, method="POST", status=status, json_body=answer)
    with pytest.raises(NitroError) as caught:
        nitro.upload_files([("f.crt", b"c"), ("f.key", b"k")])
    return caught.value


def test_every_failed_item_a_taken_name_is_a_taken_name(world: Sandbox, nitro: NitroClient) -> None:
    """A box that went on after the first failure: both names taken, still "file exists"."""
    error = _failing_upload(world, nitro, _bulk_answer((1642, "File exists"), (1642, "File exists")))
    assert error.errorcode == 1642 and codes.file_exists(error)
    assert [item.position for item in error.failed_items] == [0, 1]


def test_failed_items_with_different_codes_are_a_bulk_failure(world: Sandbox, nitro: NitroClient) -> None:
    error = _failing_upload(world, nitro, _bulk_answer((1642, "File exists"), (1538, "Disk full")))
    assert error.errorcode == 1243 and not codes.file_exists(error)
    assert "item 1: File exists; item 2: Disk full" in str(error) and "\n" not in str(error)
    assert [(i.position, i.errorcode) for i in error.failed_items] == [(0, 1642), (1, 1538)]


@pytest.mark.parametrize(
    "answer",
    [
        {"errorcode": 1243, "message": "Bulk operation failed", "severity": "ERROR"},
        {"errorcode": 1243, "message": "Bulk operation failed", "severity": "ERROR", "response": "?"},
        None,  # an empty body
    ],
)
def test_a_207_without_the_items_is_a_plain_bulk_failure(
    world: Sandbox, nitro: NitroClient, answer: object
) -> None:
    error = _failing_upload(world, nitro, answer)
    assert error.status == 207 and error.failed_items == ()
    assert error.errorcode == (None if answer is None else 1243)
    assert not codes.file_exists(error)


def _deploy(world: Sandbox, tmp_path) -> tuple[str, str]:
    """Enroll and install lb-profile; the faults above skip the first upload (the issuing CA's)."""
    agent = Agent(load_scm_config(world.scm_yaml), StateStore(tmp_path / "state"), sleep=lambda _s: None)
    (outcome,) = agent.run([load_profile(world.profile_path("lb-profile"))])
    return outcome.result, outcome.message


def test_a_name_taken_meanwhile_gets_another_stem_and_the_deployment_goes_on(
    world: Sandbox, tmp_path
) -> None:
    answer = {
        "errorcode": 1243,
        "message": "Bulk operation failed",
        "severity": "ERROR",
        "response": [
            {"errorcode": 0, "message": "Done", "severity": "NONE"},
            {"errorcode": 1642, "message": "File already exists", "severity": "ERROR"},
        ],
    }
    world.netscaler.add_fault(SYSTEMFILE, method="POST", status=207, json_body=answer, times=1, after=1)
    result, message = _deploy(world, tmp_path)
    assert result == "ok", message
    bulks = [p for p in _posts(world) if isinstance(p.get("systemfile"), list)]
    first, second = bulks
    assert first["systemfile"][0]["filename"] != second["systemfile"][0]["filename"]  # a new stem
    nitro = NitroClient(world.netscaler.url, verify=world.ca_bundle, username=ADC_USER, password=ADC_PASSWORD)
    tried = {f["filename"] for f in first["systemfile"]}
    assert tried <= _uploaded_here(nitro)  # the failed stem's names (some may exist) never used again


def test_a_bulk_failure_without_the_items_fails_the_profile_without_another_stem(
    world: Sandbox, tmp_path
) -> None:
    answer = {"errorcode": 1243, "message": "Bulk operation failed", "severity": "ERROR"}
    world.netscaler.add_fault(SYSTEMFILE, method="POST", status=207, json_body=answer, times=1, after=1)
    result, message = _deploy(world, tmp_path)
    assert result == "failed"
    assert "HTTP 207, errorcode 1243: Bulk operation failed" in message and "\n" not in message
    assert [len(p["systemfile"]) for p in _posts(world) if isinstance(p["systemfile"], list)] == [2]


def test_another_failure_fails_the_profile_in_one_line_and_adds_no_certkey(world: Sandbox, tmp_path) -> None:
    answer = {
        "errorcode": 1243,
        "message": "Bulk operation failed",
        "severity": "ERROR",
        "response": [{"errorcode": 1538, "message": "No space left on the device", "severity": "ERROR"}],
    }
    world.netscaler.add_fault(SYSTEMFILE, method="POST", status=207, json_body=answer, times=1, after=1)
    result, message = _deploy(world, tmp_path)
    assert result == "failed"
    assert "errorcode 1538" in message and "item 1: No space left" in message and "\n" not in message
    added = [r for r in world.netscaler.requests if r.method == "POST" and r.path.endswith("/sslcertkey")]
    assert not [r for r in added if "lb-profile" in r.body.decode()]
    assert [len(p["systemfile"]) for p in _posts(world) if isinstance(p["systemfile"], list)] == [2]
