"""Field types the contacts API shares. The base of request bodies, pages of a list and the
answer of a create are the kit's (`crm_kit.api`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

ContactIdPath = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=256)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
