"""Property-based API testing from the OpenAPI schema: no generated request may cause a server error.

schemathesis generates requests (valid and invalid JSON bodies, multipart uploads, wrong types) for
every operation in /openapi.json and checks that the service never answers 5xx, answers only the
status codes and content types it documents, and that documented response bodies match their
schemas. Examples are limited per operation so the run stays within seconds.

The operations are driven through hypothesis directly rather than schemathesis' pytest fixture
integration, which reads a pytest-internal attribute that pytest 9 removed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from ecgkt.serve.app import create_app
from ecgkt.serve.settings import ServeSettings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The default run is derandomized (the same examples every time, so CI is reproducible);
# ECGKT_FUZZ_EXAMPLES=1000 ECGKT_FUZZ_RANDOM=1 fuzzes deeper with fresh random examples.
EXAMPLES_PER_OPERATION = int(os.environ.get("ECGKT_FUZZ_EXAMPLES", "30"))
RANDOM_EXAMPLES = os.environ.get("ECGKT_FUZZ_RANDOM") == "1"


@pytest.fixture(scope="module")
def api_schema(bundle_path: Path) -> schemathesis.BaseSchema:
    app = create_app(bundle_path, "torch", ServeSettings(max_upload_mb=1.0, inference_timeout_s=20.0))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_covered(api_schema: schemathesis.BaseSchema) -> None:
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == {"GET /healthz", "GET /v1/model", "POST /v1/predict", "POST /v1/predict/fhir", "POST /v1/report"}


@pytest.mark.parametrize(
    "label", ["GET /healthz", "GET /v1/model", "POST /v1/predict", "POST /v1/predict/fhir", "POST /v1/report"]
)
def test_no_server_errors(api_schema: schemathesis.BaseSchema, label: str) -> None:
    operation = next(r.ok() for r in api_schema.get_all_operations() if r.ok().label == label)
    calls = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=not RANDOM_EXAMPLES,
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(checks=CHECKS)
        calls.append(response.status_code)

    run()
    assert calls, "schemathesis generated no request"
