"""Tenant isolation on the broker: principals, ACLs, credentials."""
