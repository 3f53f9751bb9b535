"""The local "kubelet": pod IPs, container processes, probes, restarts, container logs.

Deliberately import-free: every container runs under `python -m sluice.runtime.shim`, and importing this
package is part of that shim's start-up. The daemon imports `sluice.runtime.kubelet` directly.
"""
