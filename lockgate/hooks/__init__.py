"""Webhooks and CI triggers: per-index hooks (generic signed JSON, Jenkins, GitLab)
and their durable deliveries, derived from the changelog and sent by the primary."""
