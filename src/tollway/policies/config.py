"""The base of every policy's configuration model. Kept apart from the policies' runtime side
(policies/base.py), which the data plane imports and which must not pull in pydantic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PolicyConfig(BaseModel):
    """A policy's configuration: strict (an unknown field is an error) and immutable. The same
    model is the admin API's and the console's schema for the policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
