"""fortio's statistics: a counter (count, avg, stddev, min, max, sum) and its fixed-bucket histogram, with
the exact text fortio prints (`Aggregated Function Time : count …`, `# range, mid point, percentile, count`,
`# target 50% …`)."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from sluice.samples.fortio.gofmt import g, gp

__all__ = ["Counter", "Histogram", "Bucket", "HistogramData", "parse_percentiles", "BUCKETS"]

# fortio's bucket bounds (in units of the histogram's divider): by 1 to 11, then 2, 5, 10, … up to 100000.
BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100,
           120, 140, 160, 180, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 2000, 3000, 4000, 5000,
           7500, 10000, 20000, 30000, 40000, 50000, 75000, 100000)
_NUM_BUCKETS = len(BUCKETS) + 1  # the last one holds values above 100000


@dataclass
class Counter:
    count: int = 0
    min: float = 0.0
    max: float = 0.0
    sum: float = 0.0
    sum_of_squares: float = 0.0

    def record(self, v: float) -> None:
        first = self.count == 0
        self.count += 1
        if first:
            self.min = self.max = v
        elif v < self.min:
            self.min = v
        elif v > self.max:
            self.max = v
        self.sum += v
        self.sum_of_squares += v * v

    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def stddev(self) -> float:
        if not self.count:
            return 0.0
        sigma = (self.sum_of_squares - self.sum * self.sum / self.count) / self.count
        return math.sqrt(sigma) if sigma > 0 else 0.0

    def transfer(self, src: Counter) -> None:
        if src.count == 0:
            return
        if self.count == 0:
            self.count, self.min, self.max = src.count, src.min, src.max
            self.sum, self.sum_of_squares = src.sum, src.sum_of_squares
            return
        self.count += src.count
        self.min = min(self.min, src.min)
        self.max = max(self.max, src.max)
        self.sum += src.sum
        self.sum_of_squares += src.sum_of_squares

    def line(self, msg: str) -> str:
        return (f"{msg} : count {self.count} avg {gp(self.avg(), 8)} +/- {gp(self.stddev(), 4)} "
                f"min {g(self.min)} max {g(self.max)} sum {gp(self.sum, 9)}\n")


@dataclass(frozen=True)
class Bucket:
    start: float
    end: float
    percent: float  # cumulative
    count: int


@dataclass
class HistogramData:
    count: int
    min: float
    max: float
    sum: float
    avg: float
    stddev: float
    data: list[Bucket] = field(default_factory=list)
    percentiles: list[tuple[float, float]] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        if not self.data:
            return 0.0
        if p >= 100:
            return self.max
        prev = 100.0 / self.count
        if p <= prev:
            return self.min
        for b in self.data:
            if p <= b.percent:
                return b.start + (p - prev) / (b.percent - prev) * (b.end - b.start)
            prev = b.percent
        return self.max

    def with_percentiles(self, ps: list[float]) -> HistogramData:
        if self.count:
            self.percentiles = [(p, self.percentile(p)) for p in ps]
        return self

    def text(self, msg: str) -> str:
        if not self.data:
            return f"{msg} : no data\n"
        out = [f"{msg} : count {self.count} avg {gp(self.avg, 8)} +/- {gp(self.stddev, 4)} min {g(self.min)} "
               f"max {g(self.max)} sum {gp(self.sum, 9)}\n", "# range, mid point, percentile, count\n"]
        for i, b in enumerate(self.data):
            sep = ">=" if i == 0 else ">"
            out.append(f"{sep} {gp(b.start, 6)} <= {gp(b.end, 6)} , {gp((b.start + b.end) / 2, 6)} , "
                       f"{b.percent:.2f}, {b.count}\n")
        out += [f"# target {g(p)}% {gp(v, 6)}\n" for p, v in self.percentiles]
        return "".join(out)


class Histogram:
    """Values bucketed after `(v - offset) / divider` (fortio uses divider 0.001: millisecond buckets)."""

    def __init__(self, offset: float = 0.0, divider: float = 0.001) -> None:
        self.counter = Counter()
        self.offset = offset
        self.divider = divider
        self.hdata = [0] * _NUM_BUCKETS

    def record(self, v: float) -> None:
        self.counter.record(v)
        scaled = (v - self.offset) / self.divider
        if scaled <= BUCKETS[0]:
            idx = 0
        elif scaled > BUCKETS[-1]:
            idx = _NUM_BUCKETS - 1
        else:
            whole = int(scaled)
            if scaled - whole < 1e-12:
                whole -= 1  # intervals are ]start, end]: a value on a bound belongs below it
            idx = bisect.bisect_right(BUCKETS, whole)
        self.hdata[idx] += 1

    def transfer(self, src: Histogram) -> None:
        self.counter.transfer(src.counter)
        for i, n in enumerate(src.hdata):
            self.hdata[i] += n

    def export(self) -> HistogramData:
        c = self.counter
        res = HistogramData(c.count, c.min, c.max, c.sum, c.avg(), c.stddev())
        last = max((i for i, n in enumerate(self.hdata) if n), default=-1)
        if last < 0:
            return res
        prev = BUCKETS[0]
        total = 0
        for i in range(last + 1):
            n = self.hdata[i]
            if n == 0:
                if i < len(BUCKETS):
                    prev = BUCKETS[i]
                continue
            total += n
            start = c.min if not res.data else self.divider * prev + self.offset
            if i < len(BUCKETS):
                end = self.divider * BUCKETS[i] + self.offset
                prev = BUCKETS[i]
            else:
                end = c.max
            res.data.append(Bucket(start, end, 100.0 * total / c.count, n))
        tail = res.data[-1]
        res.data[-1] = Bucket(tail.start, c.max, tail.percent, tail.count)
        return res


def parse_percentiles(text: str) -> list[float]:
    """`-p "50,75,90,99,99.9"` (ValueError on anything that is not a list of numbers)."""
    out: list[float] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f'can\'t parse "{part}" as a float') from None
        out.append(value)
    return out
