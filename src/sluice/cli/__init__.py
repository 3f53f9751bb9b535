"""The `sluice` command line: kubectl's verbs as a thin API client, plus the daemon's up/down/status/demo."""
