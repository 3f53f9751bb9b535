"""The Kubernetes-compatible API server: discovery, OpenAPI, CRUD, patch, watch, Status errors, auth."""
