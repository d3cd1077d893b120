"""Once started, the services' heap is moved out of the cyclic collector's view
(``gc.freeze``) when the stack owns its process (``stepwell run``, ``stepwell server``):
a full collection no longer walks every object of the start-up while the engine waits
for the GIL. Checked in fresh interpreters, so that this test process keeps its own
collector state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_CODE = """
import gc, json, sys
from pathlib import Path
from stepwell.cli.embedded import EmbeddedStack
before = gc.get_freeze_count()
with EmbeddedStack(home=Path(sys.argv[1]), own_process=sys.argv[2] == "own"):
    print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
"""


def _start(home: Path, own: bool) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CODE, str(home), "own" if own else "guest"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_stack_that_owns_its_process_freezes_what_its_start_loaded(tmp_path: Path) -> None:
    seen = _start(tmp_path / "own", own=True)
    assert seen["before"] == 0
    # The services' modules, ORM mappers and gRPC objects: far more than a stack's running state.
    assert seen["frozen"] > 50_000, seen
    assert seen["tracked"] < seen["frozen"], seen


def test_a_guest_stack_leaves_the_collector_alone(tmp_path: Path) -> None:
    """In a notebook or a test the host's later garbage must stay collectable."""
    assert _start(tmp_path / "guest", own=False)["frozen"] == 0
