"""Alembic environment: runs online against the URL the service passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from cortex.control.db import make_engine
from cortex.control.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None
engine = make_engine(url) if url.startswith("sqlite") else None
if engine is None:
    from sqlalchemy import create_engine

    engine = create_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
