"""How cpbench prints a number, the same in the terminal and in reports: times in µs, ms or s,
MACs in engineering units, shares as percentages, accuracies to four decimals."""

from __future__ import annotations


def seconds(value: float | None) -> str:
    """3.2 µs, 1.250 ms, 2.000 s."""
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.3f} ms"
    return f"{value:.3f} s"


def duration(value: float) -> str:
    """A wall time for people: '45 s', '12 min', '1 h 05 min'."""
    if value < 90:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"


def macs(value: int | None) -> str:
    """27.1M, 1.81G."""
    if value is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)


def percent(value: float | None, digits: int = 1) -> str:
    """0.0512 -> 5.1%."""
    return "-" if value is None else f"{value:.{digits}%}"


def points(value: float | None) -> str:
    """An accuracy difference in percentage points: 0.0031 -> 0.31."""
    return "-" if value is None else f"{value * 100:.2f}"


def accuracy(value: float | None) -> str:
    """0.9312."""
    return "-" if value is None else f"{value:.4f}"


def count(value: int | None) -> str:
    """12,800."""
    return "-" if value is None else f"{value:,}"
