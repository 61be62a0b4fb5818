"""The people's side of Airlock: the `airlock` operator CLI and making signed decisions."""
