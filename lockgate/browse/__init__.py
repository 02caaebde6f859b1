"""The read-only browser pages of indexes, projects and releases (`/{user}/{index}`,
`…/{project}`, `…/{project}/{version}`): read services that gather what a page shows from
the other domains in a few queries, the description renderer, and the page handlers."""
