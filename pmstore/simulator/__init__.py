"""A Polymarket simulator: Gamma discovery, CLOB books and the market channel on one port.

Nobody offers one, so pmstore ships its own, to test, demonstrate and
benchmark a live recorder (``pmstore record``) without the network. It
speaks Polymarket's documented protocol with the real payload shapes
(docs/simulator.md lists every rule), is deterministic (a seeded market
model that moves only when told, an injectable clock) and observable (what
each socket was sent, in order; facts to wait on)::

    from pmstore.simulator import Simulator, SimulatorConfig

    async with Simulator(SimulatorConfig(markets=50, seed=7)) as sim:
        # point the client at sim.gamma_url, sim.clob_url, sim.ws_url
        [conn] = await sim.wait_connections(1)
        await sim.step(100)               # 100 random events, written when it returns
        conn.freeze()                     # a fault: data stops, PONG still answered
        await sim.resolve_market(sim.markets()[0].condition_id)

``pmstore simulate --port P`` runs one from the command line.
"""

from pmstore.simulator._book import BUY, SELL, Side
from pmstore.simulator._config import Clock, SimulatorConfig, wall_clock_ms
from pmstore.simulator._connection import Connection, ConnectionState, ReceivedFrame, SentFrame
from pmstore.simulator._faults import Chaos, Faults
from pmstore.simulator._journal import Fact, FactKind, ServedRequest
from pmstore.simulator._market import MarketInfo
from pmstore.simulator._simulator import CLOB_PREFIX, GAMMA_PREFIX, WS_PATH, Simulator

__all__ = [
    "BUY",
    "CLOB_PREFIX",
    "GAMMA_PREFIX",
    "SELL",
    "WS_PATH",
    "Chaos",
    "Clock",
    "Connection",
    "ConnectionState",
    "Fact",
    "FactKind",
    "Faults",
    "MarketInfo",
    "ReceivedFrame",
    "SentFrame",
    "ServedRequest",
    "Side",
    "Simulator",
    "SimulatorConfig",
    "wall_clock_ms",
]
