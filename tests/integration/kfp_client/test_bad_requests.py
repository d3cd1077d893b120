"""Bad REST requests get 4xx with KFP's error body, never 500, and change nothing; a few
hundred generated bad requests leave the server healthy."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stepwell.cli.embedded import EmbeddedStack

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def http(stack: EmbeddedStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{stack.http_address}/apis/v2beta1", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def spec(packages: dict[str, Path]) -> Spec:
    return dict(yaml.safe_load(packages["adder"].read_text()))


def counts(http: httpx.Client) -> tuple[int, int, int, int]:
    """How many runs, pipelines, experiments and recurring runs exist."""
    def total(path: str) -> int:
        reply = http.get(path, params={"page_size": 1})
        assert reply.status_code == 200, reply.text
        return int(reply.json().get("total_size", 0))

    return total("/runs"), total("/pipelines"), total("/experiments"), total("/recurringruns")


def assert_kfp_error(reply: httpx.Response, status: int, needle: str = "") -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    message = body.get("message") or body.get("error_message")
    assert isinstance(message, str) and message, body
    assert needle in message, body
    if "error_message" not in body:
        assert isinstance(body["code"], int) and body["details"] == []


def test_each_kind_of_bad_request_is_4xx_and_changes_nothing(http: httpx.Client, spec: Spec) -> None:
    before = counts(http)
    old = dict(spec, schemaVersion="2.0.0")
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/runs", b"{not json", 400, "invalid request body"),
        ("POST", "/runs", b"[1, 2]", 400, "JSON object"),
        ("POST", "/runs", {"display_name": "x", "pipeline_spec": spec, "colour": "red"}, 400, "colour"),
        ("POST", "/runs", {"display_name": "x", "pipeline_spec": old}, 400, "schemaVersion"),
        ("POST", "/runs", {"display_name": "x", "pipeline_spec": spec,
                           "runtime_config": {"parameters": {"a": 1, "nope": 2}}}, 400, "nope"),
        ("POST", "/runs", {"display_name": "x", "pipeline_spec": spec,
                           "runtime_config": {"parameters": {"a": "one"}}}, 400, "'a'"),
        ("POST", "/runs", {"display_name": "x"}, 400, "pipeline_spec"),
        ("POST", "/runs", {"display_name": "x", "pipeline_version_reference": {"pipeline_id": "missing"}}, 404, "missing"),
        ("POST", "/runs", {"display_name": "x", "pipeline_spec": spec, "experiment_id": "nope"}, 404, "nope"),
        ("POST", "/runs", {"display_name": "x", "pipeline_spec": spec, "state": "NOT_A_STATE"}, 400, ""),
        ("GET", "/runs?filter=%7Bbad", None, 400, "filter"),
        ("GET", "/runs?filter=" + json.dumps({"predicates": [{"key": "colour", "operation": 1, "string_value": "x"}]}), None, 400, "colour"),
        ("GET", "/runs?filter=" + json.dumps({"predicates": [{"key": "state", "operation": 4, "string_value": "x"}]}), None, 400, "operation"),
        ("GET", "/runs?sort_by=colour%20desc", None, 400, "colour"),
        ("GET", "/runs?page_token=garbage", None, 400, "page_token"),
        ("GET", "/runs?page_size=many", None, 400, "page_size"),
        ("GET", "/runs/does-not-exist", None, 404, "does-not-exist"),
        ("POST", "/runs/does-not-exist:archive", None, 404, ""),
        ("DELETE", "/runs/does-not-exist", None, 404, ""),
        ("POST", "/experiments", {"display_name": ""}, 400, "display_name"),
        ("POST", "/recurringruns", {"display_name": "r", "pipeline_spec": spec,
                                     "trigger": {"cron_schedule": {"cron": "0 9 * * *"}}}, 400, "six fields"),
        ("POST", "/recurringruns", {"display_name": "r", "pipeline_spec": spec, "max_concurrency": "99",
                                     "trigger": {"periodic_schedule": {"interval_second": "5"}}}, 400, "max_concurrency"),
        ("POST", "/recurringruns", {"display_name": "r", "pipeline_spec": spec}, 400, "trigger"),
        ("PATCH", "/runs/x", {}, 405, ""),
        ("GET", "/nothing/here", None, 404, ""),
    ]
    for method, path, body, status, needle in cases:
        content = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        reply = http.request(method, path, content=content, headers={"Content-Type": "application/json"})
        assert_kfp_error(reply, status, needle)
    assert counts(http) == before


def test_bad_uploads_are_4xx_with_kfps_upload_error_body(http: httpx.Client, spec: Spec) -> None:
    before = counts(http)
    old = yaml.safe_dump(dict(spec, schemaVersion="2.0.0")).encode()
    too_big = b"#" * (1024 * 1024 + 10)  # the stack's limit is 1 MiB
    cases = [
        ({"uploadfile": ("p.yaml", old)}, {"name": "old"}, 400, "schemaVersion"),
        ({"uploadfile": ("p.yaml", b"{{{")}, {"name": "broken"}, 400, ""),
        ({"uploadfile": ("p.zip", b"PK\x03\x04garbage")}, {"name": "zip"}, 400, "zip"),
        ({"uploadfile": ("p.exe", b"MZ\x90\x00")}, {"name": "exe"}, 400, "p.exe"),
        ({"other": ("p.yaml", yaml.safe_dump(spec).encode())}, {"name": "nofile"}, 400, "uploadfile"),
        ({"uploadfile": ("p.yaml", too_big)}, {"name": "big"}, 400, "larger than"),
        ({"uploadfile": ("p.yaml", yaml.safe_dump(spec).encode())}, {"name": "t", "tags": "{bad"}, 400, "tags"),
    ]
    for files, params, status, needle in cases:
        reply = http.post("/pipelines/upload", files=files, params=params)
        assert_kfp_error(reply, status, needle)
        assert "error_message" in reply.json()
    reply = http.post("/pipelines/upload_version", files={"uploadfile": ("p.yaml", yaml.safe_dump(spec).encode())},
                      params={"pipelineid": "missing"})
    assert_kfp_error(reply, 404, "missing")
    reply = http.post("/pipelines/upload", content=b"not multipart", headers={"Content-Type": "text/plain"})
    assert_kfp_error(reply, 400, "multipart")
    assert counts(http) == before


def test_a_multi_document_spec_with_a_platform_spec_uploads_as_yaml_zip_and_tar_gz(
    http: httpx.Client, spec: Spec, tmp_path: Path
) -> None:
    import io
    import tarfile
    import zipfile

    platform: dict[str, Any] = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {}}}}}
    text = (yaml.safe_dump(spec) + "---\n" + yaml.safe_dump(platform)).encode()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("pipeline.yaml", text)
    tarred = io.BytesIO()
    with tarfile.open(fileobj=tarred, mode="w:gz") as archive:
        info = tarfile.TarInfo("pipeline.yaml")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    for name, content in (("multi.yaml", text), ("multi.zip", zipped.getvalue()), ("multi.tar.gz", tarred.getvalue())):
        reply = http.post("/pipelines/upload", files={"uploadfile": (name, content)}, params={"name": f"multi-{name}"})
        assert reply.status_code == 200, reply.text
        pipeline_id = reply.json()["pipeline_id"]
        versions = http.get(f"/pipelines/{pipeline_id}/versions").json()["pipeline_versions"]
        assert versions[0]["pipeline_spec"]["platform_spec"] == platform
        assert versions[0]["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "adder"
        assert versions[0]["name"] == f"multi-{name}"


def _mutations(spec: Spec, rng: random.Random) -> list[tuple[str, str, bytes]]:
    """Generated bad requests: broken JSON, wrong types, unknown keys, bad filters ..."""
    garbage = [b"", b"null", b"[]", b"{", b'{"run_id": 5}', b"\xff\xfe", b'{"a":' * 50, b'"str"', b"1e400"]
    paths = ["/runs", "/experiments", "/pipelines", "/recurringruns", "/pipelines/create"]
    out: list[tuple[str, str, bytes]] = []
    for _ in range(120):
        out.append(("POST", rng.choice(paths), rng.choice(garbage)))
    for _ in range(60):
        bad = json.loads(json.dumps(spec))
        key = rng.choice(["schemaVersion", "root", "pipelineInfo", "components", "deploymentSpec"])
        bad[key] = rng.choice([None, 7, "x", [], {"bogus": 1}])
        body = {"display_name": "fuzz", "pipeline_spec": bad, "runtime_config": {"parameters": {"a": rng.choice([1, "x", None, [], {}])}}}
        out.append(("POST", rng.choice(["/runs", "/recurringruns"]), json.dumps(body).encode()))
    for _ in range(60):
        predicate: dict[str, Any] = {
            rng.choice(["key", "kee"]): rng.choice(["state", "created_at", "nope", "", 5]),
            "operation": rng.choice([0, 4, 10, "LIKE", -1, "EQUALS", None, True]),
            rng.choice(["string_value", "int_values", "timestamp_value", "bogus"]): rng.choice(["x", [1], {"values": 3}, "not-a-time"]),
        }
        query = rng.choice([
            f"filter={json.dumps({'predicates': [predicate]})}",
            f"sort_by={rng.choice(['x', 'created_at sideways', 'a b c'])}",
            f"page_token={rng.choice(['x', 'eyJ2IjoxfQ==', '!!!'])}",
            f"page_size={rng.choice(['-1', 'x', '1e9', '99999999999999999999'])}",
        ])
        out.append(("GET", f"{rng.choice(['/runs', '/experiments', '/pipelines', '/recurringruns'])}?{query}", b""))
    for _ in range(30):
        out.append((rng.choice(["GET", "DELETE", "POST"]), rng.choice([
            "/runs/%00", "/runs/" + "x" * 500, "/experiments/nope:archive", "/pipelines/nope/versions/nope",
            "/recurringruns/nope:enable", "/pipelines/names/nope",
        ]), b""))
    return out


def test_hundreds_of_generated_bad_requests_get_4xx_and_the_server_stays_healthy(
    http: httpx.Client, spec: Spec, client: Any
) -> None:
    before = counts(http)
    rng = random.Random(5)
    requests = _mutations(spec, rng)
    assert len(requests) >= 250
    statuses: dict[int, int] = {}
    for method, path, body in requests:
        reply = http.request(method, path, content=body, headers={"Content-Type": "application/json"})
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
        assert 400 <= reply.status_code < 500, (method, path, body[:200], reply.status_code, reply.text[:300])
        assert reply.json().get("message"), reply.text
    assert counts(http) == before
    assert http.get("/healthz").status_code == 200
    assert client.list_experiments() is not None  # the real kfp.Client still works
