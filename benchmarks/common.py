"""Shared pieces of the benchmark scripts: stacks, timing, machine facts, scratch databases."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

PG_ADMIN_URL = os.environ.get("STEPWELL_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def quiet() -> None:
    """Benchmarks print numbers, not service logs or kfp's FutureWarnings."""
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")


def machine() -> str:
    """One line about the machine: CPU model, cores, memory, Python, date."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        kb = int(f.readline().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return (
        f"{model or platform.processor()}, nproc={os.cpu_count()}, {mem} RAM, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


_SPEED_PROBE = """
import os, statistics, tempfile, time
from pathlib import Path
started = time.perf_counter()
total = 0
for i in range(2_000_000):
    total += i
loop = (time.perf_counter() - started) * 1000
forks = []
for _ in range(20):
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    forks.append((time.perf_counter() - started) * 1000)
creates = []
with tempfile.TemporaryDirectory() as folder:
    for i in range(50):
        started = time.perf_counter()
        sub = Path(folder) / f"d{i}"
        sub.mkdir()
        (sub / "f.json").write_text("{}")
        creates.append((time.perf_counter() - started) * 1000)
print(f"{loop:.0f} {statistics.median(forks):.2f} {statistics.median(creates):.2f}")
"""


def _probe() -> tuple[str, str, str]:
    out = subprocess.run([sys.executable, "-c", _SPEED_PROBE], capture_output=True, text=True, check=True).stdout
    loop, fork, create = out.split()
    return loop, fork, create


def settle(limit_ms: float = 0.3, wait_s: float = 120.0) -> str:
    """Waits (up to ``wait_s``) until creating a file takes at most ``limit_ms`` again.
    A large delete (the previous benchmark's scratch folders) can leave this machine's
    disk slow to create files for a minute, and every task creates several: measured
    then, the benchmark would time the disk's hangover. Returns the machine-speed line of
    the last probe, with the wait."""
    started = time.monotonic()
    while True:
        loop, fork, create = _probe()
        waited = time.monotonic() - started
        if float(create) <= limit_ms or waited >= wait_s:
            note = f", after waiting {waited:.0f} s for the disk to settle" if waited >= 1 else ""
            return _speed_line(loop, fork, create) + note
        time.sleep(5)


def machine_speed() -> str:
    """How fast the machine is right now, for reading the numbers beside it: a virtual
    machine shared with others can run the same code twice as slowly a minute later, and
    creating files can slow down tenfold for a minute after a large delete. Three probes,
    in a fresh interpreter: a pure-Python loop (2 million additions), ``fork`` +
    ``waitpid`` of that small process, and ``mkdir`` + creating a small file in a fresh
    folder of the system's temporary folder (where the benchmarks' scratch folders go)."""
    return _speed_line(*_probe())


def _speed_line(loop: str, fork: str, create: str) -> str:
    return f"machine speed: 2M-addition loop {loop} ms, fork+wait {fork} ms, mkdir+create {create} ms (medians)"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float], unit: str = "ms") -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):.2f} {unit}, p90 {pct(values, 0.9):.2f}, "
        f"max {max(values):.2f} (n={len(values)})"
    )


def kfp_spec(pipeline: Any) -> dict[str, Any]:
    """The IR of a ``kfp`` pipeline, compiled by the real kfp compiler (YAML, read back)."""
    import yaml
    from kfp import compiler

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return dict(yaml.safe_load(path.read_text()))


# ----- a scratch Postgres database -------------------------------------------------------


@contextlib.contextmanager
def scratch_postgres(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new, empty database on the benchmark Postgres server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "stepwell_bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


# ----- the embedded stack, with the scheduler's executor timed ----------------------------


@dataclass
class TaskTimes:
    submit_called: float = 0.0  # the engine asks the executor to start the process
    submit_returned: float = 0.0  # the process exists
    exited: float = 0.0  # the executor reported the process's exit to the engine


@dataclass
class ExecutorClock:
    """Wraps the scheduler's executor (from outside the engine) to time each process."""

    times: dict[str, TaskTimes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, executor: Any) -> None:
        submit, on_exit = executor.submit, executor.on_exit
        submit_many = getattr(executor, "submit_many", None)  # absent before the seventh round

        def timed_submit(request: Any) -> Any:
            t0 = time.monotonic()
            handle = submit(request)
            t1 = time.monotonic()
            with self.lock:
                self.times[request.key] = TaskTimes(t0, t1)
            return handle

        def timed_submit_many(requests: Any) -> Any:
            # A fan-out's processes start together: each counts from the call's start to
            # its end (an earlier answer in the batch is not credited).
            assert submit_many is not None
            t0 = time.monotonic()
            results = submit_many(requests)
            t1 = time.monotonic()
            with self.lock:
                for request, result in zip(requests, results, strict=True):
                    if not isinstance(result, Exception):
                        self.times[request.key] = TaskTimes(t0, t1)
            return results

        def timed_exit(key: str) -> None:
            t = time.monotonic()
            with self.lock:
                entry = self.times.get(key)
                if entry is not None:
                    entry.exited = t
            on_exit(key)

        executor.submit = timed_submit
        if submit_many is not None:
            executor.submit_many = timed_submit_many
        executor.on_exit = timed_exit

    def overheads(self, run_id: str, spec: dict[str, Any]) -> tuple[list[float], list[float], list[float]]:
        """Per task with upstream tasks, in ms: (upstream exit → engine calls submit,
        submit call → process started, upstream exit → process started)."""
        tasks = spec["root"]["dag"]["tasks"]
        engine, start, total = [], [], []
        with self.lock:
            times = {k.split("\x00", 1)[1]: v for k, v in self.times.items() if k.startswith(run_id + "\x00")}
        for name, task in tasks.items():
            deps = task.get("dependentTasks") or []
            if not deps or name not in times or any(d not in times for d in deps):
                continue
            ready = max(times[d].exited for d in deps)
            engine.append((times[name].submit_called - ready) * 1000)
            start.append((times[name].submit_returned - times[name].submit_called) * 1000)
            total.append((times[name].submit_returned - ready) * 1000)
        return engine, start, total


