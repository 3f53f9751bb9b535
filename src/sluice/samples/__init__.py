"""Sample manifests shipped with sluice (Bookinfo, the user story)."""
