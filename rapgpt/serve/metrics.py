"""Prometheus metrics of the server: requests, errors, latency, time to first token, tokens and the queue.

Each server owns its own registry (rather than prometheus_client's global one), so that several apps in one
process, as in the tests, count separately.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds: fine steps below a second, where a streaming client feels the difference, coarse ones above.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rapgpt_http_requests", "HTTP requests answered, by path and status code",
                                ["path", "status"], registry=r)
        self.latency = Histogram("rapgpt_http_request_duration_seconds",
                                 "Time from a request's arrival to the end of its response (a whole stream)",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("rapgpt_errors", "Requests that failed, by kind (validation, auth, queue_full, "
                              "not_ready, queue_timeout, time_limit, disconnect, internal)", ["kind"], registry=r)
        self.ttft = Histogram("rapgpt_time_to_first_token_seconds",
                              "Time from a generation's submission to its first token, queueing included",
                              ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.generations = Counter("rapgpt_generations", "Generations finished, by model and finish reason",
                                   ["model", "finish_reason"], registry=r)
        self.tokens = Counter("rapgpt_generated_tokens", "Tokens generated", ["model"], registry=r)
        self.prompt_tokens = Counter("rapgpt_prompt_tokens", "Prompt tokens read", ["model"], registry=r)
        self.queue_depth = Gauge("rapgpt_queue_depth", "Generations waiting for a place in the batch", registry=r)
        self.batch_size = Gauge("rapgpt_batch_size", "Generations running in the batch", registry=r)

    def render(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)
