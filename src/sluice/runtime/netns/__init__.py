"""Pod networking in network namespaces: the node namespace, pod namespaces, capture rules, dialing in."""
