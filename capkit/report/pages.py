"""All pages of a report in one kernel: their notebooks merged into one, executed once, split back."""

from __future__ import annotations

from pathlib import Path

PAGE_KEY = "capkit_page"


def merge_notebooks(paths: list[Path]):
    """One notebook of every page's cells, each cell tagged with its page; the pages' ``parameters``
    cells become one (the first cell) so papermill injects the parameters once."""
    import nbformat

    params, cells = [], []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                params.append(cell.source)
                continue
            cell.metadata[PAGE_KEY] = path.name
            cells.append(cell)
        kernelspec = nb.metadata.get("kernelspec")
    merged = nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec} if kernelspec else {})
    merged.cells = [nbformat.v4.new_code_cell("\n".join(params), metadata={"tags": ["parameters"]})] + cells
    return merged


def split_pages(executed: Path, names: list[str], folder: Path) -> list[Path]:
    """Write one executed notebook per page (its parameter cells first) from the merged one."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    head = [c for c in nb.cells if PAGE_KEY not in c.metadata]
    out = []
    for name in names:
        page = nbformat.v4.new_notebook(metadata=nb.metadata)
        page.cells = head + [c for c in nb.cells if c.metadata.get(PAGE_KEY) == name]
        path = folder / name
        nbformat.write(page, str(path))
        out.append(path)
    return out