def postgres_round_trip() -> str:
    """The Postgres server's latency right now, for reading the Postgres numbers: the
    median of 200 ``SELECT 1`` + commit and of 200 single-row UPDATE + commit (which waits
    for the WAL flush), on one driver connection of the admin URL (no SQLAlchemy)."""
    from sqlalchemy import create_engine

    engine = create_engine(PG_ADMIN_URL)
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE probe (id int PRIMARY KEY, v int)")
        cur.execute("INSERT INTO probe VALUES (1, 0)")
        conn.commit()
        timings: dict[str, list[float]] = {"SELECT 1": [], "UPDATE": []}
        for label, sql in (("SELECT 1", "SELECT 1"), ("UPDATE", "UPDATE probe SET v = v + 1 WHERE id = 1")):
            for _ in range(200):
                started = time.perf_counter()
                cur.execute(sql)
                conn.commit()
                timings[label].append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
        engine.dispose()
    return (
        f"postgres: SELECT 1 + commit {statistics.median(timings['SELECT 1']):.2f} ms, "
        f"UPDATE + commit {statistics.median(timings['UPDATE']):.2f} ms (medians, driver only)"
    )


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    """The database URL for ``backend``: a scratch Postgres database (dropped afterwards),
    or "" for SQLite (each service's default file under its home)."""
    if backend == "postgres":
        with scratch_postgres() as url:
            yield url
    else:
        yield ""


