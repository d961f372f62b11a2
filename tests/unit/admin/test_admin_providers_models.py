"""Providers (credentials write-only), models and prices through the admin API."""

from __future__ import annotations

from admin_calls import error, fields, ok, service, team
from control_plane import Admin


def test_providers_are_for_platform_admins_and_hide_credentials(admin: Admin) -> None:
    root = admin.root
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    body = {"name": "oa", "type": "openai", "credentials": {"api_key": "sk-secret-value"}}
    created = root.post("/providers", json=body)
    assert "sk-secret-value" not in created.text
    provider = ok(created, 201)
    assert provider["credentials_set"] == ["api_key"]
    assert provider["settings"]["credentials"] is None
    error(root.post("/providers", json=body), 409)
    error(boss.post("/providers", json={**body, "name": "x"}), 403)
    error(boss.get("/providers"), 403)
    error(boss.get(f"/providers/{provider['id']}"), 403)
    audit = root.get("/audit", params={"entity_type": "provider"}).text
    assert "sk-secret-value" not in audit and "credentials_set" in audit
    # PUT without credentials keeps them; with {} removes them.
    path = f"/providers/{provider['id']}"
    kept = ok(root.put(path, json={"name": "oa", "type": "openai", "max_idle_connections": 5}))
    assert kept["credentials_set"] == ["api_key"] and kept["settings"]["max_idle_connections"] == 5
    cleared = ok(root.put(path, json={"name": "oa", "type": "openai", "credentials": {}}))
    assert cleared["credentials_set"] == []
    error(root.put(path, json={"name": "oa", "type": "openai"}, headers={"If-Match": '"1"'}), 412)


def test_provider_validation_names_fields(admin: Admin) -> None:
    root = admin.root
    problems = fields(
        root.post(
            "/providers",
            json={"name": "x", "type": "azure", "base_url": "ftp://h", "bogus": 1},
        )
    )
    assert problems["base_url"] == "must be an http:// or https:// URL"
    assert problems["bogus"] == "unknown field"
    assert "" in fields(root.post("/providers", json={"name": "x", "type": "bedrock"}))
    both = fields(
        root.post(
            "/providers",
            json={
                "name": "x",
                "type": "openai",
                "api_key_env": "K",
                "credentials": {"api_key": "v"},
            },
        )
    )
    assert "either credentials.api_key or api_key_env" in "".join(both.values())
    assert "name" in fields(root.post("/providers", json={"name": "bad name", "type": "openai"}))


def test_models_and_deployments(admin: Admin) -> None:
    root = admin.root
    member = admin.client(admin.user("mem", {"a": "viewer"}))
    ok(root.post("/providers", json={"name": "p", "base_url": "http://127.0.0.1:9/v1"}), 201)
    bad = fields(root.post("/models", json={"name": "m", "deployments": [{"provider": "nope"}]}))
    assert bad == {"deployments[0].provider": "unknown provider 'nope'"}
    assert "deployments" in fields(root.post("/models", json={"name": "m", "deployments": []}))
    model = ok(
        root.post(
            "/models",
            json={"name": "gpt-4o", "deployments": [{"provider": "p", "model": "gpt-4o-2024"}]},
        ),
        201,
    )
    ok(root.post("/models", json={"name": "*", "deployments": [{"provider": "p"}]}), 201)
    error(root.post("/models", json={"name": "gpt-4o", "deployments": [{"provider": "p"}]}), 409)
    # Everyone reads models; only platform admins change them.
    listed = ok(member.get("/models", params={"provider": "p"}))["items"]
    assert {m["name"] for m in listed} == {"gpt-4o", "*"}
    error(member.post("/models", json={"name": "z", "deployments": [{"provider": "p"}]}), 403)
    replaced = ok(
        root.put(
            f"/models/{model['id']}",
            json={"name": "gpt-4o", "deployments": [{"provider": "p"}, {"provider": "p"}]},
        )
    )
    assert len(replaced["deployments"]) == 2 and replaced["revision"] == 2
    # A provider in use, or a model a service grants, cannot go.
    providers = ok(root.get("/providers"))["items"]
    assert "serves models" in error(root.delete(f"/providers/{providers[0]['id']}"), 409)["message"]
    service(root, team(root, "a"), "chat", models=["gpt-4o"])
    assert "granted by" in error(root.delete(f"/models/{model['id']}"), 409)["message"]
    error(
        root.put(
            f"/models/{model['id']}", json={"name": "renamed", "deployments": [{"provider": "p"}]}
        ),
        409,
    )


