"""PNG plots beside a report: one figure of the report's size, labelled and saved under ``plots/``."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

PLOTS = "plots"
_written: list[str] | None = None


@contextmanager
def recording():
    """Collect the path of every plot saved in the block (a render's plots, for its output manifest)."""
    global _written
    outer, _written = _written, []
    try:
        yield _written
    finally:
        _written = outer


def figure():
    """A new (figure, axes) of the report's plot size, on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 3.2), dpi=100)


def save(fig, ax, out_dir: Path, name: str, *, xlabel: str, ylabel: str, title: str, legend_size: int = 7) -> str:
    """Label, save as ``out_dir/plots/name`` and close; returns the path relative to the report."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=legend_size)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_dir, name)


def save_figure(fig, out_dir: Path, name: str, **savefig) -> str:
    """Save ``fig`` as ``out_dir/plots/name`` and close it; returns the path relative to the report."""
    import matplotlib.pyplot as plt

    rel = (Path(PLOTS) / name).as_posix()
    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / rel, **savefig)
    plt.close(fig)
    if _written is not None:
        _written.append(rel)
    return rel
