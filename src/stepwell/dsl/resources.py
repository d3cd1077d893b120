"""Task resources and retry policy, checked when set and converted as KFP writes them.

CPU is a number (``"2"``, ``"0.5"``) or millicores (``"500m"``); memory is bytes or a
number with a decimal (``K M G T P E``) or binary (``Ki Mi Gi ...``) suffix. The IR keeps
the strings and, in deprecated fields, CPU as a float and memory in gigabytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_MEMORY_UNITS = {
    "": 1e-9,
    "K": 1e-6,
    "M": 1e-3,
    "G": 1.0,
    "T": 1e3,
    "P": 1e6,
    "E": 1e9,
    "Ki": 1024 / 1e9,
    "Mi": 1024**2 / 1e9,
    "Gi": 1024**3 / 1e9,
    "Ti": 1024**4 / 1e9,
    "Pi": 1024**5 / 1e9,
    "Ei": 1024**6 / 1e9,
}


def cpu_to_float(cpu: str) -> float:
    """``"500m"`` -> 0.5, ``"2"`` -> 2.0; ValueError naming the accepted forms."""
    text = str(cpu)
    if re.fullmatch(r"[0-9]+m", text):
        return int(text[:-1]) / 1000
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    raise ValueError(
        f"invalid CPU {cpu!r}: use a number such as '2' or '0.5', or millicores such as '500m'"
    )


def memory_to_gb(memory: str) -> float:
    """``"512M"`` -> 0.512, ``"1Gi"`` -> 1.073741824; ValueError naming the accepted forms."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?", str(memory))
    if not match:
        raise ValueError(
            f"invalid memory {memory!r}: use bytes or a number with a suffix such as "
            "'512M', '4G' or '1Gi'"
        )
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2) or ""]


def container_resources(settings: dict[str, Any]) -> dict[str, Any]:
    """The IR ``resources`` of a container for a task's resource settings."""
    resources: dict[str, Any] = {}
    for key, field in (("cpuLimit", "resourceCpuLimit"), ("cpuRequest", "resourceCpuRequest")):
        if key in settings:
            resources[key] = cpu_to_float(settings[key])
            resources[field] = settings[key]
    for key, field in (
        ("memoryLimit", "resourceMemoryLimit"),
        ("memoryRequest", "resourceMemoryRequest"),
    ):
        if key in settings:
            resources[key] = memory_to_gb(settings[key])
            resources[field] = settings[key]
    if "acceleratorType" in settings:
        count = settings.get("acceleratorCount", "1")
        resources["accelerator"] = {
            "type": settings["acceleratorType"],
            "count": count,
            "resourceType": settings["acceleratorType"],
            "resourceCount": count,
        }
    elif "acceleratorCount" in settings:
        count = settings["acceleratorCount"]
        resources["accelerator"] = {"count": count, "resourceCount": count}
    return resources


@dataclass
class RetryPolicy:
    """How often and how patiently a failed task is retried."""

    max_retry_count: int
    backoff_duration: str = "0s"
    backoff_factor: float = 2.0
    backoff_max_duration: str = "3600s"

    @classmethod
    def build(
        cls,
        num_retries: int,
        backoff_duration: str | None = None,
        backoff_factor: float | None = None,
        backoff_max_duration: str | None = None,
    ) -> RetryPolicy:
        """Check the arguments of ``set_retry`` and fill in KFP's defaults."""
        if not isinstance(num_retries, int) or num_retries < 0:
            raise ValueError(f"set_retry: num_retries must be an int >= 0, not {num_retries!r}")
        for label, value in (
            ("backoff_duration", backoff_duration),
            ("backoff_max_duration", backoff_max_duration),
        ):
            if value is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?s", str(value)):
                raise ValueError(f"set_retry: {label} must look like '10s', not {value!r}")
        max_duration = backoff_max_duration or "3600s"
        if float(max_duration[:-1]) > 3600:
            max_duration = "3600s"  # KFP caps the backoff at one hour
        return cls(
            num_retries,
            backoff_duration or "0s",
            float(backoff_factor) if backoff_factor is not None else 2.0,
            max_duration,
        )

    def to_ir(self) -> dict[str, Any]:
        """The IR ``retryPolicy``."""
        return {
            "maxRetryCount": self.max_retry_count,
            "backoffDuration": self.backoff_duration,
            "backoffFactor": self.backoff_factor,
            "backoffMaxDuration": self.backoff_max_duration,
        }
