"""The base model: extra fields allowed (forward-compatible) and the response's headers kept aside."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, PrivateAttr


class OmnigateModel(BaseModel):
    """Base of every response model. Fields a newer gateway adds are kept as attributes."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    _headers: httpx.Headers = PrivateAttr(default_factory=httpx.Headers)

    def __eq__(self, other: object) -> bool:
        # Equal data is equal whichever response it came in: the headers are not compared.
        if not isinstance(other, OmnigateModel):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.__dict__ == other.__dict__
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    @property
    def response_headers(self) -> httpx.Headers:
        """The HTTP headers of the response this object came from (empty for nested objects)."""
        return self._headers
