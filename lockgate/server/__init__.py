"""The top of the application: the app factory, the one route table and `/+status`."""
