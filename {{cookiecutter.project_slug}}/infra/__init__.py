"""The Pulumi program: one stack per environment (dev, staging, prod)."""
