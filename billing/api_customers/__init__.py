"""The customers API (a server key with the `customers` scope): customers by the reseller's own id, their plan,
credits, API keys, reads and portal sessions. Every POST takes an `Idempotency-Key` (required on grants)."""
