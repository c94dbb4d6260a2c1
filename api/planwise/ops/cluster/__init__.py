"""`planwise cluster`: a local Patroni + etcd cluster with automatic failover."""
