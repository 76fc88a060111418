"""Draw the Grafana dashboard's panels from real /metrics scrapes of a stack: ``python -m devstack.dashboard``."""
