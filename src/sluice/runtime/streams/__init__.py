"""`kubectl exec`, `attach` and `port-forward` as the kubelet serves them (see `sluice.runtime.streams.source`)."""