def test_model_routing_and_fallbacks_are_kept_and_checked(admin: Admin) -> None:
    root = admin.root
    ok(root.post("/providers", json={"name": "p", "base_url": "http://127.0.0.1:9/v1"}), 201)
    backup = ok(root.post("/models", json={"name": "b", "deployments": [{"provider": "p"}]}), 201)
    body = {
        "name": "a",
        "deployments": [
            {"provider": "p", "model": "x", "name": "east", "weight": 3, "rpm": 100},
            {"provider": "p", "model": "x", "weight": 0, "tpm": 5000},
        ],
        "routing": {"strategy": "usage", "retries": 1, "breaker": {"cooldown_s": 2}},
        "fallbacks": ["b"],
        "content_policy_fallback": "b",
    }
    created = ok(root.post("/models", json=body), 201)
    assert created["deployments"][0] == {
        "provider": "p",
        "model": "x",
        "name": "east",
        "weight": 3,
        "rpm": 100,
        "tpm": None,
    }
    assert created["routing"]["strategy"] == "usage"
    assert created["routing"]["breaker"]["cooldown_s"] == 2
    assert created["routing"]["retry_budget"] == 0.2  # defaults filled in
    assert created["fallbacks"] == ["b"] and created["content_policy_fallback"] == "b"
    # What the store keeps is what the gateway serves.
    state = admin.store.load_state().models["a"]
    assert state.routing.strategy == "usage" and state.fallbacks == ["b"]
    assert [d.weight for d in state.deployments] == [3, 0]
    assert state.labels() == ["east", "p/x"]
    # Fallbacks name models of the store, never the model itself.
    problems = fields(
        root.post(
            "/models",
            json={**body, "name": "c", "fallbacks": ["nope", "c"], "content_policy_fallback": None},
        )
    )
    assert problems == {
        "fallbacks[0]": "unknown model 'nope'",
        "fallbacks[1]": "a model cannot fall back to itself",
    }
    assert "routing.strategy" in fields(
        root.post("/models", json={**body, "name": "c", "routing": {"strategy": "fastest"}})
    )
    twice = fields(
        root.post(
            "/models",
            json={
                "name": "c",
                "deployments": [{"provider": "p", "name": "n"}, {"provider": "p", "name": "n"}],
            },
        )
    )
    assert "deployment names must differ: n" in "".join(twice.values())
    # A model others fall back to cannot go, nor be renamed.
    assert "fall back to 'b'" in error(root.delete(f"/models/{backup['id']}"), 409)["message"]
    renamed = {"name": "b2", "deployments": [{"provider": "p"}]}
    error(root.put(f"/models/{backup['id']}", json=renamed), 409)
    # Back to the defaults: the settings are dropped.
    plain = ok(
        root.put(f"/models/{created['id']}", json={"name": "a", "deployments": [{"provider": "p"}]})
    )
    assert plain["fallbacks"] == [] and plain["routing"]["strategy"] == "round_robin"
    ok(root.delete(f"/models/{backup['id']}"), 204)


def test_a_models_context_fitting_is_kept_and_checked(admin: Admin) -> None:
    root = admin.root
    ok(root.post("/providers", json={"name": "p", "base_url": "http://127.0.0.1:9/v1"}), 201)
    ok(root.post("/models", json={"name": "mini", "deployments": [{"provider": "p"}]}), 201)
    context = {"max_input_tokens": 8000, "keep_first_turns": 1, "summary_model": "mini"}
    body = {"name": "big", "deployments": [{"provider": "p"}], "context": context}
    created = ok(root.post("/models", json=body), 201)
    assert created["context"] == {
        **context,
        "reserve_output_tokens": 4096,
        "summary_tokens": 1024,
        "select": "recent",
    }
    assert admin.store.load_state().models["big"].context.summary_model == "mini"
    # A model may summarise with itself; an unknown one is refused, naming the field.
    ok(
        root.post("/models", json={**body, "name": "self", "context": {"summary_model": "self"}}),
        201,
    )
    problems = fields(
        root.post("/models", json={**body, "name": "c", "context": {"summary_model": "nope"}})
    )
    assert problems == {"context.summary_model": "unknown model 'nope'"}
    assert "context.select" in fields(
        root.post("/models", json={**body, "name": "c", "context": {"select": "random"}})
    )
    # The summary model of another cannot go.
    mini = next(m for m in ok(root.get("/models"))["items"] if m["name"] == "mini")
    assert (
        "models big fall back to 'mini'"
        in error(root.delete(f"/models/{mini['id']}"), 409)["message"]
    )


def test_pricing(admin: Admin) -> None:
    root = admin.root
    entry = {"model": "local-llm", "provider": "vllm", "context_window": 8192, "input": "0.1"}
    created = ok(root.post("/pricing", json=entry), 201)
    assert created["entry"]["context_window"] == 8192
    error(root.post("/pricing", json=entry), 409)
    assert "context_window" in fields(root.post("/pricing", json={**entry, "context_window": 0}))
    path = f"/pricing/{created['id']}"
    assert ok(root.put(path, json={**entry, "output": 0.2}))["revision"] == 2
    error(root.put(path, json={**entry, "model": "other"}), 409)
    member = admin.client(admin.user("mem"))
    assert len(ok(member.get("/pricing"))["items"]) == 1
    error(member.delete(path), 403)
    ok(root.delete(path), 204)
    error(root.get(path), 404)
    assert admin.store.load_state().catalog == {}
