"""The gateway's file store: only its own file ids name files (a batch's entries beside them,
or a path, are never reached through the Files API); files are their owner's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.batches.files import FileStore, StoredFile, new_id


def test_only_file_ids_name_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    file_id = new_id("file-")
    path = store.data_path("app:1", file_id)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    store.describe("app:1", StoredFile(file_id, "a.jsonl", "batch", 1, 0))
    (path.parent / "batch_0123.batch.json").write_text("{}")
    assert store.get("app:1", file_id) is not None
    assert store.get("app:2", file_id) is None  # another owner's
    for name in ("batch_0123.batch", "../app_1/" + file_id, "file-../../x", ""):
        assert store.get("app:1", name) is None
        assert not store.delete("app:1", name)
        with pytest.raises(ValueError):
            store.data_path("app:1", name)
    assert [f.id for f in store.list("app:1")[0]] == [file_id]
    with pytest.raises(ValueError):
        store.folder("../etc")
