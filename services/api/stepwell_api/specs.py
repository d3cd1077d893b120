"""Checked pipeline specs, remembered by content, so the runs of one pipeline check it once.

Creating a run parses the IR, checks it (schema version, references) and serialises it
for the database and for the scheduler. Most runs repeat a spec the service has seen:
a notebook re-submitting the same pipeline, a recurring run, a pipeline version. The
caller names the spec's content by a digest (the servicer hashes the request's
``Struct`` bytes, which is cheap and C-level); a spec already checked under that digest
is reused as it is. Nothing about a spec's check depends on anything but its content,
so a digest hit is as good as checking again.

Entries are shared between requests and must be treated as read-only.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepwell.ir import PipelineSpecDoc, load_pipeline_spec


def to_json(value: Any) -> str:
    """The compact JSON text the API service stores and hands on."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class CheckedSpec:
    """A pipeline spec that passed :func:`stepwell.ir.load_pipeline_spec`, with its JSON forms."""

    doc: PipelineSpecDoc
    #: The bare IR as JSON text (``api_runs.pipeline_spec``).
    spec_json: str
    #: The platform spec as JSON text, ``{}`` when none.
    platform_json: str
    #: What a run's ``pipeline_spec`` holds and the scheduler receives: the bare IR, or
    #: ``{"pipeline_spec", "platform_spec"}`` when there is a platform spec.
    full_json: str

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def root_parameters(self) -> dict[str, Any]:
        return self.doc.root_parameters

    @property
    def full_spec(self) -> dict[str, Any]:
        if self.doc.platform_spec:
            return {"pipeline_spec": self.doc.spec, "platform_spec": self.doc.platform_spec}
        return self.doc.spec

    @classmethod
    def check(cls, source: Any) -> CheckedSpec:
        """Checks ``source`` (YAML/JSON text, an IR dict, or the platform-spec wrapper)."""
        doc = load_pipeline_spec(source)
        spec_json = to_json(doc.spec)
        platform_json = to_json(doc.platform_spec)
        full_json = (
            f'{{"pipeline_spec":{spec_json},"platform_spec":{platform_json}}}' if doc.platform_spec else spec_json
        )
        return cls(doc=doc, spec_json=spec_json, platform_json=platform_json, full_json=full_json)


class SpecCache:
    """A bounded, thread-safe LRU of :class:`CheckedSpec` by content digest.

    Bounded by entry count and by the total size of the remembered JSON, so a burst of
    distinct huge specs cannot hold the process's memory.
    """

    def __init__(self, max_entries: int = 256, max_chars: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[bytes, CheckedSpec] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def check(self, digest: bytes, load: Callable[[], Any]) -> CheckedSpec:
        """The checked spec for ``digest``; on a miss, checks ``load()`` and remembers it.

        An empty digest means "not identifiable": the spec is checked and not remembered.
        A spec that fails its check raises :class:`~stepwell.errors.InvalidArgument` and
        is not remembered either.
        """
        if digest:
            with self._lock:
                found = self._entries.get(digest)
                if found is not None:
                    self._entries.move_to_end(digest)
                    self.hits += 1
                    return found
                self.misses += 1
        checked = CheckedSpec.check(load())
        if digest:
            self._remember(digest, checked)
        return checked

    def _remember(self, digest: bytes, checked: CheckedSpec) -> None:
        size = len(checked.full_json)
        if size > self.max_chars // 4:
            return  # a giant spec would evict everything else
        with self._lock:
            if digest in self._entries:
                return
            self._entries[digest] = checked
            self._chars += size
            while len(self._entries) > self.max_entries or self._chars > self.max_chars:
                _, evicted = self._entries.popitem(last=False)
                self._chars -= len(evicted.full_json)

    def __len__(self) -> int:
        return len(self._entries)
