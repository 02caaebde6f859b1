"""Legacy (twine-compatible) upload handling: form and distribution-file validation."""
