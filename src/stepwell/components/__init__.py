"""Load components from KFP v2 component YAML: ``from stepwell import components``.

``components.load_component_from_file("train.yaml")`` returns a component usable in a
pipeline exactly like a ``@dsl.component``; the YAML is what ``kfp`` (or stepwell)
writes when compiling a component or a pipeline.
"""

from __future__ import annotations

from typing import Any

from stepwell.components.yaml_component import YamlComponent


def load_component_from_text(text: str) -> YamlComponent:
    """A component from the text of a KFP v2 component YAML file."""
    import yaml

    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    if not documents or not isinstance(documents[0], dict):
        raise ValueError("the component YAML is empty or not a mapping")
    return YamlComponent(documents[0], text)


def load_component_from_file(file_path: str) -> YamlComponent:
    """A component from a KFP v2 component YAML file."""
    with open(file_path, encoding="utf-8") as f:
        return load_component_from_text(f.read())


def load_component_from_url(url: str, auth: Any = None, timeout: float = 30.0) -> YamlComponent:
    """A component from a URL (``http(s)://`` or ``file://``); ``auth`` is accepted and unused."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return load_component_from_text(response.read().decode("utf-8"))


__all__ = [
    "YamlComponent",
    "load_component_from_file",
    "load_component_from_text",
    "load_component_from_url",
]
