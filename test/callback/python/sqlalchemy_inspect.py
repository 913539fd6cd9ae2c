"""SQLAlchemy's inspector over the public schema, as migration tools (Alembic autogenerate) run it.
Prints JSON; usage: sqlalchemy_inspect.py <postgresql URL>."""
import json
import sys

from sqlalchemy import create_engine, inspect

url = sys.argv[1].replace("postgres://", "postgresql+psycopg2://", 1)
engine = create_engine(url)
insp = inspect(engine)
out = {
    "tables": sorted(insp.get_table_names(schema="public")),
    "views": sorted(insp.get_view_names(schema="public")),
    "foreign_tables": sorted(insp.get_foreign_table_names(schema="public")),
    "columns": {
        t: [[c["name"], str(c["type"]), c["nullable"]] for c in insp.get_columns(t, schema="public")]
        for t in ["users", "fh"]
    },
    "has_table": [insp.has_table("users", schema="public"), insp.has_table("fh", schema="public")],
}
engine.dispose()
print(json.dumps(out))
