"""The embedded store served over loopback TCP, so that the mesh's processes share one store.

``server.StoreServer`` wraps one ``MemoryStore``; ``client.NetStore`` implements the store port
against it (``bootstrap.open_store("tcp://127.0.0.1:PORT")``). The frames are in ``wire``.
"""
