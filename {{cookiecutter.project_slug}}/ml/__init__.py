"""The ML code and pipeline steps of this project."""
