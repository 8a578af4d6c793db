"""Publish a deployment (tenants, intents, predictors, routes) to a test namespace's config topic.

The helpers live in the package (`muse_stream.bench.harness`), shared with the benchmarks."""

from muse_stream.bench.harness import create_tenants, deployment, publish

__all__ = ["create_tenants", "deployment", "publish"]
