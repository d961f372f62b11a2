"""Where the store is and how the admin CLI reaches the API: from flags and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config.load import ConfigError
from tollway.settings import admin_client_settings, default_data_dir, store_settings


def test_default_data_dir() -> None:
    assert default_data_dir({"HOME": "/h"}) == Path("/h/.local/share/tollway")
    assert default_data_dir({"HOME": "/h", "XDG_DATA_HOME": "/x"}) == Path("/x/tollway")
    assert default_data_dir({"TOLLWAY_DATA_DIR": "/d", "XDG_DATA_HOME": "/x"}) == Path("/d")


def test_store_settings_choose_one_store() -> None:
    env = {"HOME": "/h", "TOLLWAY_SECRET_KEY": "s" * 40, "TOLLWAY_ADMIN_TOKEN": "t" * 20}
    default = store_settings(environ=env)
    assert default.data_dir == Path("/h/.local/share/tollway") and default.store_url is None
    assert default.secret_key == "s" * 40 and default.admin_token == "t" * 20
    assert "s" * 40 not in repr(default) and "t" * 20 not in repr(default)
    assert store_settings("/data", environ=env).data_dir == Path("/data")
    url = store_settings(store="postgresql://u:pw@h/db", environ=env)
    assert url.data_dir is None and url.location == "postgresql://u:***@h/db"
    from_env = store_settings(environ={**env, "TOLLWAY_STORE_URL": "postgresql://h/db"})
    assert from_env.store_url == "postgresql://h/db"
    # An explicit data directory wins over the environment's URL.
    assert store_settings("/d", environ={**env, "TOLLWAY_STORE_URL": "x"}).store_url is None
    with pytest.raises(ConfigError):
        store_settings("/d", "postgresql://h/db", environ=env)


def test_admin_client_settings() -> None:
    assert admin_client_settings(environ={}).url == "http://127.0.0.1:8081"
    env = {"TOLLWAY_ADMIN_URL": "http://a:1/", "TOLLWAY_ADMIN_TOKEN": "boot"}
    assert admin_client_settings(environ=env).url == "http://a:1"
    assert admin_client_settings(environ=env).token == "boot"
    assert admin_client_settings(environ={**env, "TOLLWAY_TOKEN": "mine"}).token == "mine"
    assert admin_client_settings("http://b:2", environ=env).url == "http://b:2"
