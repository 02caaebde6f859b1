"""What an index offers through its inheritance chain: its own projects, its
bases', and its mirrors' cached pages, merged under the dependency-confusion
guard. Every read API (simple pages, the JSON API, file lookups) asks here."""
