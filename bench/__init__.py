"""Load benchmark of the running service against the machine's ceiling (`python -m bench`)."""
