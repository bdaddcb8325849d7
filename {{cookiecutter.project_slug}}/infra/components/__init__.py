"""One ComponentResource per concern. Each has dataclass args, a "mlops:<module>:<Type>"
token, parent=self on every child, ends with register_outputs, and creates nothing in apply."""
