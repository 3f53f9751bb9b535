"""The console's backend: the Kiali-style graph builder (`graph`) and the JSON API (`api`).

The daemon mounts `console_app` on the console port; the React UI (a later part) reads its `/api/`.
"""
