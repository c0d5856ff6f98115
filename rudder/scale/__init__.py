"""Several Rudder processes on one PostgreSQL: instances, bot leases, a shared run queue.

`node.py` wires it together for an instance (`rudder start`) and for a run worker
(`rudder worker`); SQLite deployments never import this package.
"""
