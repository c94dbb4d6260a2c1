"""`planwise db`: the managed cluster, migrations and role passwords."""
