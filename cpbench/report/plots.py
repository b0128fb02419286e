"""Matplotlib figures for reports (PNG, headless): the analogs of paper 000's Figs. 1-2 and paper 003's
time-against-FLOPs figure. Each function takes plain arrays and writes one file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 110


def _figure(width: float = 6.0, height: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI)
    ax.grid(True, which="both", alpha=0.3)
    return plt, fig, ax


def _log_axes(ax, xlabel: str, ylabel: str, title: str, legend_size: int = 8) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=legend_size)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def predicted_vs_measured(path: Path, measured: np.ndarray, predicted: np.ndarray, title: str, unit: str,
                          band: float, log: bool = True) -> Path:
    """Paper 000 Fig. 1: each config's prediction against its measurement, with a +-band corridor."""
    plt, fig, ax = _figure()
    lo, hi = float(min(measured.min(), predicted.min())), float(max(measured.max(), predicted.max()))
    line = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi, 50)
    ax.plot(line, line, color="black", lw=1, label="exact")
    ax.fill_between(line, line * (1 - band), line * (1 + band), color="tab:green", alpha=0.15, label=f"±{band:.0%}")
    ax.scatter(measured, predicted, s=14, color="tab:blue", label="configs (held out)")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"measured {unit}")
    ax.set_ylabel(f"predicted {unit}")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def time_against_macs(path: Path, macs: np.ndarray, seconds: np.ndarray, lines: dict[str, tuple[np.ndarray, np.ndarray]],
                      title: str, extra: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                      predictions: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """Log-log time against MACs: measurements, fitted lines of MACs alone (paper 000's eq. 1), the
    predictions of models that are not a function of MACs alone as markers, and the classic zoo
    (paper 003's figure)."""
    plt, fig, ax = _figure()
    ax.scatter(macs, seconds * 1e6, s=12, color="tab:blue", label="family configs (measured)", zorder=3)
    for label, (x, y) in (predictions or {}).items():
        ax.scatter(x, y * 1e6, s=14, marker="x", color="tab:orange", label=label, zorder=3)
    for label, (x, y) in (extra or {}).items():
        ax.scatter(x, y * 1e6, s=40, marker="D", color="tab:red", label=label, zorder=4)
    for label, (x, y) in lines.items():
        order = np.argsort(x)
        ax.plot(x[order], y[order] * 1e6, lw=1.2, color="tab:green", label=label)
    _log_axes(ax, "MACs (batch 1)", "time per inference (µs)", title)
    return _save(plt, fig, path)


def residuals_against_macs(path: Path, macs: np.ndarray, residuals: dict[str, np.ndarray], title: str) -> Path:
    plt, fig, ax = _figure()
    for label, rel in residuals.items():
        ax.scatter(macs, rel * 100, s=10, label=label, alpha=0.8)
    ax.axhline(0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("MACs (batch 1)")
    ax.set_ylabel("held-out relative error (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def least_time_for_target(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Path:
    """Minimal time against target precision, one curve per device (relative to its baseline time)."""
    plt, fig, ax = _figure()
    for label, (targets, relative) in curves.items():
        ax.plot(targets, relative, marker="o", ms=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("target precision")
    ax.set_ylabel("least predicted time / baseline time")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def machine_lines(path: Path, lines: dict[str, tuple[float, float]], title: str) -> Path:
    """Each machine's fitted eq. (1) line t = alpha1 * MACs + alpha0, log-log, over the family's MACs."""
    plt, fig, ax = _figure()
    macs = np.geomspace(1e3, 3e7, 60)
    for label, (alpha1, alpha0) in lines.items():
        ax.plot(macs, alpha1 * macs + alpha0, label=label)
    _log_axes(ax, "MACs", "time per inference (s), fitted", title, legend_size=7)
    return _save(plt, fig, path)
