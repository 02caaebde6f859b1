"""devpi compatibility: what devpi-client reads that lockgate's own API does not
already answer in devpi's shapes (`/+api` discovery, `/+login`, project and
release JSON)."""
