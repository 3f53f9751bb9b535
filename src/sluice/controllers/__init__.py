"""Controllers that run inside the daemon: Deployment → Pods, Service → ClusterIP and Endpoints, Events."""
