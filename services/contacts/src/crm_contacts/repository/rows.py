"""Rows as the plain dicts the repository returns, and LIKE patterns: the kit's (`crm_kit.db`),
named here for the repository modules."""

from crm_kit.db import as_dict, as_dicts, contains_pattern

__all__ = ["as_dict", "as_dicts", "contains_pattern"]
