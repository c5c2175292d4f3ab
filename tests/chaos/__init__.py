"""The fault-injection suite (issue 11): ``make chaos`` / ``python -m tests.chaos``.

A stack of its own (state dir ``.voxtrain/chaos``, ports shifted by ``--port-offset``) runs the real servers
and the four services as separate processes; round after round a few models go upload -> validate -> train
while one component is killed with SIGKILL at a random moment and restarted after 2-10 s. The verdict is
read from the outside only: the public HTTP APIs and a plain Kafka consumer of the status topic.
"""
