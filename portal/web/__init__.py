"""The web side: blueprints, request plumbing, HTTP caching, i18n, maps, static export."""
