"""Sections of docs/metrics.md checked against a real Prometheus: what an e2e module of them has
in common, so that the module says only which sections, which apps and which numbers.

Each such module scrapes apps that run the Prometheus exporter, and checks that every query the
sections document is checked, gives the expected numbers, that every documented series is
scraped, and that the alerting rules load and evaluate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.docs import METRICS_DOC, documented_series, named_blocks
from support.processes import free_port
from support.prometheus import Prometheus, Sample, exporter_env, start_prometheus, wait_for_series

UNUSED = "http://127.0.0.1:9"
"""The OTLP endpoint of a scraped app: its metrics are scraped and its traces not exported."""


@dataclass(frozen=True)
class Scraping:
    """A Prometheus scraping one port per app, and the environment each app needs to serve its
    metrics on its port."""

    prometheus: Prometheus
    envs: Mapping[str, dict[str, str]]


@dataclass(frozen=True)
class DocumentedMetrics:
    """The ``sections`` of docs/metrics.md one module checks, whose alerting rules are the YAML
    block named ``rules``."""

    sections: tuple[str, ...]
    rules: str

    @property
    def queries(self) -> dict[str, str]:
        """Each documented PromQL query, by its name in the docs."""
        return named_blocks(METRICS_DOC, "promql", self.sections)

    @property
    def series(self) -> dict[str, list[str]]:
        """The series each documented metric is exported as, by the metric's name."""
        return documented_series(METRICS_DOC, self.sections)

    @property
    def rules_text(self) -> str:
        return named_blocks(METRICS_DOC, "yaml", self.sections)[self.rules]

    def assert_all_checked(self, expected: Collection[str]) -> None:
        """A query or rule block added to the docs without a check would go untested."""
        assert set(self.queries) == set(expected)
        assert set(named_blocks(METRICS_DOC, "yaml", self.sections)) == {self.rules}

    @contextmanager
    def scraping(self, folder: Path, apps: Iterable[str]) -> Iterator[Scraping]:
        """A Prometheus evaluating the documented rules (written to ``folder``) and scraping
        a free port for each of ``apps``, for the block."""
        rules = folder / "rules.yml"
        rules.write_text(self.rules_text + "\n")
        ports = {app: free_port() for app in apps}
        targets = [f"127.0.0.1:{port}" for port in ports.values()]
        with start_prometheus(targets, [rules]) as prometheus:
            yield Scraping(prometheus, {app: exporter_env(port) for app, port in ports.items()})

    def wait_for_query(
        self,
        prometheus: Prometheus,
        name: str,
        predicate: Callable[[list[Sample]], bool],
        timeout: float = 20.0,
    ) -> None:
        """Until the documented query ``name``, exactly as written, gives what ``predicate``
        accepts."""
        prometheus.wait_for(self.queries[name], predicate, timeout)

    def wait_for_series(self, prometheus: Prometheus, metric: str, timeout: float = 20.0) -> None:
        """Until Prometheus has scraped each series the docs give for ``metric``."""
        wait_for_series(prometheus, self.series[metric], timeout)


def assert_rules_evaluate(
    prometheus: Prometheus,
    names: Collection[str],
    ready: Callable[[dict[str, Any]], bool] = lambda rule: rule["health"] != "unknown",
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Once every loaded rule is ``ready`` (by default: evaluated), assert that the rules are
    those ``names`` and that each evaluated without an error; the rules."""
    rules = prometheus.wait_for_rules(
        lambda rules: bool(rules) and all(ready(rule) for rule in rules), timeout
    )
    assert {rule["name"]: (rule["health"], rule.get("lastError", "")) for rule in rules} == {
        name: ("ok", "") for name in names
    }
    return rules


def values_by(samples: list[Sample], *attributes: str) -> dict[Any, float]:
    """The samples' values by the labels of these OpenTelemetry attributes (dots become
    underscores): one label's value as the key, or a tuple of several."""
    labels = [attribute.replace(".", "_") for attribute in attributes]
    keys = [tuple(sample.labels.get(label) for label in labels) for sample in samples]
    return {key if len(key) > 1 else key[0]: s.value for key, s in zip(keys, samples)}


def all_within(got: dict[Any, float], keys: set[Any], low: float, high: float) -> bool:
    """One value per key, each finite and in (low, high]."""
    return set(got) == keys and all(
        math.isfinite(value) and low < value <= high for value in got.values()
    )
