"""The only place that builds SQL: models, migrations, repositories (SQLAlchemy 2.0)."""
