"""Low-level Kubernetes helpers that every layer may use (label and field selectors, …); imports nothing above
the standard library."""
