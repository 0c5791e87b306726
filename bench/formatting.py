"""Number formatting and the median, shared by the benchmark's tables
(summary.py, targets.py, instruction_table.py): one way to print a rate, a
time or a ratio everywhere."""
import statistics


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ms(us):
    return "–" if us is None else f"{us / 1000:.3f}"


def rate(rps):
    return "–" if rps is None else f"{rps:,.0f}"


def micros(us):
    return "–" if us is None else f"{us:.1f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def times(x):
    return "–" if x is None else f"{x:.2f}×"


def mb(kb):
    return None if kb is None else kb * 1024 / 1e6
