"""The changelog: every mutation as one serial-numbered, hash-chained entry.

It knows no domain: each domain declares its entry kinds (`<domain>/entries.py`)
and registers them in an `EntryRegistry` where the application starts."""
