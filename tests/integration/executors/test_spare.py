"""The fork server's spare child: forked while the server is idle, it takes the next
request, and the task it becomes is what a child forked for the request would have been.
Real fork servers, real processes and signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwell_scheduler.executors.forkclient import ForkServerClient, Spawn
from stepwell_scheduler.executors.forkserver import SPARES

WAIT = 30.0  # upper bound for waiting loops; nothing asserts on elapsed time

_PROBE = """
import json, os

def main(argv):
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[os.readlink(f"/proc/self/fd/{fd}")] = os.get_inheritable(int(fd))
        except OSError:
            pass
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    with open(argv[0], "w") as f:
        json.dump({"pid": os.getpid(), "sid": os.getsid(0), "cwd": os.getcwd(), "env": dict(os.environ),
                   "fds": fds, "comm": comm, "policy": os.sched_getscheduler(0)}, f)
    return int(argv[1]) if len(argv) > 1 else 0
"""


def _wait_for(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.01)
    return predicate()


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def _children(pid: int) -> dict[int, str]:
    """The live children of ``pid`` and their process names."""
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return {}
    found = {}
    for child in map(int, listed):
        if not _gone(child):
            with contextlib.suppress(OSError):
                found[child] = Path(f"/proc/{child}/comm").read_text().strip()
    return found


def _started(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def _spares(server: int, count: int = SPARES) -> list[int]:
    """The pids of the server's waiting spares, oldest first, once there are ``count``."""
    def waiting() -> list[int]:
        return [p for p, name in _children(server).items() if name == "stepwell-spare"]

    found = _wait_for(lambda: len(waiting()) == count and waiting())
    assert found, f"not {count} spare children of the fork server: {_children(server)}"
    return sorted(found, key=lambda pid: (_started(pid), pid))


class _Exits:
    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.cond = threading.Condition()

    def __call__(self, tag: int, code: int) -> None:
        with self.cond:
            self.codes[tag] = code
            self.cond.notify_all()

    def wait(self, tag: int) -> int:
        with self.cond:
            assert self.cond.wait_for(lambda: tag in self.codes, WAIT), f"request {tag} did not end"
            return self.codes[tag]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ForkServerClient, _Exits]]:
    (tmp_path / "spare_probe.py").write_text(textwrap.dedent(_PROBE))
    exits = _Exits()
    client = ForkServerClient(on_exit=exits)
    client.start()
    try:
        yield client, exits
    finally:
        client.close()


def _child(folder: Path, name: str, *argv: str, env: dict[str, str] | None = None) -> Spawn:
    """The probe as a request: it reports to ``name.json`` and holds ``name.marker``."""
    marker = folder / f"{name}.marker"
    marker.write_text("marker")
    return Spawn(
        "spare_probe",
        [str(folder / f"{name}.json"), *argv],
        str(folder),
        env if env is not None else {"PROBE": name},
        stdout=str(folder / "out" / f"{name}.out"),
        stderr=str(folder / "out" / f"{name}.err"),
        hold=[str(marker)],
    )


def _spawn(client: ForkServerClient, folder: Path, name: str, *argv: str, env: dict[str, str] | None = None) -> tuple[int, int]:
    child = _child(folder, name, *argv, env=env)
    return client.spawn(
        child.module, child.argv, cwd=child.cwd, env=child.env, stdout=child.stdout, stderr=child.stderr, hold=child.hold
    )


