"""The `sluice up` daemon: state directory, PKI, kubeconfig, process control, and the asyncio main."""
