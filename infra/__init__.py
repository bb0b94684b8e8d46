"""The Pulumi program: turns the Bundle that `perfstack render` writes into Kubernetes resources."""
