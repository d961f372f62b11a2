"""State the gateway keeps for its clients' conversations: stored Responses (`store: true`,
`previous_response_id`, `GET`/`DELETE /v1/responses/{id}`, their input items), each owned by
the app (or key) that made it and never visible to another.

Kept off the event loop: every read and write runs in the store's own thread."""
