"""IAM proven from AWS's own data: what each resource and call needs, and that nothing escalates.

principalmapper 1.1.5 (NCC Group's policy evaluator and graph, the newest release) still imports
Mapping and MutableMapping from `collections`, which Python 3.10 removed; they live in
collections.abc. The aliases below are all it needs to import.
"""

import collections
import collections.abc

for _name in ("Mapping", "MutableMapping"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
