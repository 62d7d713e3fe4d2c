"""The control plane: coordinator, node supervision, and the `mailport` command."""