@contextlib.contextmanager
def embedded_stack(database_url: str = "", **overrides: Any) -> Iterator[tuple[Any, Any, ExecutorClock]]:
    """``(stack, client, clock)``: all services in this process, as ``stepwell run`` starts them,
    with caching off."""
    from stepwell.cli.embedded import EmbeddedStack
    from stepwell.client import Client

    with tempfile.TemporaryDirectory() as home:
        # Every run executes its tasks (kfp.local does not cache unless asked either).
        settings = {"cache_enabled": False, **overrides}
        if database_url:
            settings["database_url"] = database_url
        # As `stepwell run` starts it: the stack is what the process is for (a tree from
        # before the seventh round has no such option).
        owns = {"own_process": True} if "own_process" in {f.name for f in dataclasses.fields(EmbeddedStack)} else {}
        stack = EmbeddedStack(home=Path(home), overrides=settings, **owns)
        with stack, Client(stack.api_address) as client:
            clock = ExecutorClock()
            scheduler = next(app for app in stack._apps if type(app).__name__ == "SchedulerApp")
            clock.attach(scheduler.executor)
            yield stack, client, clock


def scheduler_work_dir(stack: Any) -> Path:
    """The work dir (task files, result files) of an embedded stack's scheduler."""
    scheduler = next(app for app in stack._apps if type(app).__name__ == "SchedulerApp")
    return Path(scheduler.settings.resolved_work_dir())


# ----- the links of a run, from its tasks' result files ------------------------------------


def task_results(work_dir: Path, run_id: str, names: Any) -> dict[str, dict[str, Any] | None]:
    """The last attempt's result record of each root-DAG task in ``names`` (None: none yet)."""
    base = Path(work_dir) / "runs" / run_id / "tasks"
    return {name: _last_result(base / name) for name in names}


def _last_result(task_dir: Path) -> dict[str, Any] | None:
    """The result record of a task's last attempt (``a<N>/result.json``, highest N)."""
    import json

    attempts = [d for d in task_dir.glob("a*") if d.name[1:].isdigit() and (d / "result.json").is_file()]
    if not attempts:
        return None
    last = max(attempts, key=lambda d: int(d.name[1:]))
    return dict(json.loads((last / "result.json").read_text()))


def result_file_overheads(work_dir: Path, run_id: str, spec: dict[str, Any]) -> list[float]:
    """Per root-DAG task with upstream tasks, in ms: its launcher's ``started_at`` minus the
    latest ``finished_at`` of its upstream tasks' launchers, read from the result files the
    launchers write under ``<work_dir>/runs/<run_id>/tasks/<task>/a<attempt>/``.

    Works whether or not the scheduler runs in this process. It overstates the engine's
    share: it also holds the upstream launcher's result write and exit, and the downstream
    launcher's start up to reading its task file."""
    tasks = spec["root"]["dag"]["tasks"]
    results = task_results(work_dir, run_id, tasks)
    links = []
    for name, task in tasks.items():
        deps = task.get("dependentTasks") or []
        mine = results.get(name)
        ups = [results.get(d) for d in deps]
        if not deps or not mine or not mine.get("started_at") or any(not u or not u.get("finished_at") for u in ups):
            continue
        ready = max(float(u["finished_at"]) for u in ups if u)
        links.append((float(mine["started_at"]) - ready) * 1000)
    return links


def run_and_wait(
    client: Any,
    spec: dict[str, Any],
    arguments: dict[str, Any] | None = None,
    timeout: float = 600,
    poll: float = 0.01,
) -> tuple[Any, float]:
    """Creates a run and waits for the API to report its end; returns ``(run, seconds)``.

    Waits as ``stepwell run`` does, through ``Client.watch_run``: ``poll`` is its GetRun
    interval, and each GetRun after the first carries only the tasks that changed. The
    services share this process (and its GIL) with the polling, so it stays cheap.
    """
    t0 = time.perf_counter()
    run_id = client.create_run(spec, arguments or {}).run_id
    run = None
    try:
        for run in client.watch_run(run_id, interval=poll, timeout=timeout - (time.perf_counter() - t0)):  # noqa: B007
            pass
    except TimeoutError:
        raise TimeoutError(run_id) from None
    return run, time.perf_counter() - t0


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size (VmHWM) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True, check=True)
        return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ----- the scheduler as its own process (for its memory) ---------------------------------


