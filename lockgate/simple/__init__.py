"""The simple repository API (PEP 503/629/658/691/700/714): pages and negotiation."""
