"""Rows to results: the mean of each metric (:func:`summarize`), a printed table (:func:`table`) and a JSON
file with the settings, seeds, summary and rows (:func:`write_results`)."""

from __future__ import annotations

from pathlib import Path

from lyra3d.errors import InputError


def summarize(rows: list[dict]) -> dict[str, float]:
    """Mean of every numeric column (NaNs skipped)."""
    if not rows:
        raise InputError("no results to summarize: evaluate at least one world (--worlds 1 or more)")
    keys = [k for k in rows[0] if k != "seed"]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r[k], (int, float)) and r[k] == r[k]]
        out[k] = sum(vals) / len(vals) if vals else float("nan")
    return out


def write_results(path: str | Path, settings: dict, seeds: list[int], summary: dict, rows: list[dict]) -> None:
    """An evaluation's JSON file (written atomically): settings, seeds, summary and per-world rows."""
    import json

    from lyra3d.core.files import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps({"settings": settings, "seeds": seeds, "summary": summary, "rows": rows},
                                        indent=1))


def table(summary: dict[str, float], title: str = "") -> str:
    """A Markdown table of a summary."""
    lines = ([f"### {title}", ""] if title else []) + ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in summary.items()]
    return "\n".join(lines)
