"""Runtime and energy measurements on real hardware (see `wattlas bench`)."""
