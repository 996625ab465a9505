"""One contract every client adapter keeps, run per client through a driver (contract.drivers)."""
