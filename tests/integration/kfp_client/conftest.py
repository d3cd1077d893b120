"""A running Stepwell (the embedded stack) and the real ``kfp.Client`` 2.17.3 talking to
its KFP v2beta1 REST surface, plus pipelines compiled by the real kfp SDK.

One stack serves a whole test module (starting one takes about a second); tests keep
out of each other's way by naming their own pipelines and experiments.
"""

# No "from __future__ import annotations": kfp reads the component annotations as types.

import warnings
from collections.abc import Iterator
from pathlib import Path

import kfp
import pytest
from kfp import compiler, dsl

from stepwell.cli.embedded import EmbeddedStack


@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    return a + b


@dsl.pipeline(name="adder")
def adder(a: int = 1, b: int = 2) -> int:
    return add(a=a, b=add(a=a, b=b).output).output


@dsl.component(base_image="python:3.11")
def fail_once(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("failing the first time on purpose")
    return "second time lucky"


@dsl.pipeline(name="flaky")
def flaky(marker: str) -> str:
    return fail_once(marker=marker).output


@dsl.component(base_image="python:3.11")
def nap(seconds: float) -> None:
    import time

    time.sleep(seconds)


@dsl.pipeline(name="sleepy")
def sleepy(seconds: float = 60.0) -> None:
    nap(seconds=seconds)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pipelines above compiled by kfp to YAML: ``adder``, ``flaky``, ``sleepy``."""
    folder = tmp_path_factory.mktemp("packages")
    paths = {}
    for func in (adder, flaky, sleepy):
        path = folder / f"{func.name}.yaml"
        compiler.Compiler().compile(func, str(path))
        paths[func.name] = path
    return paths


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """The three services in this process (SQLite and a folder), REST on a free port."""
    home = tmp_path_factory.mktemp("home")
    overrides = {"trigger_interval": 0.2, "handover_interval": 0.2, "max_upload_bytes": 1024 * 1024}
    with EmbeddedStack(home=home, http_port=0, overrides=overrides) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[kfp.Client]:
    """The real ``kfp.Client`` pointed at the stack (its ~/.config/kfp isolated)."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setenv("HOME", str(tmp_path_factory.mktemp("kfp-home")))
        for name in ("KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME"):
            patch.delenv(name, raising=False)
        warnings.simplefilter("ignore")
        yield kfp.Client(host=f"http://{stack.http_address}")


@pytest.fixture(scope="module")
def base_url(stack: EmbeddedStack) -> str:
    return f"http://{stack.http_address}/apis/v2beta1"
