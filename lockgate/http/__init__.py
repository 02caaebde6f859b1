"""HTTP plumbing every view uses: request parsing, JSON answers, credentials from
headers, file responses, the page cache and the middleware. Imports no views."""
