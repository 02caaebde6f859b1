"""Users, their passwords and HTTP Basic authentication."""
