"""Waiting for every instance of a pool to answer ready: the decision, without the I/O.

One rule: the wait is over when every URL answered 200 on its latest probe (ready) or when the deadline
passed (not ready, naming each instance that never became ready and what it last said).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Probe:
    url: str
    ready: bool = False
    last: str = "not probed"
    attempts: int = 0


@dataclass
class Wait:
    probes: dict[str, Probe] = field(default_factory=dict)

    @classmethod
    def of(cls, urls: list[str]) -> Wait:
        if not urls:
            raise ValueError("urls: at least one instance URL is needed")
        return cls({url: Probe(url) for url in urls})

    def record(self, url: str, status: int | None, error: str | None = None) -> None:
        probe = self.probes[url]
        probe.attempts += 1
        probe.ready = status == 200
        probe.last = f"HTTP {status}" if status is not None else (error or "no answer")

    def pending(self) -> list[str]:
        return [url for url, probe in self.probes.items() if not probe.ready]

    def done(self) -> bool:
        return not self.pending()

    def message(self, waited_s: float) -> str:
        if self.done():
            return f"all {len(self.probes)} instances ready after {waited_s:.1f} s"
        late = ", ".join(f"{p.url} ({p.last})" for p in self.probes.values() if not p.ready)
        return (
            f"{len(self.pending())} of {len(self.probes)} instances not ready after {waited_s:.1f} s: {late}"
        )

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {u: {"ready": p.ready, "last": p.last, "attempts": p.attempts} for u, p in self.probes.items()}
