"""Kubernetes DNS for pods: the name table (`names`), answers (`answer`), the server (`server`), the table
kept current from the store (`watch`), and the resolv.conf and hosts files a pod gets (`files`)."""
