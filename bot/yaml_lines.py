"""Where a YAML path is in its file: the line `peaceline check` names for a flow or a directory error."""

from __future__ import annotations

from typing import Any

import yaml


def line_of(node: yaml.Node | None, path: tuple, *, at_value: bool = False) -> int | None:
    """1-based line of the deepest key (or list item) along `path` that the document has; with
    `at_value`, of what that key holds (a block under a key starts on the line after it).
    None without a document."""
    if node is None:
        return None
    mark = node.start_mark
    for key in path:
        found = _child(node, key)
        if found is None:
            break
        pointed, node = found
        mark = node.start_mark if at_value else pointed.start_mark
    return mark.line + 1


def _child(node: yaml.Node, key: Any) -> tuple[yaml.Node, yaml.Node] | None:
    """(the key node, the node it holds) for one path element."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == str(key):
                return k, v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key], node.value[key]
    return None
