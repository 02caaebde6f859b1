"""The PyPI-style JSON API (`/{user}/{index}/pypi/{project}/json`)."""
