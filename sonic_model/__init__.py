"""sonic_model: generators and media primitives for sonic-catalog.

A plain library: usable from a notebook with no Prefect server. Nothing here imports prefect.
"""

__version__ = "0.1.0"
