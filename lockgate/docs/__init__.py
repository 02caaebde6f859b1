"""Documentation of releases: zips of built HTML uploaded with devpi's
`:action=doc_upload`, served from the zip under `…/{project}/{version}/+doc/`."""
