"""Pydantic models of the gateway's responses; unknown fields are kept, so newer servers still parse."""
