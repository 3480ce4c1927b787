"""segflow: orchestrated monthly customer segmentation on Dagster."""

__version__ = "0.1.0"
