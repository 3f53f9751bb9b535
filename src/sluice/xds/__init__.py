"""xDS: ADS server, snapshot cache, translation of mesh config to Envoy resources."""
