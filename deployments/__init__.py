"""What registers and runs the flows: local setup, serve entrypoint, blocks, work pools."""
