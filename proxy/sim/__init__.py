"""A simulated vendor upstream speaking the real OpenAI and Anthropic wire formats over loopback.

Used by the offline demo, as the fake OpenAI and Anthropic servers of every end-to-end test,
and by the benchmark::

    sim = Sim(openai_key="sk-test", anthropic_key="ak-test")
    with BackgroundServer(lambda: create_app(sim)) as server:
        # openai base_url: server.url + "/v1"; anthropic base_url: server.url
        sim.faults.push(Fault("status", status=429))
        ...
        sim.wait_for_requests(1)

``python -m proxy.sim --port 9999`` serves it standalone; ``/_sim/faults`` and
``/_sim/received`` program and inspect it from another process.
"""

from proxy.sim.app import Received, Sim, SimConfig, create_app
from proxy.sim.faults import Fault, FaultQueue
from proxy.sim.runner import BackgroundServer, free_port

__all__ = [
    "BackgroundServer",
    "Fault",
    "FaultQueue",
    "Received",
    "Sim",
    "SimConfig",
    "create_app",
    "free_port",
]
