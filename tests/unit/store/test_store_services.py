"""Services, their version lifecycle, subscriptions, and the state the data plane gets."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tollway.config.entities import ServiceSpec
from tollway.config.models import ModelConfig, ProviderConfig
from tollway.store import (
    SYSTEM,
    Store,
    apps,
    llm_models,
    providers,
    services,
    subscriptions,
    teams,
    versions,
)
from tollway.store.errors import Conflict, Invalid
from tollway.store.schema import App, Service


def _setup(store: Store, approval: str = "manual") -> tuple[Service, App]:
    with store.write(SYSTEM) as tx:
        providers.create(
            tx, "p", ProviderConfig.model_validate({"base_url": "http://127.0.0.1:9/v1"})
        )
        for name in ("m1", "m2"):
            llm_models.create(
                tx, name, ModelConfig.model_validate({"deployments": [{"provider": "p"}]})
            )
        owner = teams.create(tx, "owner")
        service = services.create(
            tx,
            owner,
            "chat",
            kind="ai",
            route_prefix="/chat",
            visibility="public",
            approval=approval,
        )
        app = apps.create(tx, teams.create(tx, "consumer"), "bot")
    return service, app


def _version(store: Store, service: Service, models: list[str]) -> int:
    with store.write(SYSTEM) as tx:
        return versions.create(tx, service, ServiceSpec(models=models)).number


def _do(store: Store, service: Service, action: str, number: int | None = None) -> str:
    with store.write(SYSTEM) as tx:
        if action == "rollback":
            version = versions.rollback(tx, service, number)
        else:
            version = getattr(versions, action)(
                tx, service, versions.get(tx.session, service.id, number)
            )
        return f"{version.number}:{version.status}"


def _statuses(store: Store, service: Service) -> dict[int, str]:
    with store.read() as session:
        return {v.number: v.status for v in versions.listing(session, service.id).items}


def test_lifecycle_publish_freezes_one_serves_rollback_in_one_call(store: Store) -> None:
    service, _ = _setup(store)
    one = _version(store, service, ["m1"])
    two = _version(store, service, ["m2"])
    assert _do(store, service, "publish", one) == "1:published"
    with pytest.raises(Conflict, match="only a draft can change"), store.write(SYSTEM) as tx:
        versions.update(
            tx, service, versions.get(tx.session, service.id, one), spec=ServiceSpec(models=["m2"])
        )
    assert _do(store, service, "publish", two) == "2:published"
    assert _statuses(store, service) == {1: "deprecated", 2: "published"}
    assert _do(store, service, "rollback") == "1:published"
    assert _statuses(store, service) == {1: "published", 2: "deprecated"}
    assert _do(store, service, "rollback", 2) == "2:published"
    assert _do(store, service, "retire", 1) == "1:retired"
    with pytest.raises(Conflict), store.write(SYSTEM) as tx:
        versions.rollback(tx, service, 1)
    with pytest.raises(Conflict, match="no earlier published version"), store.write(SYSTEM) as tx:
        versions.rollback(tx, service)
    assert _do(store, service, "deprecate", 2) == "2:deprecated"
    with store.read() as session:
        assert services.published(session, service.id) is None


def test_the_database_allows_one_published_version(store: Store) -> None:
    service, _ = _setup(store)
    _version(store, service, ["m1"])
    _version(store, service, ["m2"])
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(text("UPDATE service_versions SET status = 'published'"))


def test_versions_check_their_content(store: Store) -> None:
    service, _ = _setup(store)
    with pytest.raises(Invalid, match="unknown model 'nope'"), store.write(SYSTEM) as tx:
        versions.create(tx, service, ServiceSpec(models=["m1", "nope"]))
    with pytest.raises(Invalid, match="gives models"), store.write(SYSTEM) as tx:
        versions.create(
            tx,
            service,
            ServiceSpec.model_validate({"upstream": {"targets": [{"url": "http://x"}]}}),
        )
    number = _version(store, service, ["m1"])
    # A model a version grants cannot go away.
    with pytest.raises(Conflict, match="granted by services chat"), store.write(SYSTEM) as tx:
        llm_models.delete(tx, llm_models.find(tx.session, "m1"))  # type: ignore[arg-type]
    with store.write(SYSTEM) as tx:
        versions.delete(tx, service, versions.get(tx.session, service.id, number))
        llm_models.delete(tx, llm_models.find(tx.session, "m1"))  # type: ignore[arg-type]


def test_manual_subscription_flow(store: Store) -> None:
    service, app = _setup(store)
    with pytest.raises(Conflict, match="no published version"), store.write(SYSTEM) as tx:
        subscriptions.apply(tx, app, service, requested_by=None)
    _do(store, service, "publish", _version(store, service, ["m1"]))

    def act(action: str, **kw: object) -> str:
        with store.write(SYSTEM) as tx:
            if action == "apply":
                return subscriptions.apply(tx, app, service, requested_by=None).status
            found = subscriptions.find(tx.session, app.id, service.id)
            assert found is not None
            return str(getattr(subscriptions, action)(tx, found, decided_by=None, **kw).status)

    assert act("apply") == "pending"
    with pytest.raises(Conflict, match="already pending"):
        act("apply")
    assert act("reject", reason="no budget") == "rejected"
    with pytest.raises(Conflict, match="cannot be approved"):
        act("approve")
    assert act("apply") == "pending"
    assert act("approve") == "approved"
    assert act("revoke") == "revoked"
    assert act("apply") == "pending"
    assert act("cancel") == "cancelled"
    assert act("apply") == "pending"
    assert act("approve") == "approved"
    assert act("cancel") == "cancelled"
    state = store.load_state()
    assert state.subscription(app.id, service.id).status == "cancelled"  # type: ignore[union-attr]


def test_auto_approval_except_after_a_revocation(store: Store) -> None:
    service, app = _setup(store, approval="auto")
    _do(store, service, "publish", _version(store, service, ["m1"]))
    with store.write(SYSTEM) as tx:
        subscription = subscriptions.apply(tx, app, service, requested_by=None)
        assert subscription.status == "approved"
        subscriptions.revoke(tx, subscription, decided_by=None)
        assert subscriptions.apply(tx, app, service, requested_by=None).status == "pending"


def test_live_subscriptions_keep_a_service(store: Store) -> None:
    service, app = _setup(store)
    _do(store, service, "publish", _version(store, service, ["m1"]))
    with store.write(SYSTEM) as tx:
        subscriptions.apply(tx, app, service, requested_by=None)
    with pytest.raises(Conflict, match="pending or approved"), store.write(SYSTEM) as tx:
        services.delete(tx, services.get(tx.session, service.id))
    with store.write(SYSTEM) as tx:
        found = subscriptions.find(tx.session, app.id, service.id)
        assert found is not None
        subscriptions.reject(tx, found, decided_by=None)
        services.delete(tx, services.get(tx.session, service.id))


def test_route_prefixes_are_unique_ignoring_case(store: Store) -> None:
    _setup(store)
    with pytest.raises(Conflict, match="already used"), store.write(SYSTEM) as tx:
        services.create(tx, teams.create(tx, "x"), "s", kind="rest", route_prefix="/CHAT")


def test_state_carries_everything_the_snapshot_needs(store: Store) -> None:
    service, app = _setup(store)
    _do(store, service, "publish", _version(store, service, ["m1", "m2"]))
    with store.write(SYSTEM) as tx:
        subscriptions.apply(tx, app, service, requested_by=None)
    state = store.load_state()
    assert state.version == store.current_version()
    assert {t.name for t in state.teams.values()} == {"owner", "consumer"}
    assert state.apps[app.id].name == "bot"
    served = state.services[service.id]
    assert served.route_prefix == "/chat" and served.published is not None
    assert served.published.models == ("m1", "m2") and served.published.number == 1
    assert state.subscription(app.id, service.id).status == "pending"  # type: ignore[union-attr]
    config = state.gateway_config()
    assert set(config.models) == {"m1", "m2"} and set(config.providers) == {"p"}
    with pytest.raises(TypeError):
        state.teams[99] = state.teams[1]  # type: ignore[index]
