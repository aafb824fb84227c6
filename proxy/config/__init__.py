"""Config: load YAML, interpolate ``${VAR}``, validate against the schema, build snapshots."""
