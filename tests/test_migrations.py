"""The Alembic migrations and the SQLModel tables describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import api.models  # noqa: F401  (registers the tables)
from api.db import sqlalchemy_url


def _include(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "table" and reflected and compare_to is None)  # PostGIS's own tables


async def test_models_match_migrated_database(database):
    engine = create_async_engine(sqlalchemy_url(database))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"include_object": _include, "compare_type": True}
                    ),
                    SQLModel.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], diff
