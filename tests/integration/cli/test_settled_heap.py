"""Once started, the services' heap is moved out of the cyclic collector's view
(``gc.freeze``): a full collection no longer walks every object of the start-up while
the engine waits for the GIL. Checked in a fresh interpreter, so that this test process
keeps its own collector state."""

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
with EmbeddedStack(home=Path(sys.argv[1])):
    print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
"""


def test_the_embedded_stack_freezes_what_its_start_loaded(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CODE, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0
    # The services' modules, ORM mappers and gRPC objects: far more than a stack's running state.
    assert seen["frozen"] > 50_000, seen
    assert seen["tracked"] < seen["frozen"], seen
