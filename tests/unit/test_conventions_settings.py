"""The settings of the conventions' optional parts: header capture by globs with exclusions,
and partitions on the metrics."""

from __future__ import annotations

from kafka_autotrace.core.settings import Settings


def test_header_globs_exclusions_and_metric_partitions_are_read() -> None:
    settings, problems = Settings.read(
        {
            "KAFKA_AUTOTRACE_CAPTURE_HEADERS": "app-*, x-id,,",
            "KAFKA_AUTOTRACE_CAPTURE_HEADERS_EXCLUDE": " app-secret ,app-token*",
            "KAFKA_AUTOTRACE_METRIC_PARTITIONS": "true",
        }
    )
    assert problems == {}
    assert settings.capture_headers == ("app-*", "x-id")
    assert settings.capture_headers_exclude == ("app-secret", "app-token*")
    assert settings.metric_partitions is True


def test_by_default_no_header_is_captured_and_metrics_name_no_partition() -> None:
    settings = Settings.from_env({})
    assert settings.capture_headers_exclude == ()
    assert settings.metric_partitions is False
    assert not settings.captures_header("x-id")


def test_a_malformed_metric_partitions_value_falls_back_to_off() -> None:
    settings, problems = Settings.read({"KAFKA_AUTOTRACE_METRIC_PARTITIONS": "per-topic"})
    assert settings.metric_partitions is False
    assert "KAFKA_AUTOTRACE_METRIC_PARTITIONS" in problems


def test_captured_headers_match_a_glob_and_no_exclusion() -> None:
    settings = Settings(capture_headers=("app-*", "x-id"), capture_headers_exclude=("app-secret",))
    assert settings.captures_header("app-tenant")
    assert settings.captures_header("x-id")
    assert settings.captures_header("x-id")  # answered from the memo the second time
    assert not settings.captures_header("app-secret"), "an exclusion wins over a capture"
    assert not settings.captures_header("x-idx")
    assert not settings.captures_header("App-tenant"), "Kafka header names are case-sensitive"
    assert not settings.captures_header("traceparent")
