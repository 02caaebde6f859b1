"""Content-addressed blob storage under the server directory."""
