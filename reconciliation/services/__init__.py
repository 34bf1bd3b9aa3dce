"""Reconciliation services: runs (services.runs), the scheduled inbox (services.inbox), implied prices
(services.prices). Matching itself is in services.buckets and services.requests."""
