"""Projects, releases and files held by indexes, and the queries over them."""
