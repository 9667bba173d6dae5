"""Prometheus text exposition read the way Prometheus reads it: prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Metrics:
    """One scrape's samples. Sample names keep their suffix (``_total``, ``_count``, ``_bucket``)."""

    samples: tuple[Sample, ...]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``; 0 when there are none."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """The samples called ``name``, summed by the value of ``label``."""
        totals: dict[str, float] = defaultdict(float)
        for sample in self.samples:
            if sample.name == name and label in sample.labels:
                totals[sample.labels[label]] += sample.value
        return dict(totals)


def parse(text: str) -> Metrics:
    """Parse exposition text; a malformed line raises ``ValueError`` as Prometheus would reject it."""
    families = text_string_to_metric_families(text)
    return Metrics(tuple(sample for family in families for sample in family.samples))


def scrape(url: str, timeout: float = 5.0) -> Metrics:
    """GET ``url`` (a ``/metrics`` endpoint) and parse it; any non-2xx answer raises."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse(response.read().decode())
