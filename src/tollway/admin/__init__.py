"""The admin API: an ASGI application (FastAPI) over the store, under /admin/v1/.

Not on the hot path: it runs on its own port. `create_admin_app(store)` builds it;
`admin.server` serves it on a host and port or on a socket bound beforehand."""