@dataclass
class SchedulerProcess:
    """``stepwell-scheduler`` as a child process, a metadata service and a stub API peer."""

    proc: subprocess.Popen[str]
    address: str
    stub: Any
    lines: list[str]
    work_dir: Path | None = None  # where its tasks' attempt folders and result files go

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fork_server_pid(self) -> int | None:
        """The scheduler's fork server (its child running the forkserver module)."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        for child in children:
            with contextlib.suppress(OSError):
                if b"executors.forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
        return None

    def start_run(self, spec: dict[str, Any], parameters: dict[str, Any] | None = None) -> str:
        from google.protobuf import json_format

        from stepwell.v1 import scheduler_pb2

        run_id = uuid.uuid4().hex
        request = scheduler_pb2.StartRunRequest(run_id=run_id)
        json_format.ParseDict(spec, request.pipeline_spec)
        if parameters:
            json_format.ParseDict(parameters, request.parameters)
        self.stub.StartRun(request, timeout=120)
        return run_id

    def wait(self, run_id: str, timeout: float = 3600, poll: float = 0.5) -> Any:
        from stepwell.v1 import common_pb2, scheduler_pb2

        deadline = time.monotonic() + timeout
        final = (common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED)
        while time.monotonic() < deadline:
            status = self.stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=120)
            if status.state in final:
                return status
            time.sleep(poll)
        raise TimeoutError(run_id)


@contextlib.contextmanager
def scheduler_process(database_url: str = "", extra_env: dict[str, str] | None = None) -> Iterator[SchedulerProcess]:
    import re

    import grpc

    from stepwell.server import ServiceBinding, make_channel, start_server
    from stepwell.v1 import run_pb2, run_pb2_grpc, scheduler_pb2_grpc
    from stepwell_metadata.app import MetadataApp
    from stepwell_metadata.settings import MetadataSettings

    class DiscardingRunService(run_pb2_grpc.RunServiceServicer):
        def ReportRunStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
            return run_pb2.ReportRunStatusResponse()

    with tempfile.TemporaryDirectory() as home:
        metadata = MetadataApp(
            MetadataSettings(home=Path(home) / "md"),
            database_url=database_url or f"sqlite:///{Path(home) / 'metadata.db'}",
        )
        md_server = metadata.start(port=0)
        api_server = start_server(
            [ServiceBinding(run_pb2_grpc.add_RunServiceServicer_to_server, DiscardingRunService(), "stepwell.v1.RunService")],
            port=0,
        )
        env = {
            **os.environ,
            "STEPWELL_HOME": home,
            "STEPWELL_METADATA_ADDRESS": md_server.address,
            "STEPWELL_API_ADDRESS": api_server.address,
            "STEPWELL_DATABASE_URL": database_url,
            "STEPWELL_LOG_LEVEL": "WARNING",
            "STEPWELL_CACHE_ENABLED": "false",
            **(extra_env or {}),
        }
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "stepwell-scheduler"), "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            port = 0
            for line in proc.stdout:
                lines.append(line)
                match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if match:
                    port = int(match.group(1))
                    break
            if not port:
                raise RuntimeError("stepwell-scheduler did not start:\n" + "".join(lines))
            threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True).start()
            address = f"127.0.0.1:{port}"
            with make_channel(address) as channel:
                work_dir = Path(env.get("STEPWELL_WORK_DIR") or Path(home) / "scheduler")
                yield SchedulerProcess(proc, address, scheduler_pb2_grpc.SchedulerStub(channel), lines, work_dir)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            api_server.stop()
            metadata.stop()
