"""Create tenants' topics and publish a deployment to a test namespace's config topic.

The helpers live in the package (`muse_stream.clients.admin`, `muse_stream.synthetic_deployment`),
shared with the demo and the benchmarks."""

from muse_stream.clients.admin import TopicAdmin, ensure_tenant_topics
from muse_stream.synthetic_deployment import deployment, publish

__all__ = ["TopicAdmin", "deployment", "ensure_tenant_topics", "publish"]
