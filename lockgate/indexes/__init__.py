"""Indexes (`user/index`): their configuration, validation and inheritance chains."""
