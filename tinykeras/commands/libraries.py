"""``tinykeras libraries``."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the libraries as JSON.")
def libraries(as_json: bool) -> None:
    """List the TFLite-Micro libraries tinykeras knows (libraries/*.toml): commit, kernels, ops, gaps, and
    which boards pin each one.

    \b
    Example:
      tinykeras libraries
      tinykeras libraries --json | jq '.[] | {id, gaps}'
      tinykeras inspect model.tflite --check --library chirale-2.0.0
    """
    from tinykeras.boards import list_boards
    from tinykeras.libraries import board_library, list_libraries

    pinned: dict[str, list[str]] = {}
    for board in list_boards():
        lib = board_library(board)
        if lib is not None:
            pinned.setdefault(lib.id, []).append(board.name)
    libs = list_libraries()
    if as_json:
        click.echo(json.dumps([dict(lib.summary(), boards=pinned.get(lib.id, [])) for lib in libs], indent=2))
        return
    rows = [("library", "version", "commit", "kernels", "ops", "gaps", "boards")]
    for lib in libs:
        gaps = ", ".join(f"{g.quantization} {g.op}" for g in lib.gaps) or "-"
        rows.append((lib.id, lib.version, lib.commit[:7], "/".join(lib.kernels), str(len(lib.ops)), gaps,
                     ", ".join(pinned.get(lib.id, [])) or "-"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo("Why each is pinned (or not): `tinykeras libraries --json` (reason), or libraries/<id>.toml.")
