"""The LLM: the client factory (simulator by default, a real model by env) and the simulator."""
from course.llm.client import (describe, ensure_endpoint, explain, make_client, make_sync_client,
                               stop_simulator)

__all__ = ["describe", "ensure_endpoint", "explain", "make_client", "make_sync_client", "stop_simulator"]
