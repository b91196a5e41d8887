"""What the Bedrock patch costs a botocore call that is not Bedrock inference (S3, STS, CountTokens...).

    python benchmarks/bedrock_passthrough.py

botocore has one entry point for every client, ``BaseClient._make_api_call``, so every AWS call of an
instrumented process passes through the wrapper. This times the wrapper alone around a no-op in place of
botocore's own work (which costs hundreds of microseconds per call), for an S3 client and for a
``bedrock-runtime`` operation that is not recorded. Reported: median nanoseconds per call.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import boto3  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

import otel_tokens  # noqa: E402
from otel_tokens._internal.calls.engine import Switch, make_wrapper  # noqa: E402
from otel_tokens._internal.setup.runtime import current_runtime  # noqa: E402
from otel_tokens.instrumentation.bedrock import BedrockInstrumentor  # noqa: E402

CALLS = 200_000


def per_call_ns(call) -> float:
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(CALLS):
            call()
        rounds.append((time.perf_counter() - start) / CALLS * 1e9)
    return statistics.median(rounds)


def main() -> None:
    otel_tokens.instrument(tracer_provider=TracerProvider())
    switch = Switch()
    switch.on = True
    wrapper = make_wrapper(BedrockInstrumentor().patches()[0], current_runtime().recorder, switch)
    keys = {"region_name": "us-east-1", "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "x"}
    s3 = boto3.client("s3", **keys)
    runtime = boto3.client("bedrock-runtime", **keys)

    def botocore_work(operation_name, api_params):
        return None

    direct = per_call_ns(lambda: botocore_work("ListBuckets", {}))
    other_service = per_call_ns(lambda: wrapper(botocore_work, s3, ("ListBuckets", {}), {}))
    other_operation = per_call_ns(lambda: wrapper(botocore_work, runtime, ("CountTokens", {}), {}))
    print(f"direct {direct:.0f} ns")
    print(f"S3 ListBuckets through the wrapper {other_service:.0f} ns (+{other_service - direct:.0f} ns)")
    print(f"bedrock-runtime CountTokens through the wrapper {other_operation:.0f} ns (+{other_operation - direct:.0f} ns)")


if __name__ == "__main__":
    main()
