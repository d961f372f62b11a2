"""Files and batches kept and run by the gateway."""
