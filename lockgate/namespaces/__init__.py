"""Reserved namespaces (PEP 752's shape): name prefixes root reserves for an owner.
Only the owner (or root) may create projects in one, and mirror indexes never take
names in one from their upstream unless a stage index explicitly whitelists them."""
