"""The guard every flow passes first: which clients' calls are traced, with their state made on
a client's first call, and the cluster id each learns once its client knows it.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from kafka_autotrace.core.adapter import ReceiveAdapter, SendAdapter
from kafka_autotrace.core.client import ClientState, keep_state, state_of
from kafka_autotrace.core.scope import is_suppressed
from kafka_autotrace.core.telemetry import TelemetrySlot

_logger = logging.getLogger(__name__)

CLUSTER_ID_RETRY_S = 1.0
"""How often a client that has not learnt its cluster id yet is asked again."""


def traced_state(
    client: object, adapter: SendAdapter | ReceiveAdapter, slot: TelemetrySlot
) -> ClientState | None:
    """The state of a client whose call is to be traced, made on its first call (when its own
    statistics start being reported); None for a call nested in a traced one, and for a client
    to leave alone or traced by another. The one guard of every flow."""
    if is_suppressed():
        return None
    state = state_of(client)
    if state is None:
        try:
            state = adapter.describe(client)
            if state is None:
                return None
            keep_state(client, state)
            telemetry = slot.telemetry
            if adapter.figures is not None and telemetry is not None:
                telemetry.report_client(client, adapter.figures)
        except Exception:
            _logger.debug("kafka-autotrace: reading a client failed", exc_info=True)
            return None
    if state.delegated:
        return None
    return state


def learn_cluster_id(
    client: object, state: ClientState, adapter: SendAdapter | ReceiveAdapter
) -> None:
    """Name the cluster in the client's info once the client knows it, asking at most every
    :data:`CLUSTER_ID_RETRY_S` until then (confluent-kafka answers an unknown id by raising)."""
    now = time.monotonic()
    if not adapter.tells_cluster_id:
        state.cluster_due = None
    elif now >= (state.cluster_due or 0.0):
        state.cluster_due = now + CLUSTER_ID_RETRY_S
        try:
            cluster_id = adapter.cluster_id(client)
        except Exception:
            _logger.debug("kafka-autotrace: reading a cluster id failed", exc_info=True)
            return
        if isinstance(cluster_id, str) and cluster_id:
            state.info = dataclasses.replace(state.info, cluster_id=cluster_id)
            state.cluster_due = None