def test_requests_run_in_the_spares_forked_ahead_of_them_as_forked_children_would(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    client, exits = server
    assert client.pid is not None
    assert SPARES >= 2
    spares = _spares(client.pid)
    # Waiting, a spare is SCHED_BATCH: the request that wakes it does not take the CPU
    # from the scheduler handing over the rest of a fan-out.
    assert _wait_for(lambda: all(os.sched_getscheduler(p) == os.SCHED_BATCH for p in spares)), [
        os.sched_getscheduler(p) for p in spares
    ]
    tag, pid = _spawn(client, tmp_path, "first", "4")
    assert pid == spares[0]  # the answer names the oldest spare: no fork stood between the request and it
    assert exits.wait(tag) == 4
    seen = json.loads((tmp_path / "first.json").read_text())
    assert seen["pid"] == pid
    assert seen["sid"] == pid  # a session of its own: cancelling kills its whole group
    assert seen["comm"] == "stepwell-task"
    assert seen["policy"] == os.SCHED_OTHER  # the task itself runs as an ordinary process
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"] == {"PROBE": "first"}
    marker = str(tmp_path / "first.marker")
    assert marker in seen["fds"], seen["fds"]  # the adoption marker, held for the task's life
    assert seen["fds"][marker] is False  # close-on-exec: the user command does not hold it
    assert (tmp_path / "out").is_dir()  # the output folders were made in the task's process
    # None of the server's sockets: a task (or a spare) outliving the server must not keep them open.
    assert not [target for target in seen["fds"] if target.startswith("socket:")], seen["fds"]
    # A fan-out takes the other spares, one each; once idle, the server forks new ones.
    tags = [_spawn(client, tmp_path, f"fan{i}") for i in range(SPARES - 1)]
    assert [pid for _tag, pid in tags] == spares[1:]
    assert [exits.wait(tag) for tag, _pid in tags] == [0] * (SPARES - 1)
    again = _spares(client.pid)
    assert not set(again) & set(spares)
    tag, pid = _spawn(client, tmp_path, "second")
    assert pid == again[0]
    assert exits.wait(tag) == 0
    assert json.loads((tmp_path / "second.json").read_text())["env"] == {"PROBE": "second"}


def test_a_burst_beyond_the_spares_is_forked_for(server: tuple[ForkServerClient, _Exits], tmp_path: Path) -> None:
    client, exits = server
    assert client.pid is not None
    spares = _spares(client.pid)
    children = [_child(tmp_path, f"burst{i}") for i in range(SPARES + 2)]
    # Sent together: the server forks the last two in one go.
    tags = [result for result in client.spawn_many(children) if isinstance(result, tuple)]
    assert len(tags) == SPARES + 2
    assert [pid for _tag, pid in tags][:SPARES] == spares
    assert not {pid for _tag, pid in tags[SPARES:]} & set(spares)
    assert [exits.wait(tag) for tag, _pid in tags] == [0] * (SPARES + 2)
    for i in range(SPARES + 2):
        seen = json.loads((tmp_path / f"burst{i}.json").read_text())
        assert seen["env"] == {"PROBE": f"burst{i}"}
        # Its own adoption marker only: none of another task forked in the same burst.
        assert {target for target in seen["fds"] if target.endswith(".marker")} == {
            str(tmp_path / f"burst{i}.marker")
        }


def test_a_fan_out_larger_than_a_chunk_is_sent_in_chunks(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    """Requests go out 32 at a time: a fan-out of many tasks, each request carrying a
    whole environment, never fills the sockets both ways at once."""
    client, exits = server
    env = {"PROBE": "wide", "PADDING": "x" * 8192}
    children = [
        Spawn("spare_probe", [str(tmp_path / f"w{i}.json")], str(tmp_path), env) for i in range(70)
    ]
    results = client.spawn_many(children)
    assert all(isinstance(result, tuple) for result in results), results
    for i, result in enumerate(results):
        assert isinstance(result, tuple)
        assert exits.wait(result[0]) == 0
        assert json.loads((tmp_path / f"w{i}.json").read_text())["pid"] == result[1]


def test_a_spare_that_dies_waiting_is_replaced_and_never_reported(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    client, exits = server
    assert client.pid is not None
    spares = _spares(client.pid)
    os.kill(spares[0], signal.SIGKILL)
    _wait_for(lambda: spares[0] not in _children(client.pid or 0))
    tag, pid = _spawn(client, tmp_path, "after")
    assert pid == spares[1]  # not the dead one
    assert exits.wait(tag) == 0
    assert list(exits.codes) == [tag]  # the killed spare was no task: no exit notice for it
    replaced = _spares(client.pid)
    assert spares[0] not in replaced


def test_a_request_too_large_for_a_spare_is_forked_for(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    client, exits = server
    assert client.pid is not None
    spares = _spares(client.pid)
    big = {"PROBE": "big", "LARGE": "x" * (512 * 1024)}
    tag, pid = _spawn(client, tmp_path, "big", env=big)
    assert pid not in spares
    assert exits.wait(tag) == 0
    assert json.loads((tmp_path / "big.json").read_text())["env"] == big
    assert _spares(client.pid) == spares  # still waiting for requests they can take


def test_the_spares_leave_with_the_server(server: tuple[ForkServerClient, _Exits]) -> None:
    client, _exits = server
    assert client.pid is not None
    spares = _spares(client.pid)
    client.close()

    assert _wait_for(lambda: all(_gone(pid) for pid in spares)), "a spare outlived its fork server"


def test_a_fan_out_sent_at_once_is_answered_per_request_whatever_the_order(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    """``spawn_many``: a request too large for a spare, forked for, is answered after the
    ones spares take; each answer still reaches its own request."""
    client, exits = server
    assert client.pid is not None
    spares = _spares(client.pid)
    big = {"PROBE": "big", "LARGE": "x" * (512 * 1024)}
    children = [_child(tmp_path, f"m{i}", env=env) for i, env in enumerate([big, {"PROBE": "a"}, {"PROBE": "b"}])]
    results = client.spawn_many(children)
    assert all(isinstance(result, tuple) for result in results), results
    pids = [result[1] for result in results if isinstance(result, tuple)]
    assert pids[1:] == spares[:2]
    assert pids[0] not in spares
    for i, (tag, pid) in enumerate(r for r in results if isinstance(r, tuple)):
        assert exits.wait(tag) == 0
        seen = json.loads((tmp_path / f"m{i}.json").read_text())
        assert seen["pid"] == pid
        assert seen["env"] == children[i].env


def _written(folder: Path, name: str, **kwargs: Any) -> Spawn:
    """The probe as a request whose held marker the server writes (``files``)."""
    child = _child(folder, name, **kwargs)
    (folder / f"{name}.marker").unlink()
    child.files = {child.hold[0]: f"task file of {name}"}
    child.error_file = str(folder / f"{name}.error")
    return child


def test_the_server_writes_a_request_s_files_before_its_child_holds_them(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    """The task file is written off the scheduler's process: by the spare that takes the
    request, or by the server before it forks a child for one; the child holds it from
    then on, as it holds a file the scheduler wrote."""
    client, exits = server
    assert client.pid is not None
    spares = _spares(client.pid)
    big = {"PROBE": "big", "LARGE": "x" * (512 * 1024)}  # forked for: too large for a spare
    children = [_written(tmp_path, "spared"), _written(tmp_path, "forked", env=big)]
    results = client.spawn_many(children)
    assert all(isinstance(result, tuple) for result in results), results
    pids = [result[1] for result in results if isinstance(result, tuple)]
    assert pids[0] == spares[0] and pids[1] not in spares
    for name, (tag, _pid) in zip(("spared", "forked"), results, strict=True):  # type: ignore[misc]
        assert exits.wait(tag) == 0
        marker = str(tmp_path / f"{name}.marker")
        assert Path(marker).read_text() == f"task file of {name}"
        seen = json.loads((tmp_path / f"{name}.json").read_text())
        assert marker in seen["fds"] and seen["fds"][marker] is False, seen["fds"]
        assert not (tmp_path / f"{name}.error").exists()


def test_a_file_the_server_cannot_write_fails_the_start_and_says_why(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    """Forked for: the server's answer is the error. Taken by a spare (which writes it):
    the child writes the reason to its error file and exits with status 3, as when its
    folder cannot be made. The probe never runs."""
    client, exits = server
    assert client.pid is not None
    _spares(client.pid)
    missing = tmp_path / "no-such-folder"
    spared = _written(tmp_path, "spared")
    spared.files = {str(missing / "spared.task"): "x"}
    forked = _written(tmp_path, "forked", env={"PROBE": "f", "LARGE": "x" * (512 * 1024)})
    forked.files = {str(missing / "forked.task"): "x"}
    first, second = client.spawn_many([spared, forked])
    assert isinstance(first, tuple), first
    assert exits.wait(first[0]) == 3
    assert str(missing / "spared.task") in (tmp_path / "spared.error").read_text()
    assert not isinstance(second, tuple)
    assert str(missing / "forked.task") in str(second)
    assert not (tmp_path / "spared.json").exists() and not (tmp_path / "forked.json").exists()


def test_a_request_reaches_a_spare_without_the_server(
    server: tuple[ForkServerClient, _Exits], tmp_path: Path
) -> None:
    """The scheduler holds the spares' sockets: with the server stopped, requests still
    start in them (and their exits are reported once it runs again)."""
    client, exits = server
    assert client.pid is not None
    spares = _spares(client.pid)
    os.kill(client.pid, signal.SIGSTOP)
    try:
        results = client.spawn_many([_child(tmp_path, f"direct{i}") for i in range(2)])
        assert [r[1] for r in results if isinstance(r, tuple)] == spares[:2], results
        for i in range(2):
            assert _wait_for(lambda i=i: (tmp_path / f"direct{i}.json").exists())
    finally:
        os.kill(client.pid, signal.SIGCONT)
    assert [exits.wait(r[0]) for r in results if isinstance(r, tuple)] == [0, 0]


def test_the_spares_end_when_their_server_dies(server: tuple[ForkServerClient, _Exits], tmp_path: Path) -> None:
    """Their sockets are closed when the client sees the server gone, so they end rather
    than wait for a request forever; a request after that goes to a new server."""
    client, exits = server
    assert client.pid is not None
    old = client.pid
    spares = _spares(old)
    os.kill(old, signal.SIGKILL)

    assert _wait_for(lambda: all(_gone(pid) for pid in spares)), "a spare outlived its dead fork server"
    tag, pid = _spawn(client, tmp_path, "after")
    assert client.pid != old and pid not in spares
    assert exits.wait(tag) == 0
