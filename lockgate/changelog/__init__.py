"""The changelog: every mutation as one serial-numbered, hash-chained entry."""
