"""The application: run dirs, checkpoints, loggers, the CLI and experiments."""
