"""A batch file's YAML, read with bounds: aliases may not expand without limit, nesting may not exhaust the stack."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from od_export.errors import OdExportError

#: A batch file of thousands of jobs is well under a megabyte.
MAX_BATCH_BYTES = 16 * 2**20
#: YAML nodes once every alias is expanded: a batch file of thousands of jobs has far fewer.
MAX_BATCH_NODES = 200_000


def load_yaml(text: str, file: Path, error: type[OdExportError]) -> Any:
    """``yaml.safe_load`` with bounds: aliases may not expand past :data:`MAX_BATCH_NODES` nodes (a
    "billion laughs" file of 600 bytes otherwise takes gigabytes), nesting may not exhaust the stack."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, file, error)
        return loader.construct_document(node)
    except RecursionError:
        raise error(f"{file}: nested too deeply to be a batch file; a batch file is a mapping with a "
                             "list of `jobs`") from None
    finally:
        loader.dispose()


def _check_expanded_size(root: Any, file: Path, error: type[OdExportError]) -> None:
    """Count the nodes the document has once aliases are expanded, without expanding them."""
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done and id(node) in open_nodes:
            raise error(f"{file}: an alias refers to a value that contains it; a batch file cannot be "
                                 "recursive")
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_BATCH_NODES:
                raise error(f"{file}: its aliases expand to more than {MAX_BATCH_NODES:,} values, far more than "
                                     "any batch file; write the jobs out, or use `defaults` for what they share")
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
