"""OpenAI's Files API, served by the gateway itself (proxy/handlers/files.py), whatever the
providers: uploads are kept in the node's state folder (batches/files.py), never passed to a
provider's own Files API.

The API has no model: its calls pass key auth and the request phase only, and are recorded
(api "openai.files") without a model. Its POST is a multipart form (`form`), so the router
streams the upload (up to `max_upload_bytes`) and the handler writes it to disk as it comes.
"""

from __future__ import annotations

from typing import Final

from tollway.errors import GatewayError
from tollway.llm.media_apis import MediaApi

# The purposes OpenAI's Files API takes.
PURPOSES: Final = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Provider types whose own Batch API (OpenAI's Files and Batches endpoints, at the provider's
# base URL) a batch may be passed through to. Azure's (`/openai/batches`, `/openai/files`,
# with its api-version and a global-batch deployment type) is not done yet.
BATCH_API_TYPES: Final = frozenset({"openai"})


class OpenAIFiles(MediaApi):
    name = "openai.files"
    operation = "files"
    endpoint = "/files"
    form = True

    def no_such_file(self, file_id: str) -> GatewayError:
        return GatewayError(404, f"No such File object: {file_id}", param="id")


OPENAI_FILES = OpenAIFiles()


class OpenAIBatches(MediaApi):
    """The Batches API, run by the gateway (proxy/handlers/batches.py): errors in OpenAI's
    format; no model of its own (its lines are model calls, each with its own record)."""

    name = "openai.batches"
    operation = "batches"
    endpoint = "/batches"


OPENAI_BATCHES = OpenAIBatches()
