"""`reject_unexpected_query_parameters` on a small application with scalar, list and nested parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Query

from app.errors import install_error_handlers
from app.query_params import reject_unexpected_query_parameters


def page_size(size: Annotated[int, Query(alias="page-size")] = 10) -> int:
    return size


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI(dependencies=[Depends(reject_unexpected_query_parameters)])
    install_error_handlers(app)

    @app.get("/items")
    async def items(
        size: Annotated[int, Depends(page_size)],
        tag: Annotated[list[str] | None, Query()] = None,
        colour: str | None = None,
    ) -> dict:
        return {"size": size, "tag": tag, "colour": colour}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_declared_parameters_pass(client):
    response = await client.get("/items?colour=red&page-size=3&tag=a")
    assert response.status_code == 200
    assert response.json() == {"size": 3, "tag": ["a"], "colour": "red"}


async def test_list_parameter_may_repeat(client):
    response = await client.get("/items?tag=a&tag=b")
    assert response.status_code == 200
    assert response.json()["tag"] == ["a", "b"]


async def test_scalar_parameter_may_not_repeat(client):
    response = await client.get("/items?colour=red&colour=blue")
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_parameter"
    assert problem["parameter"] == "colour"
    assert "2 times" in problem["detail"]


async def test_alias_of_nested_dependency_is_accepted(client):
    """Parameters of sub-dependencies count as declared, under their alias."""
    response = await client.get("/items?page_size=3")
    problem = response.json()
    assert response.status_code == 422
    assert problem["accepted"] == ["colour", "page-size", "tag"]
    assert "did you mean 'page-size'?" in problem["detail"]


async def test_unknown_name_without_close_match(client):
    problem = (await client.get("/items?xyz=1")).json()
    assert problem["parameter"] == "xyz"
    assert "did you mean" not in problem["detail"]
    assert "colour, page-size, tag" in problem["detail"]


async def test_blank_value_still_counts_as_sent(client):
    response = await client.get("/items?colour=")
    assert response.status_code == 200
    response = await client.get("/items?colour=&colour=")
    assert response.status_code == 422
