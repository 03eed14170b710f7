"""Hazelcast: ``HazelcastStore`` (the store port on a real cluster) and local member control.

``store`` is the only module that imports the Hazelcast client; ``control`` and ``cluster`` start,
stop and inspect official-jar members on loopback without it.
"""
