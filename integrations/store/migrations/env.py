"""Alembic environment for the label store.

``LabelStore`` runs the migrations itself: it builds an ``alembic.config.Config`` in code and hands over
its live connection in ``config.attributes["connection"]``, so the upgrade runs inside the store's own
transaction.
For developers writing a new migration, a ``sqlalchemy.url`` main option works too, e.g.::

    cfg = Config(); cfg.set_main_option("script_location", "<this dir>")
    cfg.set_main_option("sqlalchemy.url", "sqlite:///dev.db"); command.revision(cfg, "...", autogenerate=True)

Logging is deliberately left alone (no ``fileConfig``): the store runs inside the application, whose logging
configuration must survive opening a store.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from labelflow.integrations.store.schema import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables so later migrations work there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "label store migrations need a connection (config.attributes['connection']) or a sqlalchemy.url"
        )
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("label store migrations run online only (LabelStore applies them when it opens)")
run_migrations_online()
