"""AWS Bedrock instrumentor (boto3 / botocore): ``BedrockInstrumentor().instrument()``.

Covers ``converse``, ``converse_stream``, ``invoke_model`` and ``invoke_model_with_response_stream`` of
every ``bedrock-runtime`` client, made before or after ``instrument()``. botocore generates client
classes at run time, so the one patch is ``botocore.client.BaseClient._make_api_call``, the entry point
of every client; calls of other services (S3, STS, ...) and other Bedrock operations go straight to
botocore after one service-name check.

What the caller gets is botocore's own response: a ``ConverseStream`` ``stream`` and an
``InvokeModelWithResponseStream`` ``body`` are the SDK's ``EventStream`` seen through a proxy (``isinstance``
holds), and an ``InvokeModel`` ``body`` is a ``StreamingBody`` over the same bytes, read once here to
find the model family's usage.

aiobotocore (``AioBaseClient._make_api_call``) is not covered.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor


class BedrockInstrumentor(SDKInstrumentor):
    package = "botocore"
    requirement = "botocore >= 1.34.116"  # the first with Converse and ConverseStream

    def patches(self) -> Sequence[Patch]:
        from otel_tokens._internal.providers import bedrock as adapter  # loaded with the SDK, not before

        return (Patch("botocore.client", "BaseClient._make_api_call", adapter.BedrockRuntime(), "sync"),)
