"""Optional Ray backend (`pip install 'onnxprune[ray]'`): the `core.executor` seam as Ray tasks,
and timings on a device that advertises a custom resource. Importing this package does not import
Ray; connecting does."""

from .cluster import Cluster, LocalCluster, connect, disconnect
from .device import DeviceTimer, device_info
from .executor import RayExecutor

__all__ = ["Cluster", "DeviceTimer", "LocalCluster", "RayExecutor", "connect", "device_info", "disconnect"]
