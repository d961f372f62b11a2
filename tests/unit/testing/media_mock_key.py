"""The API key of the media tests' mock provider (a module of its own: tests import it by a
name no other directory's conftest shares)."""

MEDIA_KEY = "sk-mock-media"
