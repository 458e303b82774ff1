"""Analysis passes over the IR (volumes, counts, memory, receptive field) and the report."""
